"""Files and folders a run writes: ``atomic_write``, the run-directory lock, output checks."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

__all__ = ["LOCK_NAME", "RunDirBusyError", "atomic_write", "check_output_dir", "check_output_file", "existing_dir",
           "existing_file", "read_json", "run_lock", "write_csv"]

#: The lock file a run holds in its run directory.
LOCK_NAME = ".lock"


class RunDirBusyError(ValueError):
    """Another process holds the run directory's lock."""


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write ``path`` so that readers see either the old file or the complete new one.

    ``write(tmp)`` fills a temporary file beside ``path`` (it keeps ``path``'s suffix, since some
    writers choose the format from it); the file gets the mode the umask gives a new file (not
    ``mkstemp``'s private 0600), is fsync'ed and renamed over ``path`` with ``os.replace`` (atomic on
    POSIX and Windows), and the directory is fsync'ed so the rename survives a power loss. If
    ``write`` fails the temporary file is removed and ``path`` is untouched.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.chmod(_umask_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def write_csv(path: str | os.PathLike, rows: list[list[Any]]) -> Path:
    """Write ``rows`` (the header first) as CSV, atomically."""
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return atomic_write(path, lambda tmp: tmp.write_text(text.getvalue()))


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike, what: str = "--out", *, create: bool = True) -> Path:
    """Make sure ``path`` is a writable folder, before any work; returns it as a Path.

    With ``create`` the folder is made (so that any reason it cannot be is reported now); without,
    only its nearest existing folder is checked (a failed command then leaves nothing behind).

    Raises:
        ValueError: ``path`` is a file, lies under a file, cannot be created, or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file, not a folder")
    base = _existing_ancestor(path.absolute())
    if not base.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be created: {str(base)!r} is a file, not a folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{what} {str(path)!r} cannot be created: {err.strerror or err}") from None
    if not os.access(path if create else base, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r} is not writable")
    return path


def check_output_file(path: str | os.PathLike, what: str = "--out", *, force: bool = False) -> Path:
    """Check that the file ``path`` can be written: not a folder, its folder writable; existing only with ``force``.

    Raises:
        ValueError: ``path`` is a folder, exists (without ``force``), or cannot be created.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder, expected a file path")
    if path.exists() and not force:
        raise ValueError(f"{what} {str(path)!r} already exists; pass --force to overwrite it")
    check_output_dir(path.absolute().parent, what=f"{what} {str(path)!r}: folder", create=False)
    return path


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is a file; else ``FileNotFoundError`` / ``ValueError`` saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


def existing_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is a folder; else ``FileNotFoundError`` / ``ValueError`` saying what it is instead."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file, expected a folder")
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in the file ``path``; malformed JSON (or text that is not UTF-8) raises one
    ``ValueError`` naming the file and the position."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not valid JSON (not UTF-8 text)") from None


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir/.lock`` (created with the folder) for the body; released on exit, crash or kill.

    The lock is a POSIX ``flock``, which the kernel drops when the process ends, so a crashed run
    never leaves a stale lock. The file records the holder (pid, host, start time) for the message.

    Raises:
        RunDirBusyError: another process holds it; the message names that process.
    """
    run_dir = check_output_dir(run_dir)
    lock_file = run_dir / LOCK_NAME
    if fcntl is None:
        yield run_dir
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, _umask_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusyError(f"run directory {str(run_dir)!r} is in use by {_holder(lock_file)}; wait for it "
                                  "to finish or choose another --out") from None
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        try:
            yield run_dir
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock
