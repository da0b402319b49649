"""Integrity of a run's files: checksums of saved embeddings, completeness of the metrics.

Every file of a finished run that an artifact reads is verified by :func:`verify_run`
(``RunStore.verify``): ``metrics.csv`` parses and holds every epoch ``0..epochs`` (for ``done``
and ``collapsed`` runs) with a kNN accuracy at every evaluation epoch; ``class_norms.csv`` parses
and covers the same epochs; every embeddings file of ``train.save_embeddings_epochs`` exists and
matches the SHA-256 recorded next to it when it was saved (``epoch_XXXX.npz.sha256``). A damaged
run is reported as a list of :class:`Problem` (file, reason, fix); reading a damaged file through
the store raises :class:`DamagedRunError` with the same three facts instead of a raw
``UnicodeDecodeError`` / ``BadZipFile``.

Runs trained before checksums and provenance records were kept (no ``provenance.json``: old
stores, and stores fabricated by tests) are checked for readability only: missing files or
epochs and missing embeddings checksums are not reported (such runs are reported as stale
instead, :mod:`embedding_norms.provenance`; retraining them with ``--retrain-stale`` gives runs
that are verified in full).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .config import RunConfig
from .io import atomic_path, sha256_file

CHECKSUM_SUFFIX = ".sha256"


def retrain_fix(run_dir: Path) -> str:
    """The fix for a damaged run: the commands that retrain it (deterministic: same numbers)."""
    return (f"retrain the run: `mv {run_dir} {run_dir}.damaged` (or delete it), then rerun the command that "
            f"needs it (e.g. `python -m reproduce ARTIFACT --profile PROFILE`), which trains it again")


class DamagedRunError(RuntimeError):
    """A file of a run is unreadable, incomplete or does not match its checksum.

    Attributes:
        file: the damaged file; reason: what is wrong; fix: how to repair (retrain the run).
    """

    def __init__(self, file: Path, reason: str, fix: str):
        self.file, self.reason, self.fix = Path(file), reason, fix
        super().__init__(f"{file}: {reason}; {fix}")


@dataclass
class Problem:
    """One damaged file of a run: ``file``, ``reason``, ``fix`` (the command to retrain the run)."""

    file: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


# ------------------------------------------------------------------ embeddings
def save_npz_checked(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomically save ``arrays`` as ``.npz`` and record its SHA-256 in ``<path>.sha256``."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
        digest = sha256_file(tmp)
    with atomic_path(Path(str(path) + CHECKSUM_SUFFIX)) as tmp:
        tmp.write_text(digest + "\n")


def check_npz(path: Path, require_checksum: bool = True) -> Optional[str]:
    """Why the ``.npz`` at ``path`` is damaged, or None (checksum matches and the archive reads)."""
    side = Path(str(path) + CHECKSUM_SUFFIX)
    if not path.is_file():
        return "missing"
    if side.is_file():
        if sha256_file(path) != side.read_text().strip():
            return "checksum mismatch (truncated, corrupted or rewritten after training)"
    elif require_checksum:
        return f"no checksum recorded ({side.name} missing)"
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                z[k]
    except Exception as exc:  # noqa: BLE001 - any reading error (BadZipFile, CRC, ...) is damage
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def load_npz(path: Path, fix: str, require_checksum: bool = False) -> dict[str, np.ndarray]:
    """Arrays of a checked ``.npz``.

    Raises:
        DamagedRunError: checksum mismatch or unreadable archive (names the file and ``fix``).
    """
    why = check_npz(path, require_checksum)
    if why is not None:
        raise DamagedRunError(path, why, fix)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def float16_or_32(x: np.ndarray) -> np.ndarray:
    """``x`` as float16 when every value is representable (finite and ``|x| <= 65504``), else float32.

    Raises:
        ValueError: ``x`` holds NaN or infinite values (a diverged model: nothing to save).
    """
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{int((~np.isfinite(x)).sum())} embedding values are not finite")
    return x.astype(np.float16) if np.abs(x).max(initial=0.0) <= np.finfo(np.float16).max else x


# ------------------------------------------------------------------ tables
def read_table(path: Path, fix: str) -> pd.DataFrame:
    """A run's CSV table (empty frame when the file does not exist).

    Raises:
        DamagedRunError: not a readable CSV with an ``epoch`` column.
    """
    if not path.exists():
        return pd.DataFrame()
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - UnicodeDecodeError, ParserError, EmptyDataError, ...
        raise DamagedRunError(path, f"not a readable CSV ({type(exc).__name__}: {str(exc)[:120]})", fix) from None
    if "epoch" not in frame.columns or not pd.api.types.is_numeric_dtype(frame["epoch"]):
        raise DamagedRunError(path, "has no numeric epoch column", fix)
    return frame


def metrics_gaps(frame: pd.DataFrame, cfg: RunConfig, upto: int) -> Optional[str]:
    """Why ``metrics.csv`` rows do not cover epochs ``0..upto`` with kNN at every eval epoch, or None."""
    have = set(frame["epoch"].astype(int)) if len(frame) else set()
    missing = [e for e in range(upto + 1) if e not in have]
    if missing:
        return f"epochs {missing[:5]}{'...' if len(missing) > 5 else ''} missing (expected 0..{upto})"
    knn = dict(zip(frame["epoch"].astype(int), frame.get("knn_acc", pd.Series([math.nan] * len(frame)))))
    lost = [e for e in cfg.train.eval_epochs if e <= upto and not np.isfinite(knn.get(e, math.nan))]
    if lost:
        return f"kNN accuracy missing at evaluation epoch(s) {lost}"
    return None


def verify_run(run_dir: Path, cfg: RunConfig, state: str) -> list[Problem]:
    """Problems of the files of a run in state ``state`` (empty list: intact).

    Runs that are not finished (``pending``, ``running``, ``failed``) are checked for readability
    only; ``done`` and ``collapsed`` runs also for completeness and embeddings; ``diverged`` runs for
    readability of what they recorded.
    """
    run_dir = Path(run_dir)
    fix = retrain_fix(run_dir)
    problems: list[Problem] = []
    recorded = (run_dir / "provenance.json").exists()  # trained with records (and checksums) kept
    complete = state in ("done", "collapsed") and recorded
    tables = {}
    for name in ("metrics.csv", "class_norms.csv"):
        f = run_dir / name
        try:
            tables[name] = read_table(f, fix)
        except DamagedRunError as exc:
            problems.append(Problem(str(f), exc.reason, fix))
            continue
        if complete and tables[name].empty:
            problems.append(Problem(str(f), "missing or empty", fix))
    if complete and "metrics.csv" in tables and len(tables["metrics.csv"]):
        why = metrics_gaps(tables["metrics.csv"], cfg, cfg.train.epochs)
        if why:
            problems.append(Problem(str(run_dir / "metrics.csv"), why, fix))
    if complete and "class_norms.csv" in tables and len(tables["class_norms.csv"]):
        have = set(tables["class_norms.csv"]["epoch"].astype(int))
        missing = [e for e in range(cfg.train.epochs + 1) if e not in have]
        if missing:
            problems.append(Problem(str(run_dir / "class_norms.csv"), f"epochs {missing[:5]} missing", fix))
    if state in ("done", "collapsed"):
        for e in cfg.train.save_embeddings_epochs:
            f = run_dir / "embeddings" / f"epoch_{e:04d}.npz"
            if not recorded and not f.exists():
                continue
            why = check_npz(f, require_checksum=recorded)
            if why:
                problems.append(Problem(str(f), why, fix))
    return problems
