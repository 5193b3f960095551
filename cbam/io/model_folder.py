"""Model folders, the Hugging Face hub layout: ``config.json`` + ``model.safetensors``.

This is the one saved-model format. ``cbam train`` and ``cbam detect train`` write it into the run
directory at the end of a run (``checkpoint.pt`` beside it is for resuming only), the converters
and :func:`save_pretrained` write it, and every reader (``cbam eval``, ``gradcam``, ``attention``,
``export``, ``convert --to timm``, ``detect --backbone-weights``, :func:`from_pretrained`) goes
through :func:`read_model_folder`. A classification ``config.json``::

    {"library_name": "cbam", "task": "classification", "architecture": "resnet18", "attention": "cbam",
     "num_classes": 10, "model_args": {"small_input": true}, "classes": ["airplane", ...],
     "data": "cifar10:data/cifar",
     "preprocessing": {"data_kind": "cifar10", "image_size": 32, "resize": null, "crop": null,
                       "mean": [...], "std": [...]}}

``preprocessing`` is the evaluation transform (:func:`cbam.data.eval_transform` rebuilds it), so a
loaded model is evaluated as it was trained; ``classes``, ``data`` and ``preprocessing`` may be
``null`` (unknown: ImageNet evaluation at 224 px). A detection ``config.json`` holds ``"task":
"detection"`` and the detector's recipe keys (``detector``, ``backbone``, ``attention``,
``model_kwargs``, ``image_size``, ``data``, ``data_kwargs``, ``num_classes``, ``classes``).

Nothing is downloaded: a hub repository id is resolved only from the local Hugging Face cache
(``huggingface_hub`` is optional and used only for that).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..models import create_model
from .files import atomic_write, read_json
from .state_dict import TORCH_SUFFIXES, load_state_dict_strict, read_checkpoint, save_safetensors

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "ModelFolder", "build_model", "from_pretrained", "model_config",
           "read_model_folder", "save_pretrained", "write_model_folder"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ModelFolder:
    """A model folder: its path and parsed ``config.json``; :meth:`state_dict` reads the weights."""

    path: Path
    config: dict[str, Any]

    @property
    def task(self) -> str:
        return self.config.get("task", "classification")

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_NAME

    def state_dict(self) -> dict[str, Tensor]:
        return read_checkpoint(self.weights).state_dict


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready plain data (tuples become lists), else ``ValueError`` naming ``where``."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(
        f"save_pretrained: option {where}={value!r} is not a plain value (str, number, bool, None, list, dict); "
        "config.json can only record plain options, e.g. attention='cbam' rather than a class or partial"
    )


def model_config(model: nn.Module, *, classes: list[str] | None = None, data: str | None = None,
                 preprocessing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The classification ``config.json`` of ``model`` (built by :func:`cbam.create_model`)."""
    name, args = getattr(model, "model_name", None), getattr(model, "model_args", None)
    if name is None or args is None:
        raise ValueError(
            f"save_pretrained: {type(model).__name__} was not built by cbam.create_model, so its architecture "
            "is unknown; save its weights with cbam.io.save_safetensors(model.state_dict(), path) instead"
        )
    args = dict(args)
    attention = args.pop("attention", None)
    num_classes = args.pop("num_classes", 1000)
    if hasattr(model, "get_classifier"):
        num_classes = model.get_classifier().out_features  # after reset_classifier
    return {
        "library_name": "cbam",
        "task": "classification",
        "architecture": name,
        "attention": _plain(attention, "attention"),
        "num_classes": num_classes,
        "model_args": _plain(args, "model_args"),
        "classes": list(classes) if classes is not None else None,
        "data": data,
        "preprocessing": _plain(dict(preprocessing), "preprocessing") if preprocessing is not None else None,
    }


