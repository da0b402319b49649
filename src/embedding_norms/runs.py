"""The run store: one folder per training run, named from its config.

::

    runs/<method>-<dataset>[-imb][-holdout]-<hash>/
        config.yaml        the full RunConfig (the run is reproducible from it alone)
        status.json        state: pending | running | done | collapsed | diverged | failed, reason, epoch,
                           job ids, health verdict (see :mod:`embedding_norms.health`)
        provenance.json    code fingerprint, git commit, data source (:mod:`embedding_norms.provenance`)
        metrics.csv        one row per epoch: loss, lr, norm statistics, kNN accuracy, health columns
        class_norms.csv    per-epoch, per-class mean norms (probe set)
        checkpoints/       epoch_0001.pt, epoch_0002.pt, epoch_0004.pt, ..., latest.pt (+ .sha256)
        embeddings/        epoch_0016.npz (+ .npz.sha256) ... (train, train_aug, test, novel splits)
        linear_probe.json  linear-probe accuracy (when configured)
        train.log          log of the training process

All files are written atomically (temp file + rename). A process trains a run only while
holding an exclusive ``flock`` on ``<run>/.lock``; the lock disappears with the process, so a
killed run is simply resumed by the next process that takes the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import yaml

from .config import ConfigError, RunConfig, from_dict
from .integrity import DamagedRunError, Problem, load_npz, read_table, retrain_fix, verify_run  # noqa: F401
from .io import atomic_path, write_json, write_text

STATES = ("pending", "running", "done", "collapsed", "diverged", "failed")
DEFAULT_ROOT_ENV = "EMBEDDING_NORMS_RUNS"


class RunLocked(RuntimeError):
    """Another process holds the run's lock (it is training this run right now)."""


@dataclass
class RunStatus:
    """Status of a run as stored in ``status.json`` (plus whether a process holds the lock)."""

    state: str
    reason: str = ""
    epoch: int = 0
    updated: float = 0.0
    host: str = ""
    pid: int = 0
    slurm_job_id: Optional[str] = None
    log: Optional[str] = None
    train_seconds: Optional[float] = None
    health: Optional[dict] = None
    locked: bool = False

    @property
    def finished(self) -> bool:
        """True for final outcomes: ``done``, ``collapsed`` and ``diverged`` (deterministic given the
        config). ``health`` holds the verdict of a collapsed/diverged run: ``measure``, ``value``,
        ``threshold``, ``epoch`` (:class:`embedding_norms.health.Verdict`).

        A ``failed`` run (an error of the environment: data, device, memory, a crash) is not
        finished: the next call retries it, resuming from its newest checkpoint.
        """
        return self.state in ("done", "collapsed", "diverged")


