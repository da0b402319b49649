"""Atomic file output: everything is written to a temporary file in the target folder and
renamed into place, so an interrupted process never leaves a half-written file.

Files get the mode of an ordinary ``open(..., "w")``: ``0o666 & ~umask`` (``tempfile`` would
leave them ``0o600``, unreadable for collaborators on a shared file system)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the suffix of ``path`` (savers that pick a format by suffix work).
    The file gets mode ``0o666 & ~umask``, like a file created by ``open``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # a saver may have replaced the file: chmod by path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process's umask, from ``/proc/self/status`` where Linux reports it (no race with other
    threads), else by swapping it with ``os.umask`` and back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def unwritable_folder(path: str | os.PathLike) -> Optional[Path]:
    """The first folder on the way to ``path`` that this process cannot create files in, or None.

    ``path`` need not exist: the check walks up to its nearest existing ancestor (which must be a
    writable folder, since the missing ones would be created in it). A file that exists where a
    folder is needed counts as unwritable. Nothing is created.
    """
    p = Path(path).absolute()
    while not p.exists():
        if p.parent == p:
            return p
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        return p
    return None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN written as null)."""
    write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def _clean(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
