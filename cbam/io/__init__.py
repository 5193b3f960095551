"""Files in and out: atomic writes, weight files, the model folder, other projects' layouts, export.

- :mod:`~cbam.io.files`: ``atomic_write``.
- :mod:`~cbam.io.state_dict`: reading weight files without running pickled code; strict loading.
- :mod:`~cbam.io.model_folder`: the one saved-model format (``config.json`` + ``model.safetensors``).
- :mod:`~cbam.io.layouts` and :mod:`~cbam.io.convert`: the official / pytorchcv / timm layouts <-> ours.
- :mod:`~cbam.io.export`: ONNX and ``torch.export`` (needs the ``onnx`` extra for ONNX).
"""
from .files import atomic_write
from .model_folder import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ModelFolder,
    build_model,
    from_pretrained,
    model_config,
    read_model_folder,
    save_pretrained,
    write_model_folder,
)
from .state_dict import (
    Checkpoint,
    UnsafeCheckpointError,
    load_state_dict_strict,
    read_checkpoint,
    read_state_dict,
    save_safetensors,
)

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "Checkpoint",
    "ModelFolder",
    "UnsafeCheckpointError",
    "atomic_write",
    "build_model",
    "from_pretrained",
    "load_state_dict_strict",
    "model_config",
    "read_checkpoint",
    "read_model_folder",
    "read_state_dict",
    "save_pretrained",
    "save_safetensors",
    "write_model_folder",
]
