"""Fused, memory-lean CBAM (https://arxiv.org/abs/1807.06521): one operator for F'' = M_s(F') * F', F' = M_c(F) * F.

The modules' reference path (``x * sigmoid(...)`` built from :mod:`cbam.nn.functional`) lets autograd
save F' besides F and builds a full-size temporary for every product, every ``amax`` and every branch
that meets at F. The fused operator computes the same function with a hand-written backward, saving
only F and small tensors, in a few full-size passes (see :mod:`.operator`).

Modules of this package:

* :mod:`.switch`: the one global setting (``auto`` / ``cpp`` / ``triton`` / ``torch`` / ``off``);
* :mod:`.entry`: which inputs and modules the operator covers (:func:`supports`) and the call;
* :mod:`.operator`: the registered operator, its backward and the choice of back end;
* :mod:`.gates`: the small parts (shared MLP, k x k conv, BatchNorm, sigmoids) and their backward;
* the back ends of the full-size passes, one module each: :mod:`.passes_cpp` (C++/OpenMP, CPU),
  :mod:`.passes_triton` with :mod:`.triton_kernels` (Triton, CUDA) and :mod:`.passes_torch`
  (PyTorch operations, everything else).

Differences from the reference path: sums are taken in another order (results agree to ~1e-6
relative in fp32), and at exact ties of a max pool the gradient goes to the first maximal element
(as ``torch.max(dim)``'s does on the CPU) where ``amax`` splits it evenly among the ties; both are
valid subgradients and agree everywhere else. In half precision the small parts run in float32, so
the fused path is at least as accurate as the reference path under autocast.

ONNX export and TorchScript take the reference path, which is made of standard operations.
"""
from .entry import fused_attention, supports
from .switch import MODES, fast_path, fast_path_enabled, fast_path_mode, set_fast_path

__all__ = ["MODES", "fast_path", "fast_path_enabled", "fast_path_mode", "fused_attention", "set_fast_path",
           "supports"]
