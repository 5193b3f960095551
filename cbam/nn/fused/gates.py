"""The small parts of the fused operator, shared by every back end: M_c from the pooled descriptors
(shared MLP, eq. 2), M_s from the spatial descriptor (k x k conv, optional BatchNorm, eq. 3), and their
backward formulas. Inputs are (P, B, C) or (B, P, H, W); everything here runs in the compute dtype
(float32, float64 for float64 inputs), whatever the dtype of the feature map.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NORM_AFFINE", "NORM_BATCH", "NORM_NONE", "channel_backward", "channel_gate", "spatial_backward",
           "spatial_gate"]

NORM_NONE, NORM_AFFINE, NORM_BATCH = 0, 1, 2


def channel_gate(pooled: Tensor, w0: Tensor, b0: Tensor | None, w1: Tensor, b1: Tensor | None) -> Tensor:
    """M_c (B, C) from the pooled descriptors (P, B, C): sigma(sum_p W1 relu(W0 d_p + b0) + b1)."""
    hidden = F.relu(F.linear(pooled, w0, b0))  # (P, B, C/r): one MLP call for every descriptor
    return torch.sigmoid(F.linear(hidden, w1, b1).sum(dim=0))


def spatial_gate(
    desc: Tensor, conv_w: Tensor, conv_b: Tensor | None, norm_w: Tensor | None, norm_b: Tensor | None,
    norm_mode: int, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(M_s, conv output z, BatchNorm batch [mean, var] or empty) from desc (B, P, H, W); M_s, z: (B, 1, H, W)."""
    k = conv_w.shape[-1]
    z = F.conv2d(desc, conv_w, conv_b, padding=k // 2)  # (B, 1, H, W)
    logits, stats = z, desc.new_empty((0,))
    if norm_mode == NORM_AFFINE:  # eval-mode BatchNorm folded into scale and shift
        logits = z * norm_w + norm_b
    elif norm_mode == NORM_BATCH:  # train-mode BatchNorm: batch statistics of the single channel
        var, mean = torch.var_mean(z, correction=0)
        stats = torch.stack([mean, var])
        logits = (z - mean) * torch.rsqrt(var + eps)
        if norm_w is not None:
            logits = logits * norm_w + norm_b
    return torch.sigmoid(logits), z, stats


def spatial_backward(
    ds: Tensor, s: Tensor, z: Tensor, stats: Tensor, desc: Tensor, conv_w: Tensor, conv_b: Tensor | None,
    norm_w: Tensor | None, norm_b: Tensor | None, norm_mode: int, eps: float, grads: list[Tensor],
) -> Tensor:
    """dL/d(desc) (B, P, H*W) from dL/dM_s (B, H*W); writes the conv and BatchNorm gradients into ``grads``."""
    b, p, h, w = desc.shape
    sf = s.view(b, h * w)
    dlogits = (ds * sf * (1 - sf)).view(b, 1, h, w)
    dz = dlogits
    if norm_mode == NORM_AFFINE:
        grads[6], grads[7] = (dlogits * z).sum().view(1), dlogits.sum().view(1)
        dz = dlogits * norm_w
    elif norm_mode == NORM_BATCH:
        mean, var = stats[0], stats[1]
        rstd = torch.rsqrt(var + eps)
        zhat = (z - mean) * rstd
        dzhat = dlogits
        if norm_w is not None:
            grads[6], grads[7] = (dlogits * zhat).sum().view(1), dlogits.sum().view(1)
            dzhat = dlogits * norm_w
        dz = rstd * (dzhat - dzhat.mean() - zhat * (dzhat * zhat).mean())
    # The k x k conv's backward as two forward convolutions: aten.convolution_backward takes ~4x longer
    # on these one-output-channel maps. Input: the flipped kernel; weight: the batch as channels.
    pad = conv_w.shape[-1] // 2
    ddesc = F.conv2d(dz, conv_w.flip(2, 3).transpose(0, 1), padding=pad)  # (B, P, H, W)
    grads[4] = F.conv2d(desc.transpose(0, 1), dz.transpose(0, 1), padding=pad).transpose(0, 1).contiguous()
    if conv_b is not None:
        grads[5] = dz.sum().view(1)
    return ddesc.reshape(b, p, h * w)


def channel_backward(
    da: Tensor, a: Tensor, pooled: Tensor, w0: Tensor, b0: Tensor | None, w1: Tensor, b1: Tensor | None,
    grads: list[Tensor],
) -> Tensor:
    """dL/d(pooled) (P, B, C) from dL/dM_c (B, C); writes the MLP gradients into ``grads``."""
    dlogits_c = da * a * (1 - a)  # (B, C)
    pre = F.linear(pooled, w0, b0)  # (P, B, C/r)
    hidden = F.relu(pre)
    grads[2] = dlogits_c.t() @ hidden.sum(dim=0)  # dW1: (C, C/r)
    if b1 is not None:
        grads[3] = dlogits_c.sum(dim=0) * pooled.shape[0]
    dpre = (dlogits_c @ w1).unsqueeze(0) * (pre > 0)  # (P, B, C/r)
    grads[0] = torch.einsum("pbh,pbc->hc", dpre, pooled)  # dW0: (C/r, C)
    if b0 is not None:
        grads[1] = dpre.sum(dim=(0, 1))
    return dpre @ w0  # (P, B, C)
