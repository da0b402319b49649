"""Run declarations shared by the real-data artifacts.

Artifacts that need the same training run must declare *the same config*, so that the run
store trains it once. Every real-data run is therefore declared through these functions:
the base run of a method is ``RunConfig.load(method, profile)`` with no overrides, and every
sweep changes exactly one thing relative to it.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from embedding_norms.config import RunConfig

from .common import Plan, RunHandle, RunSpec

#: Weight-decay sweeps of the paper (PAPER.md, "Weight-decay sweep").
WEIGHT_DECAYS = {"simclr": [0.0, 1e-8, 1e-6, 1e-4], "simsiam": [0.0, 5e-6, 5e-4, 5e-2]}
#: Released default weight decay per method (configs/<method>.yaml).
DEFAULT_WD = {"simclr": 1e-6, "simsiam": 5e-4, "byol": 5e-4}


def base_label(method: str, dataset: str = "cifar10") -> str:
    """Label of a method's base run: ``method`` on CIFAR-10, ``method/dataset`` otherwise."""
    return method if dataset == "cifar10" else f"{method}/{dataset}"


def base_run(plan: Plan, method: str, dataset: str = "cifar10", extra: Optional[dict[str, Any]] = None,
             label: Optional[str] = None) -> RunSpec:
    """The method's released settings at the profile's scale (optionally another dataset)."""
    ov: dict[str, Any] = {}
    if dataset != "cifar10":
        ov["data"] = {"dataset": dataset}
    if dataset not in ("cifar10", "cifar100"):  # released code: CIFAR stem only for CIFAR; s = 1 elsewhere
        ov["data"].update(image_size=128, jitter_strength=1.0)
        ov["model"] = {"stem": "imagenet"}
    for k, v in (extra or {}).items():
        ov.setdefault(k, {}).update(v)
    return plan.run(method, label or base_label(method, dataset), ov)


def wd_run(plan: Plan, method: str, wd: float) -> RunSpec:
    """Base run with weight decay ``wd`` (the default value gives the base run itself)."""
    return base_run(plan, method, extra={"optim": {"weight_decay": float(wd)}}, label=f"{method}/wd={wd:g}")


def cut_run(plan: Plan, method: str, c: float, dataset: str = "cifar10", extra: Optional[dict] = None) -> RunSpec:
    """Base run with cut-initialization constant ``c`` (``c = 1`` gives the base run)."""
    ex = {"norm": {"cut_constant": float(c)}}
    for k, v in (extra or {}).items():
        ex.setdefault(k, {}).update(v)
    return base_run(plan, method, dataset, ex, label=f"{base_label(method, dataset)}/c={c:g}")


def gradscale_run(plan: Plan, method: str, power: float, imbalanced: bool, dataset: str = "cifar10",
                  lr: float = 0.1, warmup_fraction: float = 100 / 512, extra: Optional[dict] = None) -> RunSpec:
    """Base run with GradScale power ``p`` on balanced or imbalanced data.

    ``p > 0`` uses the released GradScale example's optimiser settings: lr 0.1 and a warm-up
    of 100 of 512 epochs, i.e. ``warmup_fraction`` of the cosine horizon at this profile's scale.
    ``p = 0`` is the base run (on imbalanced data: the base run with ``data.imbalance``).
    """
    ex: dict[str, Any] = {}
    if imbalanced:
        ex["data"] = {"imbalance": "exponential"}
    if power:
        c = RunConfig.load(method, plan.profile, ex)  # the profile's cosine horizon
        horizon = c.optim.schedule_epochs or c.train.epochs
        ex["norm"] = {"gradscale_power": float(power)}
        ex["optim"] = {"lr": float(lr), "warmup_epochs": float(round(warmup_fraction * horizon, 4))}
    for k, v in (extra or {}).items():
        ex.setdefault(k, {}).update(v)
    tag = "imbalanced" if imbalanced else "balanced"
    return base_run(plan, method, dataset, ex, label=f"{base_label(method, dataset)}/{tag}/p={power:g}")


def knn_curve(run: RunHandle) -> pd.Series:
    """kNN accuracy (%) by epoch at the run's evaluation epochs (empty if none)."""
    m = run.metrics()
    if not len(m) or "knn_acc" not in m:
        return pd.Series(dtype=float)
    m = m.dropna(subset=["knn_acc"])
    return pd.Series(m.knn_acc.values, index=m.epoch.values, name=run.label)


def first_epoch_reaching(curve: pd.Series, target: float) -> Optional[int]:
    """First evaluation epoch at which ``curve`` >= ``target`` (None if never)."""
    hit = curve[curve >= target]
    return int(hit.index[0]) if len(hit) else None


def state_of(run: RunHandle) -> str:
    """'done', 'diverged (epoch N)', 'failed', 'skipped', ... for tables."""
    st = run.status
    if st.state == "diverged":
        return f"diverged (epoch {st.epoch})"
    return st.state


def spearman(x, y) -> float:
    """Spearman rank correlation (NaN when undefined)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