class RunStore:
    """Folder of runs. ``root`` defaults to ``$EMBEDDING_NORMS_RUNS`` or ``./runs``."""

    def __init__(self, root: Optional[str | os.PathLike] = None):
        self.root = Path(root or os.environ.get(DEFAULT_ROOT_ENV) or "runs").resolve()

    # -------------------------------------------------------------- paths
    def path(self, cfg: RunConfig) -> Path:
        """Folder of the run described by ``cfg``."""
        return self.root / cfg.name

    def ensure(self, cfg: RunConfig) -> Path:
        """Create the run folder with its ``config.yaml`` and a pending status (idempotent).

        Raises:
            RuntimeError: the folder holds a different config (hash collision or tampering).
        """
        d = self.path(cfg)
        d.mkdir(parents=True, exist_ok=True)
        cfile = d / "config.yaml"
        if cfile.exists():
            stored = load_config(d)
            if stored.hash() != cfg.hash():
                raise RuntimeError(f"{cfile} holds a config with hash {stored.hash()}, expected {cfg.hash()}; "
                                   f"move the folder away")
        else:
            write_text(cfile, yaml.safe_dump(cfg.to_dict(), sort_keys=True))
        if not (d / "status.json").exists():
            self.set_status(cfg, "pending")
        return d

    # -------------------------------------------------------------- status
    def status(self, cfg: RunConfig) -> RunStatus:
        """Current status; a ``running`` run whose lock is free is reported as ``pending``
        (interrupted; it resumes from its last checkpoint)."""
        d = self.path(cfg)
        f = d / "status.json"
        if not f.exists():
            return RunStatus("pending", "not started")
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError:
            return RunStatus("pending", "unreadable status.json (will be rewritten)")
        st = RunStatus(**{k: v for k, v in data.items() if k in RunStatus.__dataclass_fields__})
        st.locked = is_locked(d)
        if st.state == "running" and not st.locked:
            st.state = "pending"
            st.reason = f"interrupted at epoch {st.epoch}; resumes from its last checkpoint"
        return st

    def set_status(self, cfg: RunConfig, state: Optional[str], reason: Optional[str] = "",
                   epoch: Optional[int] = None, **extra: Any) -> None:
        """Write ``status.json`` atomically, keeping fields not given (e.g. the Slurm job id).

        ``state=None`` / ``reason=None`` keep the stored state / reason (to add fields only).
        """
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        f = self.path(cfg) / "status.json"
        old: dict[str, Any] = {}
        if f.exists():
            try:
                old = json.loads(f.read_text())
            except json.JSONDecodeError:
                old = {}
        old.update(extra)
        if state is not None:
            old.update(state=state, host=socket.gethostname(), pid=os.getpid())
        old.setdefault("state", "pending")
        if reason is not None:
            old["reason"] = reason
        old["updated"] = time.time()
        if epoch is not None:
            old["epoch"] = int(epoch)
        write_json(f, old)

    # -------------------------------------------------------------- results
    def metrics(self, cfg: RunConfig) -> pd.DataFrame:
        """Per-epoch metrics (empty frame if none yet).

        Raises:
            DamagedRunError: ``metrics.csv`` is not a readable CSV (names the file and the fix).
        """
        return read_table(self.path(cfg) / "metrics.csv", retrain_fix(self.path(cfg)))

    def class_norms(self, cfg: RunConfig) -> pd.DataFrame:
        """Per-epoch, per-class norm statistics of the probe set (empty frame if none).

        Raises:
            DamagedRunError: ``class_norms.csv`` is not a readable CSV.
        """
        return read_table(self.path(cfg) / "class_norms.csv", retrain_fix(self.path(cfg)))

    def verify(self, cfg: RunConfig) -> list[Problem]:
        """Problems of the run's files (empty: intact); see :func:`embedding_norms.integrity.verify_run`.
        Each :class:`~embedding_norms.integrity.Problem` names the file, the reason and the fix."""
        d = self.path(cfg)
        if not d.exists():
            return []
        return verify_run(d, cfg, self.status(cfg).state)

    def stale(self, cfg: RunConfig) -> bool:
        """Whether the run was trained by other training code than this process runs
        (:func:`embedding_norms.provenance.is_stale`)."""
        from .provenance import is_stale

        return is_stale(self.path(cfg))

    def embeddings(self, cfg: RunConfig, epoch: Optional[int] = None) -> dict[str, np.ndarray]:
        """Saved embeddings at ``epoch`` (default: the last saved epoch).

        Keys are ``<split>/<field>``: splits ``train``, ``train_aug``, ``test``, ``novel``;
        fields ``z`` ``(N, d_z)`` (projector output), ``p`` ``(N, d_z)`` (predictor output,
        SimSiam/BYOL only), float16 where every value fits, else float32; ``z_norm``, ``p_norm``,
        ``h_norm`` ``(N,)`` float32; ``labels``, ``indices`` ``(N,)`` int64 (positions in the
        original split). :func:`embedding_of` picks one embedding.

        Raises:
            FileNotFoundError: no embeddings saved (at that epoch).
            DamagedRunError: the file does not match the checksum recorded when it was saved, or is
                unreadable (names the file and the fix).
        """
        d = self.path(cfg) / "embeddings"
        files = sorted(d.glob("epoch_*.npz")) if d.exists() else []
        if epoch is not None:
            files = [f for f in files if f.name == f"epoch_{epoch:04d}.npz"]
        if not files:
            raise FileNotFoundError(f"no embeddings{'' if epoch is None else f' at epoch {epoch}'} in {d}")
        return load_npz(files[-1], retrain_fix(self.path(cfg)))

    def linear_probe(self, cfg: RunConfig) -> Optional[dict[str, Any]]:
        """Linear-probe result dict, or None."""
        f = self.path(cfg) / "linear_probe.json"
        return json.loads(f.read_text()) if f.exists() else None


