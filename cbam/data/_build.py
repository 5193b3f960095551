"""Building a generated dataset folder once: the one build policy of both embedded datasets."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..io.files import read_json

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["build_once", "load_meta"]


def load_meta(root: str | os.PathLike) -> dict[str, Any] | None:
    """The ``meta.json`` (build parameters) of a generated dataset at ``root``, or None if there is none."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError as err:
        raise ValueError(f"{err}; delete {Path(root)} to rebuild it") from None


def build_once(root: str | os.PathLike, params: dict[str, Any], write: Callable[[Path], object], *,
               what: str) -> Path:
    """Build the dataset ``params`` describes at ``root`` with ``write(folder)``, unless ``root/meta.json``
    already records exactly ``params``.

    The build goes into a temporary sibling folder, gets its ``meta.json`` and is renamed into place,
    so ``root`` is never half-written. A non-empty ``root`` without ``meta.json`` is never touched.

    Several runs may build and read the same folder at once (torchrun ranks, two trainings started
    together): processes build it once under an exclusive lock (``.<root>.lock`` beside it), and a
    build with other parameters is an error naming the parameters that differ; a built dataset is
    never replaced (another run may be reading it, and nothing is rebuilt behind the user's back).

    Args:
        what: the dataset's name in messages, e.g. ``"embedded dataset"``.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{what} root {root} exists and is not a folder")
    if load_meta(root) == params:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(root.parent / f".{root.name}.lock"):
        built = load_meta(root)
        if built == params:  # another process has just built it
            return root
        if built is None and root.exists() and any(root.iterdir()):
            raise ValueError(f"{root} is a non-empty folder without meta.json, not an {what}; "
                             "choose another folder (it is not touched)")
        if built is not None:
            differ = sorted(k for k in params.keys() | built.keys() if params.get(k) != built.get(k))
            raise ValueError(f"{root} holds the {what} built with other parameters ({', '.join(differ)}: "
                             f"{[built.get(k) for k in differ]}, asked for {[params.get(k) for k in differ]}); it is "
                             "not touched, because another run may be using it: choose another folder or delete it")
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset is an ordinary folder
        old = root.with_name(f".{root.name}.old-{os.getpid()}")
        try:
            write(tmp)
            (tmp / "meta.json").write_text(json.dumps(params, indent=2, sort_keys=True))
            if root.exists():  # an empty folder
                os.replace(root, old)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    return root


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_file`` (POSIX ``flock``; none where it is missing)."""
    with open(lock_file, "a") as f:
        if fcntl is None:
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
