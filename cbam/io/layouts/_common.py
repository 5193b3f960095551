"""Shared machinery of the layout converters: key renaming rules and architecture matching."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...models import create_model, list_models

__all__ = ["Rule", "Conversion", "rename", "match_architecture"]

#: (regex matched against the whole key, replacement string or function of the match)
Rule = tuple[str, str | Callable[[re.Match], str]]


@dataclass
class Conversion:
    """A state dict in our layout and the attention preset it needs.

    Attributes:
        state_dict: our key names and shapes.
        attention, attention_kwargs: the :func:`cbam.create_model` attention options that reproduce
            the source layout's forward exactly.
        renamed: source keys whose name changed.
        reshaped: keys whose tensor was reshaped (1x1 conv <-> linear).
        notes: layout differences that do not change the eval-mode forward.
    """

    state_dict: dict[str, Tensor]
    attention: str
    attention_kwargs: dict[str, Any] = field(default_factory=dict)
    renamed: int = 0
    reshaped: int = 0
    notes: list[str] = field(default_factory=list)


def rename(state_dict: dict[str, Tensor], rules: Sequence[Rule], source: str) -> tuple[dict[str, Tensor], int]:
    """Rename every key by the first rule whose regex matches it in full; keys no rule matches are kept.

    Returns the new dict and the number of renamed keys. Raises ``ValueError`` if two keys collide.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, Tensor] = {}
    renamed = 0
    for key, value in state_dict.items():
        new = key
        for pattern, repl in compiled:
            m = pattern.fullmatch(key)
            if m:
                new = repl(m) if callable(repl) else m.expand(repl)
                break
        if new in out:
            raise ValueError(f"{source}: keys collide after renaming: {new!r}")
        out[new] = value
        renamed += new != key
    return out, renamed


def _signature(state_dict: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def _candidates(target: dict[str, tuple[int, ...]]) -> list[str]:
    """ResNet-family names, those whose depth matches the block count first (building a candidate costs time)."""
    blocks = {m.group(0) for k in target if (m := re.match(r"layer\d+\.\d+", k))}
    per_block = 3 if any(".conv3." in k for k in target) else 2
    depth = f"{len(blocks) * per_block + 2}"
    names = list_models("res*") + list_models("wide_res*")
    return sorted(names, key=lambda n: re.search(rf"(?<!\d){depth}(?!\d)", n) is None)


def match_architecture(
    state_dict: dict[str, Tensor], attention: str, attention_kwargs: dict[str, Any], source: str
) -> tuple[str, dict[str, Any]]:
    """Find the registered model whose parameters have exactly the names and shapes of ``state_dict``.

    Candidates are built on the meta device (no memory, no initialisation cost). Returns
    ``(name, kwargs)`` for :func:`cbam.create_model`, kwargs holding ``num_classes``, ``in_chans``,
    ``small_input`` and the attention options.
    """
    target = _signature(state_dict)
    if "head.fc.weight" not in target or "conv1.weight" not in target:
        raise ValueError(f"{source}: no stem (conv1) or classifier (head.fc) weights after conversion; is the layout right?; "
                         f"first keys: {list(target)[:5]}")
    num_classes, in_chans = target["head.fc.weight"][0], target["conv1.weight"][1]
    best: tuple[int, str, set[str], set[str]] = (-1, "", set(), set())
    for name in _candidates(target):
        for small_input in (False, True):
            kwargs = {"num_classes": num_classes, "in_chans": in_chans, "small_input": small_input,
                      "attention": attention, "attention_kwargs": dict(attention_kwargs)}
            with torch.device("meta"):
                model = create_model(name, **kwargs)
            own = _signature(model.state_dict())
            if own == target:
                if not small_input:
                    kwargs.pop("small_input")
                if in_chans == 3:
                    kwargs.pop("in_chans")
                if not attention_kwargs:
                    kwargs.pop("attention_kwargs")
                return name, kwargs
            score = sum(own.get(k) == v for k, v in target.items())
            if score > best[0]:
                mismatched = {k for k in target if own.get(k) != target[k]}
                best = (score, name, mismatched, {k for k in own if target.get(k) != own[k]})
    _, name, extra, missing = best
    raise ValueError(
        f"{source}: no registered ResNet / ResNeXt / Wide-ResNet has exactly these {len(target)} tensors; the closest, "
        f"{name}, differs in {len(extra)} source tensors (e.g. {sorted(extra)[:3]}) and lacks {len(missing)} "
        f"(e.g. {sorted(missing)[:3]})"
    )