#: Which vector an analysis uses: the projector output ``z`` (every method; PAPER.md: "Figure-4
#: analyses use the projector embedding") or the predictor output ``p`` (SimSiam/BYOL only).
VECTORS = ("z", "p")


def embedding_of(arrays: dict[str, np.ndarray], split: str, vector: str = "z",
                 vectors: bool = True) -> tuple[Optional[np.ndarray], np.ndarray]:
    """Vectors ``(N, d)`` and norms ``(N,)`` of one vector of a split of :meth:`RunStore.embeddings`.

    Reads the keys ``<split>/<vector>`` and ``<split>/<vector>_norm`` (issue 11: arrays are named
    by vector; ``z`` is saved for every method, ``p`` only for methods with a predictor).

    Args:
        arrays: the saved embeddings of a run.
        split: ``train``, ``train_aug``, ``test`` or ``novel``.
        vector: ``z`` (projector output) or ``p`` (predictor output, SimSiam/BYOL only).
        vectors: False to get only the norms (then the vectors are None).

    Raises:
        ValueError: unknown ``vector``, or ``p`` for a run whose method has no predictor (SimCLR).
        KeyError: the split is missing, the run was saved under the old names (``emb``,
            ``emb_norm``; retrain it), or the vectors (not only the norms) are missing.
    """
    if vector not in VECTORS:
        raise ValueError(f"unknown vector {vector!r}; choose one of {', '.join(VECTORS)} "
                         f"(z = projector output, p = predictor output)")
    if f"{split}/z_norm" not in arrays:
        if f"{split}/emb_norm" in arrays:
            raise KeyError(f"the run saved its {split} embeddings under the old names (emb, emb_norm); move its folder "
                           f"(see `python -m reproduce status`) out of the run store so that the next call retrains it")
        raise KeyError(f"the run saved no {split} embeddings")
    if vector == "p" and f"{split}/p_norm" not in arrays:
        raise ValueError(f"the run saved no predictor output p for {split}: its method has no predictor (SimCLR); "
                         f"use vector z")
    norms = arrays[f"{split}/{vector}_norm"]
    if not vectors:
        return None, norms
    if f"{split}/{vector}" not in arrays:
        raise KeyError(f"the run saved only the norms of {vector} for {split}, not the vectors")
    return arrays[f"{split}/{vector}"], norms


def load_config(run_dir: str | os.PathLike) -> RunConfig:
    """The :class:`RunConfig` stored in ``<run_dir>/config.yaml``.

    Raises:
        ConfigError: the file is not valid YAML or not a valid config (it is written atomically,
            so this means it was edited by hand); the message names the file and the fix.
    """
    f = Path(run_dir) / "config.yaml"
    fix = f"move {Path(run_dir)} away (or retrain it with `python -m reproduce ... --force ARTIFACT`)"
    try:
        data = yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{f} is not valid YAML ({str(exc).splitlines()[0]}); {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{f} does not hold a run config; {fix}")
    return from_dict(data, source=str(f))


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write a CSV."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ------------------------------------------------------------------ locking
class RunLock:
    """Exclusive, non-blocking ``flock`` on ``<run_dir>/.lock``; released when the process ends.

    Raises:
        RunLocked: on ``__enter__`` when another process holds the lock.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.fh = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RunLocked(f"{self.path.parent} is being trained by another process") from None
        self.fh = fh
        fh.seek(0)
        fh.truncate()
        fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def is_locked(run_dir: Path) -> bool:
    """Whether a process currently holds the run's lock.

    Opens ``.lock`` read-only (``flock`` does not need write access), so a finished run store on
    a read-only file system can be read; a lock file that cannot be opened counts as free.
    """
    path = Path(run_dir) / ".lock"
    try:
        fh = open(path, "rb")
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False
