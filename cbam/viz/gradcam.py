"""Grad-CAM (Selvaraju et al., ICCV 2017) of the last convolutional stage, as in the paper's Fig. 5.

The CAM itself comes from the maintained ``grad-cam`` package (pytorch-grad-cam); this module only
picks the layer from the model's ``feature_info`` (no per-architecture special case), gives every
sample its own target, and restores the model's training mode.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .._optional import require

GradCAM = require("pytorch_grad_cam", "viz", "Grad-CAM").GradCAM
ClassifierOutputTarget = require("pytorch_grad_cam.utils.model_targets", "viz", "Grad-CAM").ClassifierOutputTarget

__all__ = ["CamResult", "target_layer", "gradcam"]


@dataclass
class CamResult:
    """Grad-CAM of a batch.

    Attributes:
        cams: (B, H, W) float32 in [0, 1], at the input's resolution (min-max scaled per image).
        targets: (B,) class index each CAM explains.
        probs: (B,) softmax score P of that class.
        preds: (B,) top-1 class.
    """

    cams: np.ndarray
    targets: np.ndarray
    probs: np.ndarray
    preds: np.ndarray


def target_layer(model: nn.Module, stage: int = -1) -> nn.Module:
    """The module that outputs stage ``stage`` of ``model.feature_info`` (default: the last one).

    Raises:
        ValueError: the model has no ``feature_info``, or ``stage`` is out of range.
    """
    info = getattr(model, "feature_info", None)
    name = getattr(model, "model_name", type(model).__name__)
    if not info:
        raise ValueError(f"model {name!r} has no feature_info; Grad-CAM needs the list of its stages")
    if not -len(info) <= stage < len(info):
        raise ValueError(
            f"stage={stage} is out of range: model {name!r} has {len(info)} stages "
            f"({[s['module'] for s in info]}), valid values are {-len(info)}..{len(info) - 1}"
        )
    return model.get_submodule(info[stage]["module"])


def _detach_output(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return output.detach().requires_grad_(True)


def gradcam(
    model: nn.Module,
    images: Tensor,
    targets: Sequence[int] | Tensor | None = None,
    stage: int = -1,
    batch_size: int = 32,
) -> CamResult:
    """Grad-CAM of ``model`` for every image, on the output of stage ``stage``.

    Args:
        model: a registry model (any module with ``feature_info`` and ``get_submodule``).
        images: (B, 3, H, W) normalised input.
        targets: (B,) class per image; ``None`` explains each image's top-1 class.
        stage: index into ``model.feature_info`` (-1: last convolutional stage, the paper's choice).
        batch_size: images per backward pass.

    Returns:
        :class:`CamResult`; ``cams`` is (B, H, W) in [0, 1].

    The model runs in eval mode (BatchNorm statistics untouched) and its previous training mode
    is restored afterwards. One ``ClassifierOutputTarget`` is built per sample: pytorch-grad-cam
    zips the targets with the batch, so a single target would leave every image but the first
    with an all-zero map. The stage's output is detached into a leaf before the library's hooks
    see it, so the backward pass runs through the head only: Grad-CAM needs d y^c / d A, not
    the gradients of the layers below A (same maps, a fraction of the cost).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"targets must give one class per image: {len(targets)} targets for {len(images)} images")
    layer = target_layer(model, stage)
    was_training = model.training
    device = next(model.parameters()).device
    cams, tgts, probs, preds = [], [], [], []
    cut = layer.register_forward_hook(_detach_output)  # registered first: GradCAM's hooks see the leaf
    try:
        with torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as cam:
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device)
                # None: the library builds one ClassifierOutputTarget per sample from its top-1
                given = None if targets is None else [int(t) for t in targets[start:start + batch_size]]
                per_sample = None if given is None else [ClassifierOutputTarget(t) for t in given]
                maps = cam(input_tensor=x, targets=per_sample)
                logits = cam.outputs.detach().float()  # (b, num_classes), from the same forward
                batch_t = logits.argmax(1).tolist() if given is None else given
                p = logits.softmax(1)
                cams.append(maps.astype(np.float32))
                tgts.append(np.asarray(batch_t, dtype=np.int64))
                probs.append(p[torch.arange(len(batch_t)), torch.as_tensor(batch_t)].cpu().numpy())
                preds.append(logits.argmax(1).cpu().numpy())
    finally:
        cut.remove()
        model.train(was_training)
    return CamResult(np.concatenate(cams), np.concatenate(tgts), np.concatenate(probs), np.concatenate(preds))