def write_model_folder(directory: str | os.PathLike, state_dict: Mapping[str, Tensor],
                       config: Mapping[str, Any]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically. Returns the folder."""
    directory = Path(directory)
    text = json.dumps(_plain(dict(config), "config"), indent=2, sort_keys=True) + "\n"
    save_safetensors(state_dict, directory / WEIGHTS_NAME)
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(text))
    return directory


def save_pretrained(model: nn.Module, directory: str | os.PathLike, *, classes: list[str] | None = None,
                    data: str | None = None, preprocessing: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (built by :func:`cbam.create_model`) to ``directory`` as a model folder.

    Args:
        classes: names of the outputs; data: the ``--data`` value it was trained on;
        preprocessing: its evaluation transform (:func:`cbam.data.eval_preprocessing`); ``None``:
            ImageNet evaluation at 224 px.

    Returns the directory; an existing folder is updated in place.
    """
    config = model_config(model, classes=classes, data=data, preprocessing=preprocessing)
    return write_model_folder(directory, model.state_dict(), config)


def _resolve(path_or_repo_id: str | os.PathLike) -> Path:
    path = Path(path_or_repo_id)
    if path.is_dir():
        return path
    if path.name == WEIGHTS_NAME and path.is_file():  # the weights of a folder: the folder
        return path.parent
    if path.is_file():
        if path.name.lower().endswith(TORCH_SUFFIXES):
            read_checkpoint(path)  # a pickle that needs code gets the refusal with the re-save one-liner
        if path.name == "checkpoint.pt":
            raise ValueError(f"{path} is a resume checkpoint; give the run directory {path.parent}, the model "
                             f"folder a finished run leaves (finish it with --resume --out {path.parent})")
        raise ValueError(f"{path} is a weights file, not a model folder ({CONFIG_NAME} + {WEIGHTS_NAME}); "
                         "convert it first: cbam convert --from official|pytorchcv|timm FILE --out DIR")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"no model folder {path} (and huggingface_hub is not installed)") from None
    try:  # the local hub cache only: never the network
        return Path(snapshot_download(str(path_or_repo_id), local_files_only=True))
    except Exception as err:  # huggingface_hub raises several types for "not cached" / "bad repo id"
        raise FileNotFoundError(
            f"no model folder {path}, and no cached hub snapshot of that repo id "
            f"({type(err).__name__}); nothing is downloaded, fetch it yourself first"
        ) from None


def read_model_folder(path_or_repo_id: str | os.PathLike) -> ModelFolder:
    """Read a model folder (a run directory, a converted or saved folder, or a cached hub repo id).

    Raises:
        FileNotFoundError: no such folder, or it lacks ``config.json`` / ``model.safetensors`` (a run
            that has not finished holds only ``checkpoint.pt``: the message says to resume it).
        ValueError: a weights file instead of a folder (the message says how to convert it), or a
            pickle that needs code to load (refused, with the one-liner that re-saves it).
    """
    folder = _resolve(path_or_repo_id)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        if (folder / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"{folder} holds only checkpoint.pt, the run has not finished: "
                                    f"finish it with --resume --out {folder}")
        legacy = _legacy_config(folder / WEIGHTS_NAME)
        if legacy is None:
            raise FileNotFoundError(f"{folder} is not a model folder: it has no {CONFIG_NAME}")
        return ModelFolder(folder, legacy)
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    task = config.get("task", "classification")
    if task == "classification" and "architecture" not in config:
        raise ValueError(f"{config_path} has no 'architecture' entry")
    for key, kind in (("model_args", dict), ("model_kwargs", dict), ("classes", list), ("preprocessing", dict)):
        if config.get(key) is not None and not isinstance(config[key], kind):
            raise ValueError(f"{config_path}: {key!r} must be a JSON {'object' if kind is dict else 'array'}, "
                             f"got {config[key]!r}")
    if not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}")
    return ModelFolder(folder, config)


def _legacy_config(weights: Path) -> dict[str, Any] | None:
    """The config of a run directory written before model folders (its config in the safetensors metadata)."""
    if not weights.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        run = json.loads((f.metadata() or {}).get("config", "{}"))
    if not run:
        return None
    if run.get("task") == "detection":
        return {"library_name": "cbam", **run}
    from ..data import eval_preprocessing, parse_data

    spec = parse_data(run["data"]) if run.get("data") else None
    return {
        "library_name": "cbam", "task": "classification", "architecture": run["model"],
        "attention": run.get("attention"), "num_classes": run.get("num_classes", 1000),
        "model_args": run.get("model_kwargs") or {}, "classes": run.get("classes"), "data": run.get("data"),
        "preprocessing": eval_preprocessing(spec.kind, run.get("image_size")) if spec else None,
    }


def build_model(config: Mapping[str, Any], **overrides: Any) -> nn.Module:
    """The (untrained) classification model a ``config.json`` describes; ``overrides`` replace ``model_args``."""
    if config.get("task", "classification") != "classification":
        raise ValueError(f"the model folder holds a {config['task']} model, not a classification model")
    kwargs = {**config.get("model_args", {}), **overrides}
    return create_model(config["architecture"], attention=config.get("attention"),
                        num_classes=config.get("num_classes", 1000), **kwargs)


def from_pretrained(path_or_repo_id: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild a classification model from its model folder and load its weights strictly.

    Args:
        path_or_repo_id: a local folder, or a hub repo id already in the local Hugging Face cache.
        **overrides: options that replace recorded ones but leave the weights' shapes unchanged
            (e.g. ``drop_rate=0.2``).

    Returns:
        The model, in eval mode.
    """
    folder = read_model_folder(path_or_repo_id)
    model = build_model(folder.config, **overrides)
    load_state_dict_strict(model, folder.state_dict(), str(folder.weights))
    return model.eval()
