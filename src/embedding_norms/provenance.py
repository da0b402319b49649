"""Which code and which data trained a run.

The run hash covers the configuration only. So that a cached run is never presented as the
result of code that no longer exists, every run records in ``<run>/provenance.json``:

* ``code_fingerprint``: SHA-256 over the library files that run during training
  (:data:`TRAINING_FILES`, relative to ``src/embedding_norms``; path and bytes of each, in sorted
  order). Plotting, reporting and analysis code is not included: changing it needs a rebuild, not
  a retraining. Neither are ``configs/*.yaml`` and ``config.py``: they act on training only through
  the resolved :class:`~embedding_norms.config.RunConfig`, which is hashed into the run's name, so a
  change that matters gives another run (a change to a figure's parameters retrains nothing).
* ``git_commit`` / ``git_dirty``: the commit of the checkout and whether it had uncommitted
  changes (None outside a git checkout).
* ``data_source``: where the images came from (:func:`~embedding_norms.data.sources.data_source`):
  ``npz`` (offline JPEG copy), ``torchvision`` (the original pickles), ``folder``, ``download``
  or ``standin``. The JPEG copy and the pickles are different images, so the source is part of
  the run's identity: ``data.source`` in the config (set at planning time, see
  :func:`~embedding_norms.data.sources.resolve_data_source`) enters the hash, and training
  refuses a run whose ``data.source`` differs from the source actually found.

A run is *stale* (:func:`is_stale`) when its fingerprint differs from the current code's (or it
has no record: trained before records were kept). Checkpoints store the fingerprint too, and a
resume across different training code is refused (the run is retrained from scratch).
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, Optional

from .io import write_json

PACKAGE_DIR = Path(__file__).resolve().parent
#: Library files (relative to the package) whose change can change what a run trains to.
TRAINING_FILES = ("train.py", "checkpoints.py", "records.py", "models.py", "losses.py", "norm_control.py",
                  "evaluate.py", "health.py", "integrity.py", "facts.py", "data/augment.py", "data/prepare.py",
                  "data/sources.py", "data/loaders.py", "data/subsets.py")
PROVENANCE_FILE = "provenance.json"


@functools.lru_cache(maxsize=None)
def _fingerprint(package_dir: str) -> str:
    h = hashlib.sha256()
    files = [(f"embedding_norms/{rel}", Path(package_dir) / rel) for rel in TRAINING_FILES]
    for name, path in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def code_fingerprint() -> str:
    """SHA-256 (hex) of the training code this process runs (cached per process)."""
    return _fingerprint(str(PACKAGE_DIR))


def git_state(path: Path = PACKAGE_DIR) -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the git checkout holding ``path``; (None, None) outside git."""
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def record(run_dir: Path, data_source: str) -> dict[str, Any]:
    """Write ``<run_dir>/provenance.json`` for the code of this process and return it."""
    commit, dirty = git_state()
    rec = {"code_fingerprint": code_fingerprint(), "git_commit": commit, "git_dirty": dirty,
           "data_source": data_source}
    write_json(Path(run_dir) / PROVENANCE_FILE, rec)
    return rec


def read(run_dir: Path) -> Optional[dict[str, Any]]:
    """The run's provenance record, or None (none written, or unreadable)."""
    f = Path(run_dir) / PROVENANCE_FILE
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def is_stale(run_dir: Path) -> bool:
    """True when the run at ``run_dir`` was trained by other training code than this process runs
    (fingerprint differs) or has no provenance record. A folder with no run (never started) is
    not stale."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").exists() and not (run_dir / "checkpoints").exists():
        return False
    rec = read(run_dir)
    return rec is None or rec.get("code_fingerprint") != code_fingerprint()
