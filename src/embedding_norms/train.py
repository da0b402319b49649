"""One training run: SGD with the released schedule, norm tracking, kNN, checkpoints, resume.

``train(cfg)`` trains the run described by ``cfg`` into its run-store folder and returns its
final :class:`~embedding_norms.runs.RunStatus`. It is idempotent: a finished run is not
trained again; an interrupted run resumes from its newest valid checkpoint; with a fixed
seed on the CPU the resumed run ends with exactly the metrics of an uninterrupted one
(per-epoch data order and augmentations are seeded by ``(seed, epoch)``).

Command line (one run), in :mod:`embedding_norms.train_cli`::

    python -m embedding_norms.train_cli --method simclr --profile smoke --set optim.lr=0.1
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import ConfigError, OptimConfig, RunConfig
from . import provenance
from .checkpoints import is_checkpoint_epoch, load_checkpoint, resume, save_checkpoint  # noqa: F401 (re-exported)
from .data import DataError, SSLAugment, prepare_data
from .data.sources import data_source
from .evaluate import RELEASED_PROBE, linear_probe, linear_probe_released, recalibrated_batchnorm
from .health import Diverged, Verdict, collapse, divergence
from .io import write_json
from .models import SSLModel
from .records import knn, norm_records, save_embeddings
from .runs import RunLock, RunStatus, RunStore, write_frame

log = logging.getLogger("embedding_norms.train")


# --------------------------------------------------------------------------- schedule
def schedule_value(step: int, steps_per_epoch: int, cfg: OptimConfig, epochs: int) -> float:
    """The released code's ``get_lr``: linear warm-up from 0, then cosine decay.

    ``v(step) = lr * step / W`` for ``step <= W`` (``W = warmup_epochs * steps_per_epoch``),
    else ``final + (lr - final) * (1 + cos(pi * step / T)) / 2`` with
    ``T = horizon * steps_per_epoch`` (``OptimConfig.horizon``: ``schedule_epochs``, or the run's
    epochs x ``schedule_factor``; the cosine is evaluated from step 0, as released).
    """
    total = cfg.horizon(epochs) * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if step > warm:
        return cfg.final_lr + (cfg.lr - cfg.final_lr) * 0.5 * (1 + math.cos(step / total * math.pi))
    return cfg.lr * step / warm if warm > 0 else cfg.lr


def learning_rate(step: int, micro_batches_per_epoch: int, cfg: OptimConfig, epochs: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based), with the released quirks as configured.

    * ``lr_schedule="released"``: the released code passes ``get_lr`` to ``LambdaLR`` as a
      multiplier of ``lr``, so the learning rate is ``lr * v(step)`` (peak ``lr**2``);
      ``"intended"``: ``v(step)``.
    * ``accumulation="released"``: ``get_lr`` counts epochs in micro-batches but is stepped
      once per optimizer step, so the schedule is stretched ``accumulation_steps`` times;
      ``"intended"``: it counts optimizer steps.
    """
    per_epoch = micro_batches_per_epoch if cfg.accumulation == "released" else max(1, micro_batches_per_epoch // cfg.accumulation_steps)
    v = schedule_value(step, per_epoch, cfg, epochs)
    return cfg.lr * v if cfg.lr_schedule == "released" else v


def resolve_device(device: Optional[str | torch.device] = None) -> torch.device:
    """``device`` or, if None/"auto", CUDA when available else CPU.

    Raises:
        ConfigError: an unknown device string, or a CUDA device when none is visible (checked
            before any data is loaded or any run is touched).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r} is not a device ({exc}); use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible here (torch.cuda.is_available() is False); "
                          f"use --device cpu or --device auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device}: only cpu and cuda are supported")
    return dev


# --------------------------------------------------------------------------- training
def _optimizer(model: SSLModel, cfg: RunConfig) -> torch.optim.SGD:
    o = cfg.optim
    params = model.online_parameters()
    if o.predictor_constant_lr and model.predictor is not None:
        pred = {id(p) for p in model.predictor.parameters()}
        groups = [{"params": [p for p in params if id(p) not in pred], "scheduled": True},
                  {"params": [p for p in params if id(p) in pred], "scheduled": False, "lr": o.lr}]
    else:
        groups = [{"params": params, "scheduled": True}]
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of the training forward pass and loss for ``precision``.

    ``bf16``: ``torch.autocast(device.type, dtype=torch.bfloat16)`` (on the CPU and on CUDA);
    ``fp32``: a disabled autocast (plain fp32). Weights, gradients and optimizer state stay fp32
    either way; evaluation (norms, kNN, saved embeddings) runs outside this context in fp32.

    Raises:
        ConfigError: ``precision`` is not ``fp32`` or ``bf16``.
    """
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"train.precision must be fp32 or bf16, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def keeps_data_on_device(device: torch.device) -> bool:
    """Whether the uint8 training set is moved to ``device`` once (True for any accelerator).

    On the CPU the images already live where the model runs; on a GPU a one-time copy
    (CIFAR-10: 150 MB) replaces a host-to-device copy of every batch.
    """
    return torch.device(device).type != "cpu"


def training_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The training images where the training loop should index them: ``images`` itself on the
    CPU, else one copy on ``device`` (see :func:`keeps_data_on_device`). uint8 ``(N, 3, H, W)``."""
    return images.to(device) if keeps_data_on_device(device) else images


def train_steps(model: SSLModel, opt: torch.optim.Optimizer, images: torch.Tensor, steps, aug: SSLAugment,
                o: OptimConfig, generator: torch.Generator, device: torch.device, global_step: int,
                micro_per_epoch: int, epochs: int, precision: str = "fp32") -> tuple[list[float], float, int]:
    """The inner training loop: one optimizer step per element of ``steps``.

    Each element holds the indices of ``batch_size * accumulation_steps`` training images; each
    micro-batch is augmented twice (two views, on ``device``), its loss back-propagated (summed
    over micro-batches as released, or averaged), then SGD steps, the BYOL target is updated and
    the learning rate of the scheduled parameter groups follows :func:`learning_rate`.

    The forward pass and loss run under :func:`autocast` for ``precision``; the backward pass
    and the SGD step run outside it on the fp32 weights.

    Args:
        images: uint8 ``(N, 3, H, W)`` training images, on the CPU or already on ``device``
            (:func:`training_images`; then only the indices are copied there).
        steps: iterable of index tensors ``(batch_size * accumulation_steps,)``.
        precision: ``fp32`` or ``bf16`` (``train.precision``).

    Returns:
        (micro-batch losses, last learning rate, new global step).

    Raises:
        Diverged: a loss is NaN or infinite (the step is not taken).
    """
    model.train()
    losses: list[float] = []
    lr = 0.0
    cast = autocast(device, precision)
    for idx_all in steps:
        idx_all = idx_all.to(images.device, non_blocking=True)
        lr = learning_rate(global_step, micro_per_epoch, o, epochs)
        for group in opt.param_groups:
            if group.get("scheduled", True):
                group["lr"] = lr
        for a in range(o.accumulation_steps):
            imgs = images[idx_all[a * o.batch_size:(a + 1) * o.batch_size]]
            x1, x2 = aug(imgs, generator, device), aug(imgs, generator, device)
            with cast:
                loss, _ = model.loss(x1, x2)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise Diverged(f"loss became {value} at step {global_step}")
            (loss / o.accumulation_steps if o.accumulation == "intended" else loss).backward()
            losses.append(value)
        opt.step()
        opt.zero_grad(set_to_none=True)
        model.update_target()
        global_step += 1
        if hasattr(steps, "set_postfix"):
            steps.set_postfix(loss=f"{np.mean(losses):.3f}", lr=f"{lr:.3g}")
    return losses, lr, global_step


def epoch0_batchnorm(cfg: RunConfig, model: SSLModel, images: torch.Tensor, aug: SSLAugment,
                     device: torch.device):
    """The context in which the untrained network (epoch 0) is evaluated: BatchNorm statistics
    recalibrated on augmented training views (``eval.epoch0_batchnorm = recalibrated``: up to 50
    training micro-batches drawn with a generator of their own, so the training stream is not
    touched; the buffers are restored afterwards), or the initial statistics (``initial``)."""
    if cfg.eval.epoch0_batchnorm == "initial":
        return contextlib.nullcontext()
    g = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + 999_983)
    bs = cfg.optim.batch_size
    order = torch.randperm(len(images), generator=g)[:50 * bs].to(images.device)
    return recalibrated_batchnorm(model, images[order], device, bs, aug, g)


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def train(cfg: RunConfig, store: Optional[RunStore] = None, data_dir: Optional[str] = None,
          download: Optional[bool] = None, device: Optional[str | torch.device] = None,
          progress: bool = True, extra_status: Optional[dict[str, Any]] = None) -> RunStatus:
    """Train (or resume, or skip if finished) the run described by ``cfg``.

    Args:
        cfg: the run.
        store: run store (default ``./runs`` or ``$EMBEDDING_NORMS_RUNS``).
        data_dir, download: where the data comes from (see :mod:`embedding_norms.data.sources`).
        device: ``cpu``, ``cuda`` or None (auto).
        progress: show tqdm progress bars.
        extra_status: fields recorded in ``status.json`` (e.g. ``slurm_job_id``).

    Returns:
        the final status (``done``, ``collapsed``, ``diverged`` (see :mod:`embedding_norms.health`) or
        ``failed``). Errors found only once the data
        are loaded (e.g. fewer training images than one optimizer step, a missing or corrupt data
        file) and any crash mark the run ``failed`` with the reason and the log; the next call
        retries it.

    Raises:
        RunLocked: another process is training this run.
        KeyboardInterrupt: re-raised after marking the run as interrupted (it resumes later).
    """
    store = store or RunStore()
    run_dir = store.ensure(cfg)
    with RunLock(run_dir):
        st = store.status(cfg)
        if st.finished:
            return st
        handler = _setup_logging(run_dir)
        try:
            return _train_locked(cfg, store, run_dir, data_dir, download, resolve_device(device), progress,
                                 extra_status or {})
        except (KeyboardInterrupt, SystemExit):
            store.set_status(cfg, "running", "interrupted", **(extra_status or {}))  # lock is released next
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in status and log, then reported
            log.error("run failed:\n%s", traceback.format_exc())
            store.set_status(cfg, "failed", f"{type(exc).__name__}: {exc}", log=str(run_dir / "train.log"))
            return store.status(cfg)
        finally:
            log.removeHandler(handler)
            handler.close()


def _train_locked(cfg: RunConfig, store: RunStore, run_dir: Path, data_dir, download, device: torch.device,
                  progress: bool, extra_status: dict[str, Any]) -> RunStatus:
    t0 = time.time()
    source = data_source(cfg.data.dataset, data_dir, download, cfg.data.standin) or "unknown"
    if cfg.data.source is not None and cfg.data.source != source:
        raise DataError(f"the run was planned for data.source={cfg.data.source} but the data found here come from "
                        f"{source!r}; a different source is a different run (use the same data folder, or re-plan)")
    data = prepare_data(cfg.data, cfg.eval, cfg.train.seed, cfg.train.probe_size, data_dir, download)
    o = cfg.optim
    micro = len(data.train) // o.batch_size
    opt_steps = micro // o.accumulation_steps
    if opt_steps < 1:
        raise ConfigError(f"the training set has {len(data.train)} images, fewer than one optimizer step of "
                          f"optim.batch_size x optim.accumulation_steps = {o.batch_size * o.accumulation_steps}; "
                          f"lower the batch size or enlarge data.train_size")
    log.info("run %s on %s: %d train / %d test images, %d optimizer steps per epoch", cfg.name, device,
             len(data.train), len(data.test), opt_steps)

    torch.manual_seed(cfg.train.seed)
    model = SSLModel(cfg).to(device)
    if cfg.train.compile:
        model.compile()  # compiles forward in place; parameter names and checkpoints unchanged
    train_images = training_images(data.train.images, device)
    opt = _optimizer(model, cfg)
    aug = SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    (run_dir / "embeddings").mkdir(exist_ok=True)

    start_epoch, global_step, seconds_before, rows, class_rows, notes = resume(cfg, store, ckpt_dir, model, opt)
    provenance.record(run_dir, source)
    store.set_status(cfg, "running", "; ".join(notes), epoch=start_epoch, **extra_status)

    def record(epoch: int, loss: float, lr: float, seconds: float) -> Optional[Verdict]:
        acc = knn(model, data, cfg, device) if epoch in cfg.train.eval_epochs else float("nan")
        row, per_class = norm_records(model, data, device, epoch, acc)
        rows.append({"epoch": epoch, "step": global_step, "loss": loss, "lr": lr, "epoch_seconds": seconds,
                     "knn_acc": acc, **row})
        class_rows.extend(per_class)
        verdict = divergence(rows[-1])
        if verdict is None and epoch in cfg.train.save_embeddings_epochs:
            try:
                save_embeddings(model, data, cfg, device, run_dir / "embeddings" / f"epoch_{epoch:04d}.npz", epoch)
            except Diverged as exc:
                verdict = Verdict("diverged", epoch, "embeddings", float("nan"), 0.0, f"{exc} at epoch {epoch}")
        write_frame(run_dir / "metrics.csv", pd.DataFrame(rows))
        write_frame(run_dir / "class_norms.csv", pd.DataFrame(class_rows))
        return verdict

    def unhealthy(v: Verdict) -> RunStatus:
        log.error("run %s: %s", v.state, v.reason)
        store.set_status(cfg, v.state, v.reason, epoch=v.epoch,
                         health={"measure": v.measure, "value": v.value, "threshold": v.threshold, "epoch": v.epoch})
        return store.status(cfg)

    def checkpoint(epoch: int) -> None:
        state = {"epoch": epoch, "global_step": global_step, "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "config_hash": cfg.hash(),
                 "code_fingerprint": provenance.code_fingerprint(),
                 "train_seconds": seconds_before + time.time() - t0}
        save_checkpoint(ckpt_dir / "latest.pt", state)
        if is_checkpoint_epoch(epoch, cfg.train.epochs):
            save_checkpoint(ckpt_dir / f"epoch_{epoch:04d}.pt", state)

    if start_epoch == 0 and not rows:
        with epoch0_batchnorm(cfg, model, train_images, aug, device):
            verdict = record(0, float("nan"), 0.0, 0.0)
        if verdict is not None:
            return unhealthy(verdict)

    step_images = o.batch_size * o.accumulation_steps
    epochs = range(start_epoch + 1, cfg.train.epochs + 1)
    bar = tqdm(epochs, desc=cfg.name, disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        g = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(data.train), generator=g)
        t_epoch = time.time()
        steps = [perm[s * step_images:(s + 1) * step_images] for s in range(opt_steps)]
        inner = tqdm(steps, desc=f"epoch {epoch}", disable=not progress, leave=False, dynamic_ncols=True)
        try:
            losses, lr, global_step = train_steps(model, opt, train_images, inner, aug, o, g, device,
                                                  global_step, micro, cfg.train.epochs, cfg.train.precision)
        except Diverged as exc:
            return unhealthy(Verdict("diverged", epoch, "loss", float("nan"), 0.0, f"{exc} at epoch {epoch}"))
        finally:
            inner.close()
        verdict = record(epoch, float(np.mean(losses)), lr, time.time() - t_epoch)
        if verdict is not None:
            return unhealthy(verdict)
        checkpoint(epoch)
        last = rows[-1]
        bar.set_postfix(loss=f"{last['loss']:.3f}", z_norm=f"{last['z_norm_mean']:.2f}")
        log.info("epoch %d: loss %.4f, lr %.4g, mean norm of z %.3f, kNN %s", epoch, last["loss"], lr,
                 last["z_norm_mean"], f"{last['knn_acc']:.2f}%" if not math.isnan(last["knn_acc"]) else "-")
        store.set_status(cfg, "running", "", epoch=epoch)
    bar.close()
    verdict = collapse(rows, model.predictor is not None)
    if verdict is not None:
        return unhealthy(verdict)

    if cfg.train.linear_probe:
        if cfg.eval.linear_probe_variant == "released":
            lr, epochs = RELEASED_PROBE[cfg.method.name]
            res = linear_probe_released(model, data.train.images, data.train.labels, data.test.images,
                                        data.test.labels, device, cfg.eval.linear_probe_lr or lr,
                                        cfg.eval.linear_probe_sgd_epochs or epochs, cfg.optim.batch_size,
                                        seed=cfg.train.seed)
        else:
            res = linear_probe(model, data.train.images, data.train.labels, data.test.images, data.test.labels,
                               device, cfg.eval.linear_probe_epochs, cfg.train.seed)
        res["variant"] = cfg.eval.linear_probe_variant
        write_json(run_dir / "linear_probe.json", res)
    seconds = seconds_before + time.time() - t0
    store.set_status(cfg, "done", f"trained in {seconds:.0f} s", epoch=cfg.train.epochs, train_seconds=round(seconds, 1))
    return store.status(cfg)

