"""Checkpoints of a training run: saving with a checksum, loading after verifying it, and
choosing the checkpoint a run resumes from (it must belong to the run, to the current training
code and be covered by the run's metrics; issue 14)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from . import provenance
from .config import RunConfig
from .integrity import DamagedRunError, metrics_gaps
from .io import atomic_path, sha256_file
from .models import SSLModel
from .runs import RunStore

log = logging.getLogger("embedding_norms.train")


def is_checkpoint_epoch(epoch: int, last: int) -> bool:
    """Checkpoints are kept at every power-of-two epoch and at the last epoch."""
    return epoch == last or (epoch > 0 and epoch & (epoch - 1) == 0)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically save ``state`` with a ``.sha256`` side file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        digest = sha256_file(tmp)
    with atomic_path(path.with_suffix(".sha256")) as tmp:
        tmp.write_text(digest + "\n")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint after verifying its checksum.

    Raises:
        ValueError: checksum missing or different (corrupt or truncated file), or unreadable.
    """
    side = path.with_suffix(".sha256")
    if not side.exists():
        raise ValueError(f"{path}: no checksum file")
    if sha256_file(path) != side.read_text().strip():
        raise ValueError(f"{path}: checksum mismatch (corrupt or truncated)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means a bad file
        raise ValueError(f"{path}: unreadable ({exc})") from exc


def checkpoint_candidates(ckpt_dir: Path) -> list[Path]:
    """Checkpoints newest first: ``latest.pt`` then ``epoch_*.pt`` by decreasing epoch."""
    files = sorted(ckpt_dir.glob("epoch_*.pt"), reverse=True)
    latest = ckpt_dir / "latest.pt"
    return ([latest] if latest.exists() else []) + files


def resume(cfg: RunConfig, store: RunStore, ckpt_dir: Path, model: SSLModel,
            opt: torch.optim.Optimizer) -> tuple[int, int, float, list[dict], list[dict], list[str]]:
    """Load the newest checkpoint that belongs to this run and to this training code, and whose
    epochs are all in ``metrics.csv`` / ``class_norms.csv`` (with kNN at every evaluation epoch).

    Rejected (an older checkpoint is tried; with none left the run starts from scratch): a corrupt
    file, a checkpoint of another run (its ``config_hash``), one written by other training code
    (its ``code_fingerprint``: resuming is never done across code), one ahead of the metrics.

    Returns:
        (start epoch, global step, seconds trained before, metrics rows, class-norm rows, notes).
    """
    notes: list[str] = []
    try:
        old, oldc = store.metrics(cfg), store.class_norms(cfg)
    except DamagedRunError as exc:
        notes.append(f"metrics unreadable ({exc.reason}): retraining from scratch")
        log.warning(notes[-1])
        return 0, 0, 0.0, [], [], notes
    for cand in checkpoint_candidates(ckpt_dir):
        try:
            state = load_checkpoint(cand)
        except ValueError as exc:
            notes.append(f"skipped corrupt checkpoint {cand.name}: {exc}")
            log.warning("%s; trying an older checkpoint", exc)
            continue
        epoch = int(state["epoch"])
        why = None
        if state.get("config_hash") != cfg.hash():
            why = f"belongs to another run (config hash {state.get('config_hash')}, this run {cfg.hash()})"
        elif state.get("code_fingerprint") != provenance.code_fingerprint():
            why = "was written by other training code (stale; never resumed across code)"
        elif len(old) == 0 or metrics_gaps(old, cfg, epoch) or set(range(epoch + 1)) - set(oldc.get("epoch", [])):
            why = f"is ahead of metrics.csv/class_norms.csv ({metrics_gaps(old, cfg, epoch) if len(old) else 'empty'})"
        if why:
            notes.append(f"skipped checkpoint {cand.name} (epoch {epoch}): it {why}")
            log.warning(notes[-1])
            continue
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        log.info("resumed from %s (epoch %d)", cand.name, epoch)
        return (epoch, state["global_step"], float(state.get("train_seconds", 0.0)),
                old[old.epoch <= epoch].to_dict("records"), oldc[oldc.epoch <= epoch].to_dict("records"), notes)
    return 0, 0, 0.0, [], [], notes
