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

* ``library_code`` / ``artifact_code``: the checkout (path, commit) of the library that trained the
  run and of the artifact code that planned it (the runner passes its folder in
  ``$EMBEDDING_NORMS_ARTIFACT_CODE``); an installed copy has no checkout.

One checkout per build (issue 23): :func:`check_one_checkout` refuses, before any work, code read
from two checkouts (e.g. a second clone run with the first one's editable install) or from a
checkout other than the working directory's; the runner and the single-run command call it.

A run is *stale* (:func:`is_stale`) when its fingerprint differs from the current code's (or it
has no record: trained before records were kept). Checkpoints store the fingerprint too, and a
resume across different training code is refused (the run is retrained from scratch).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
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


def _code_record(code_dir: Path) -> dict[str, Any]:
    """Where a package's code was read from: its checkout and commit, or the installed copy's folder."""
    root = source_checkout(code_dir)
    commit, dirty = git_state(root) if root is not None else (None, None)
    return {"checkout": str(root) if root else None, "package": str(Path(code_dir).resolve()),
            "git_commit": commit, "git_dirty": dirty}


def record(run_dir: Path, data_source: str) -> dict[str, Any]:
    """Write ``<run_dir>/provenance.json`` for the code of this process and return it.

    Besides the fingerprint and the data source it names the checkout (path, commit) of the
    library that trained the run and, when the runner launched it (``$EMBEDDING_NORMS_ARTIFACT_CODE``),
    of the artifact code that planned it; ``git_commit`` is the library's (None outside a checkout).
    """
    lib = _code_record(PACKAGE_DIR)
    artifact = os.environ.get(ARTIFACT_CODE_ENV)
    rec = {"code_fingerprint": code_fingerprint(), "git_commit": lib["git_commit"], "git_dirty": lib["git_dirty"],
           "data_source": data_source, "library_code": lib,
           "artifact_code": _code_record(Path(artifact)) if artifact else None}
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


# ----------------------------------------------------------------- one checkout per build (issue 23)
#: Environment variable through which the runner tells training workers (local or Slurm) where
#: its artifact code (``reproduce``) was read from, so that ``provenance.json`` names it.
ARTIFACT_CODE_ENV = "EMBEDDING_NORMS_ARTIFACT_CODE"


def _is_checkout(root: Path) -> bool:
    """True when ``root`` is a source checkout of this project (``pyproject.toml`` next to
    ``src/embedding_norms/`` and ``reproduce/``)."""
    return ((root / "pyproject.toml").is_file() and (root / "src" / "embedding_norms" / "__init__.py").is_file()
            and (root / "reproduce" / "__init__.py").is_file())


def source_checkout(code_dir: Path) -> Optional[Path]:
    """The checkout whose files a package folder *is*: ``<root>`` for ``<root>/src/embedding_norms``
    (the library) or ``<root>/reproduce`` (the artifact code), None for a regular installed copy
    (e.g. in ``site-packages``), even when that environment lies inside a checkout."""
    code_dir = Path(code_dir).resolve()
    if code_dir.name == "embedding_norms" and code_dir.parent.name == "src":
        root = code_dir.parent.parent
    elif code_dir.name == "reproduce":
        root = code_dir.parent
    else:
        return None
    return root if _is_checkout(root) else None


def enclosing_checkout(path: Path) -> Optional[Path]:
    """The checkout of this project that contains ``path`` (a working directory), or None."""
    path = Path(path).resolve()
    for cand in (path, *path.parents):
        if _is_checkout(cand):
            return cand
    return None


class MixedCheckoutError(RuntimeError):
    """A build would run code of two checkouts, or code of one checkout from inside another.

    Attributes:
        origins: {role: package folder} of the code that was checked; here: the checkout to use.
    """

    def __init__(self, message: str, origins: dict[str, Path], here: Path):
        self.origins, self.here = origins, here
        super().__init__(message)


def check_one_checkout(origins: dict[str, Path], cwd: Optional[Path] = None) -> Optional[Path]:
    """Check that all the code of a build comes from one checkout: the one it was started in.

    Args:
        origins: {role (e.g. ``"artifact code (reproduce)"``): the folder the package was imported
            from}; a regular (non-editable) install counts as no checkout and is accepted.
        cwd: the working directory (default: the process's); when it lies inside a checkout of this
            project, that checkout must be the code's.

    Returns:
        The checkout the build runs in (the code's, else the working directory's), or None when
        neither is a checkout (regular installs run outside one: outputs go where the user says).

    Raises:
        MixedCheckoutError: the packages come from different checkouts, or from a checkout other
            than the working directory's; the message names every path and the fix.
    """
    roots = {role: source_checkout(p) for role, p in origins.items()}
    here = enclosing_checkout(Path.cwd() if cwd is None else cwd)
    found = {r for r in roots.values() if r is not None}
    if len(found) <= 1 and (here is None or not found or found == {here}):
        return next(iter(found), here)
    target = here or next(r for r in roots.values() if r is not None)
    lines = [f"this build would mix code of two checkouts of the repository (nothing was trained or written):"]
    lines += [f"  {role}: {Path(p).resolve()} ({'checkout ' + str(r) if r else 'installed copy'})"
              for role, (p, r) in ((k, (origins[k], roots[k])) for k in origins)]
    if here is not None:
        lines.append(f"  working directory: inside checkout {here}")
    lines += [f"fix (one of), to build with the code of {target}:",
              f"  - activate {target}'s own environment (`make setup` there creates {target}/.venv)",
              f"  - `pip install -e {target}` into the active environment",
              f"  - run from {target} with `PYTHONPATH={target / 'src'}:{target}` (PYTHONPATH=src:. there)"]
    raise MixedCheckoutError("\n".join(lines), dict(origins), target)


def describe_code(origins: dict[str, Path]) -> str:
    """One line naming the checkout path and commit of every package of ``origins`` ({role: folder});
    packages of one checkout are named together (for REPORT.md's header and the console)."""
    by_root: dict[str, list[str]] = {}
    for role, p in origins.items():
        root = source_checkout(p)
        if root is None:
            key = f"installed copy {Path(p).resolve()}"
        else:
            commit, dirty = git_state(root)
            key = (f"checkout {root} at commit {commit[:10] if commit else 'unknown (not a git checkout)'}"
                   + (" (with uncommitted changes)" if dirty else ""))
        by_root.setdefault(key, []).append(role)
    return "; ".join(f"{' and '.join(roles)} from {key}" for key, roles in by_root.items())
