"""Hub-style model folders: ``config.json`` + ``model.safetensors``, as on the Hugging Face hub.

``save_pretrained(model, dir)`` writes the architecture name, the attention spec and the other
plain-value options :func:`cbam.create_model` was called with, and the weights as safetensors;
``from_pretrained(dir)`` rebuilds the model and loads the weights strictly. Nothing is downloaded:
a local folder is read directly, and a hub repository id is resolved only from the local Hugging
Face cache (``huggingface_hub`` is optional and used only for that).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from .models import create_model
from .weights import atomic_write, read_checkpoint, save_safetensors

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "save_pretrained", "from_pretrained", "load_config", "load_weights_strict"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_PLAIN = (str, int, float, bool, type(None))


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


def _model_config(model: nn.Module) -> dict[str, Any]:
    name, args = getattr(model, "model_name", None), getattr(model, "model_args", None)
    if name is None or args is None:
        raise ValueError(
            f"save_pretrained: {type(model).__name__} was not built by cbam.create_model, so its architecture "
            "is unknown; save its weights with cbam.weights.save_safetensors(model.state_dict(), path) instead"
        )
    args = dict(args)
    config = {
        "library_name": "cbam",
        "architecture": name,
        "attention": _plain(args.pop("attention", None), "attention"),
        "num_classes": args.pop("num_classes", 1000),
        "model_args": _plain(args, "model_args"),
    }
    if hasattr(model, "get_classifier") and model.get_classifier().out_features != config["num_classes"]:
        config["num_classes"] = model.get_classifier().out_features  # after reset_classifier
    return config


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model`` (built by :func:`cbam.create_model`) to ``directory`` as config.json + model.safetensors.

    Returns the directory. Both files are written atomically; an existing folder is updated in place.
    """
    directory = Path(directory)
    config = _model_config(model)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(model.state_dict(), directory / WEIGHTS_NAME)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text))
    return directory


def _resolve(path_or_repo_id: str | os.PathLike) -> Path:
    path = Path(path_or_repo_id)
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"from_pretrained: {path} is a file; expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"from_pretrained: no folder {path} (and huggingface_hub is not installed)") from None
    try:  # the local hub cache only: never the network
        return Path(snapshot_download(str(path_or_repo_id), local_files_only=True))
    except Exception as err:  # huggingface_hub raises several types for "not cached" / "bad repo id"
        raise FileNotFoundError(
            f"from_pretrained: no folder {path}, and no cached hub snapshot of that repo id "
            f"({type(err).__name__}); nothing is downloaded, fetch it yourself first"
        ) from None


def load_config(path_or_repo_id: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder."""
    folder = _resolve(path_or_repo_id)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"from_pretrained: {folder} has no {CONFIG_NAME}")
    config = json.loads(config_path.read_text())
    if "architecture" not in config:
        raise ValueError(f"from_pretrained: {config_path} has no 'architecture' entry")
    return config


def load_weights_strict(model: nn.Module, state_dict: dict, source: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a one-paragraph error on any mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source}: weights do not match {type(model).__name__} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} of the wrong shape); "
            f"missing e.g. {missing[:3]}, unexpected e.g. {unexpected[:3]}, wrong shape e.g. {wrong[:3]}"
        )
    model.load_state_dict(state_dict, strict=True)


def from_pretrained(path_or_repo_id: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained` and load its weights strictly.

    Args:
        path_or_repo_id: a local folder, or a hub repo id already in the local Hugging Face cache.
        **overrides: options that replace recorded ones but leave the weights' shapes unchanged
            (e.g. ``drop_rate=0.2``).

    Returns:
        The model, in eval mode.
    """
    folder = _resolve(path_or_repo_id)
    config = load_config(folder)
    kwargs = {**config.get("model_args", {}), **overrides}
    model = create_model(
        config["architecture"], attention=config.get("attention"), num_classes=config.get("num_classes", 1000), **kwargs
    )
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"from_pretrained: {folder} has no {WEIGHTS_NAME}")
    load_weights_strict(model, read_checkpoint(weights).state_dict, str(weights))
    return model.eval()
