"""Run families shared by several real-data artifacts, and small helpers to read runs.

Artifacts that need the same training run declare *the same config* through these functions,
so the run store trains it once. The base run of a method is ``Plan.config(method)`` with no
overrides but the seed; every other family changes one thing relative to it (or, where the
released code changes two, the artifact declares the control that isolates each).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from .artifact import Plan, RunSpec, seeded

#: Overrides of a run whose saved embeddings no artifact reads (its metrics suffice): it saves none.
#: Only the base runs (Figure 4 at every saved epoch), the imbalanced runs and the seen-vs-unseen runs
#: keep embeddings; this spares the others the time (about 2 s a save at quick scale) and the disk.
NO_EMBEDDINGS = {"train": {"save_embeddings_epochs": []}}

#: Released default weight decay per method (configs/<method>.yaml).
DEFAULT_WD = {"simclr": 1e-6, "simsiam": 5e-4, "byol": 5e-4}


def merge(*parts: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge nested override dicts (later parts win, one level of sections deep)."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in (part or {}).items():
            if isinstance(v, Mapping):
                out.setdefault(k, {}).update(v)
            else:
                out[k] = v
    return out


def dataset_overrides(dataset: str) -> dict[str, Any]:
    """Overrides that put a base run on ``dataset``: the released code uses the CIFAR stem and
    colour-jitter strength 0.5 only for CIFAR, 128 px and s = 1 elsewhere."""
    if dataset == "cifar10":
        return {}
    ov: dict[str, Any] = {"data": {"dataset": dataset}}
    if dataset not in ("cifar10", "cifar100"):
        ov["data"].update(image_size=128, jitter_strength=1.0)
        ov["model"] = {"stem": "imagenet"}
    return ov


def label(method: str, seed: int, dataset: str = "cifar10", *parts: str) -> str:
    """Display label of a run: ``method[/dataset]/part.../seed=s``."""
    return "/".join([method] + ([dataset] if dataset != "cifar10" else []) + list(parts) + [f"seed={seed}"])


def base_run(plan: Plan, method: str, seed: int, dataset: str = "cifar10",
             extra: Optional[Mapping[str, Any]] = None, tag: str = "") -> RunSpec:
    """The method's released settings at the profile's scale, with training seed ``seed``
    (optionally on another dataset, optionally with ``extra`` overrides described by ``tag``).

    The plain base run (no ``extra``) on CIFAR-10 with a test subset also saves the norms of all
    10 000 test images at epoch 0 and at the end of training (:func:`full_test_norms`), for Figure
    4's CIFAR-10H panel; every artifact that declares it gets the same run."""
    ov = merge(dataset_overrides(dataset), extra)
    if extra is None:
        ov = merge(ov, full_test_norms(plan, method, dataset))
    return plan.run(method, label(method, seed, dataset, *([tag] if tag else [])), seeded(plan, ov, seed))


def full_test_norms(plan: Plan, method: str, dataset: str) -> dict[str, Any]:
    """Overrides that make a base run save the norms of every test image (split ``test_all``) at
    epoch 0 and at its last epoch, where it saves embeddings (``train.full_test_norms_epochs``);
    ``{}`` off CIFAR-10 (CIFAR-10H labels only its test set) or without a test subset (``test``
    is then every test image already). Cost at quick scale: one un-augmented pass over 10 000
    images per such epoch, about as long as one embeddings save (2.5-3 s)."""
    cfg = plan.config(method)
    if dataset != "cifar10" or cfg.data.test_size is None:
        return {}
    epochs = [e for e in (0, cfg.train.epochs) if e in cfg.train.save_embeddings_epochs]
    return {"train": {"full_test_norms_epochs": epochs}} if epochs else {}


#: Balanced pool of an imbalanced run, as a multiple of the profile's training subset (capped
#: at the full training set): quick (3000 images) -> 30 000 (3000 ... 78 images per class, 8 841 in
#: all); a profile with 5000 or more images -> the full set, as released (5000 ... 130, 14 717).
IMBALANCED_POOL_FACTOR = 10


def imbalance_shift(plan: Plan) -> int:
    """Class-size rotation of every imbalanced run (``data.imbalance_shift_per_seed``): the profile's
    ``artifacts.fig_imbalance_norms.shift_per_seed`` (0 = the released order, ``paper``; ``quick``: 3).
    Read here so that fig_imbalance_norms and every imbalanced arm of tab_gradscale train on the same
    class order for a seed (their runs are shared)."""
    return int(plan.section("fig_imbalance_norms").get("shift_per_seed", 0))


def imbalanced_overrides(plan: Plan, method: str) -> dict[str, Any]:
    """Exponentially imbalanced CIFAR-10 as released (class ``i`` keeps ``n * 1.5**-i`` of a
    balanced pool with ``n`` images per class), colour-jitter strength ``s = 1`` (the released
    ``get_transforms`` sets 0.5 only for the dataset names ``cifar10``/``cifar100``; the imbalanced
    sets are named ``*_unbalanced``).

    Class order (issue 20): with :func:`imbalance_shift` ``k > 0`` the sizes rotate with the training
    seed (``data.imbalance_shift_per_seed``: class ``c`` keeps the size of rank ``(c - seed k) mod 10``),
    so class size is not tied to class identity across seeds; ``k = 0`` is the released order.
    Epoch 0 (the BatchNorm-recalibrated untrained network) is evaluated and its embeddings saved, the
    within-class reference of fig_imbalance_norms.

    ``paper`` (no training subset): the full training set and the base run's epochs, as released.
    Reduced profiles: a pool of :data:`IMBALANCED_POOL_FACTOR` x the profile's training subset
    (capped at the full set; ``quick``: a 30 000-image pool, 8 841 images), trained for as many epochs
    as give the balanced base run's number of optimizer steps, so that the per-class effect has
    as many steps to form as any other run (issue 15).
    """
    from embedding_norms.data import IMBALANCE_BASE, exponential_counts

    base = plan.config(method)
    ov: dict[str, Any] = {"data": {"imbalance": "exponential", "jitter_strength": 1.0}}
    if imbalance_shift(plan):
        ov["data"]["imbalance_shift_per_seed"] = imbalance_shift(plan)
    epochs, evals = base.train.epochs, base.train.eval_epochs
    if base.data.train_size is not None:
        full = 50_000
        pool = min(full, IMBALANCED_POOL_FACTOR * base.data.train_size)
        ov["data"]["train_size"] = None if pool == full else pool
        n_imb = sum(exponential_counts(pool // 10, 10, IMBALANCE_BASE["cifar10"]))
        epochs = max(1, round(base.train.epochs * base.data.train_size / n_imb))
        evals = [min(epochs, int(round(e * epochs / base.train.epochs))) for e in evals]
    ov["train"] = {"epochs": epochs, "eval_epochs": sorted({0, epochs, *evals}), "save_embeddings_epochs": [0, epochs]}
    return ov  # the warm-up follows the run through optim.warmup_fraction


def knn_or_chance(run, failure_at_chance: bool) -> pd.Series:
    """kNN curve of a run whose records are complete (done or collapsed: its measured accuracy).

    For a run that diverged, when ``failure_at_chance`` (the arm of a "speeds up training"
    comparison: a run that blew up did not learn): its measured accuracy at the evaluation epochs
    before the epoch where it diverged (``health.epoch``, else the status epoch), and chance accuracy
    (100 / classes) from that epoch on. Otherwise empty (a reference arm that diverged gives no
    comparison). A run that diverged at epoch 2 was a real network at epochs 0 and 1: counting it at
    chance there would put a difference into epochs where the arms were still alike (at epoch 0 they
    are the same network)."""
    if run.measured:
        return knn_curve(run)
    if failure_at_chance and run.status.state == "diverged":
        from embedding_norms.facts import SPECS

        chance = 100.0 / SPECS[run.cfg.data.dataset].num_classes
        failed_at = int((run.status.health or {}).get("epoch", run.status.epoch))
        measured = knn_curve(run)
        return pd.Series({int(e): (float(measured[e]) if e < failed_at else chance)
                          for e in run.cfg.train.eval_epochs if e >= failed_at or e in measured.index}, dtype=float)
    return pd.Series(dtype=float)


def missing_seeds(declared, present) -> str:
    """Text naming the declared seeds without a usable pair (for a check's detail), or ''."""
    gone = sorted(set(declared) - set(present))
    return f"; seeds without a usable pair of runs (left out): {gone}" if gone else ""


def knn_curve(run) -> pd.Series:
    """kNN accuracy (%) of a run by evaluation epoch (empty if none)."""
    m = run.metrics()
    if not len(m) or "knn_acc" not in m:
        return pd.Series(dtype=float)
    m = m.dropna(subset=["knn_acc"])
    return pd.Series(m.knn_acc.values, index=m.epoch.values.astype(int), name=run.label)


def knn_gain(run) -> float:
    """kNN gain of a run in points: accuracy at its last evaluation epoch minus at epoch 0 (the
    BatchNorm-recalibrated untrained network); NaN when either is missing (the learning gate,
    :func:`embedding_norms.stats.learning_gate`, then counts the run as not learned)."""
    curve = knn_curve(run)
    if 0 not in curve.index or len(curve) < 2:
        return float("nan")
    return float(curve.iloc[-1] - curve.loc[0])


def gate(runs) -> Optional[str]:
    """The learning gate over run handles: None when every run gained at least
    :data:`~embedding_norms.stats.LEARNING_GATE_POINTS` kNN points over epoch 0, else the reason
    for the verdict "not testable" (see :func:`embedding_norms.stats.learning_gate`)."""
    from embedding_norms.stats import learning_gate

    return learning_gate({r.label: knn_gain(r) for r in runs})


def state_of(run) -> str:
    """'done', 'diverged (epoch N)', 'collapsed (epoch N)', 'failed', ... for tables."""
    st = run.status
    if st.state in ("diverged", "collapsed") and getattr(st, "epoch", None) is not None:
        return f"{st.state} (epoch {st.epoch})"
    return st.state


def spearman(x, y) -> float:
    """Spearman rank correlation (NaN when undefined: fewer than 3 points or a constant input)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def slope(x, y) -> float:
    """OLS slope of ``y`` on ``x`` (NaN when undefined: fewer than 3 finite points or a constant ``x``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan")
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc ** 2).sum())


def paired_effects(frame: pd.DataFrame, arm_col: str, treat, control, value: str,
                   by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per-seed effects ``value(treat) - value(control)`` of a long table.

    Args:
        frame: long table with columns ``seed``, ``arm_col``, ``value`` and the ``by`` columns.
        arm_col: the column that names the arm (e.g. ``c``).
        treat, control: the two arm values to compare.
        value: the measured column (e.g. ``knn_acc``).
        by: columns that define separate comparisons (e.g. ``("method", "epoch")``).

    Returns:
        One row per (``by``..., seed) where both arms exist: the ``by`` columns, ``seed``,
        ``treat``, ``control``, ``effect``.
    """
    keys = list(by) + ["seed"]
    a = frame[frame[arm_col] == treat].set_index(keys)[value].rename("treat")
    b = frame[frame[arm_col] == control].set_index(keys)[value].rename("control")
    j = pd.concat([a, b], axis=1, join="inner").dropna()
    j["effect"] = j["treat"] - j["control"]
    return j.reset_index()


def effect_table(effects: pd.DataFrame, by: tuple[str, ...], level: float = 0.95,
                 correlation: bool = False) -> pd.DataFrame:
    """Mean effect with its t-interval over seeds for each group of a per-seed effect table.

    Args:
        effects: rows of :func:`paired_effects` (or any table with ``seed`` and ``effect``).
        by: grouping columns (e.g. ``("method", "c", "epoch")``).
        correlation: the effects are correlations: mean and interval on Fisher's z scale,
            back-transformed (:func:`embedding_norms.stats.correlation_interval`; inside [-1, 1]).

    Returns:
        One row per group: the ``by`` columns, ``effect`` (mean), ``ci_low``, ``ci_high``,
        ``seeds`` (n), ``per_seed`` (the values, seed order).
    """
    from embedding_norms.stats import correlation_interval, seed_interval

    rows = []
    for keys, g in effects.groupby(list(by), sort=True):
        g = g.sort_values("seed")
        iv = (correlation_interval if correlation else seed_interval)(g["effect"].tolist(), level=level)
        rows.append(dict(zip(by, keys if isinstance(keys, tuple) else (keys,)), effect=iv.mean, ci_low=iv.low,
                         ci_high=iv.high, seeds=iv.n, per_seed=[round(float(v), 4) for v in g["effect"]]))
    return pd.DataFrame(rows)


def wd_run(plan: Plan, method: str, wd: float, seed: int) -> RunSpec:
    """The base run with weight decay ``wd`` (the released default gives the base run itself)."""
    if wd == DEFAULT_WD[method]:
        return base_run(plan, method, seed)
    return base_run(plan, method, seed, extra=merge({"optim": {"weight_decay": float(wd)}}, NO_EMBEDDINGS),
                    tag=f"wd={wd:g}")


def norm_column(vector: str, stat: str = "mean") -> str:
    """Metrics column of a vector's norm statistic: ``z_norm_mean``, ``p_norm_q90``, ``h_norm_mean``..."""
    if vector not in ("h", "z", "p"):
        raise ValueError(f"vector must be h, z or p, got {vector!r}")
    return f"{vector}_norm_{stat}"


#: Metrics columns of a projector that ends in BatchNorm (SimSiam, BYOL): ``||gamma||_2`` of that
#: BatchNorm and the mean norm of its input (the last Linear's output), recorded beside ``||z||``.
FINAL_BN_COLUMNS = {"gamma_norm": "z_bn_gamma_norm", "pre_bn_norm": "z_pre_bn_norm_mean"}


def final_bn_values(row) -> dict[str, float]:
    """``gamma_norm`` and ``pre_bn_norm`` of a metrics row (NaN for a projector without a final
    BatchNorm, i.e. SimCLR, or a run recorded before these columns existed)."""
    return {k: float(row[c]) if c in row and row[c] == row[c] else float("nan") for k, c in FINAL_BN_COLUMNS.items()}


def final_bn_note(long: pd.DataFrame, method: str, where: str) -> str:
    """One sentence on how much of a z-norm effect the final BatchNorm fixes: ``||z||`` beside
    ``||gamma||`` (and the pre-BatchNorm norm) at the first and last epoch of ``long`` (columns
    method, vector, epoch, gamma_norm, pre_bn_norm and a norm column ``norm_mean`` or ``mean_norm``),
    means over seeds; '' when the method's projector has no final BatchNorm."""
    if not len(long) or "vector" not in long:
        return ""
    sub = long[(long.method == method) & (long.vector == "z")]
    if not len(sub) or "gamma_norm" not in sub or sub.gamma_norm.isna().all():
        return ""
    col = "norm_mean" if "norm_mean" in sub else "mean_norm"
    g = sub.groupby("epoch")[[col, "gamma_norm", "pre_bn_norm"]].mean()
    a, b = g.index.min(), g.index.max()
    return (f"{method} projector ends in BatchNorm ({where}): ||z|| {g.loc[a, col]:.2f} -> {g.loc[b, col]:.2f} "
            f"beside ||gamma|| {g.loc[a, 'gamma_norm']:.2f} -> {g.loc[b, 'gamma_norm']:.2f} (epoch {a} -> {b}); in "
            f"eval mode ||z|| is about ||gamma|| whatever the layer's input does (pre-BatchNorm norm "
            f"{g.loc[a, 'pre_bn_norm']:.3g} -> {g.loc[b, 'pre_bn_norm']:.3g}), so a z-norm effect there is set by "
            f"gamma, not by the mechanism of the paper; the z check is descriptive and p (the vector the loss "
            f"normalises) decides.")


def vectors_of(method: str) -> tuple[str, ...]:
    """The embedding vectors a method has: z (projector output) always, p (predictor output) for
    SimSiam and BYOL."""
    return ("z",) if method == "simclr" else ("z", "p")


def imbalanced_run(plan: Plan, method: str, seed: int) -> RunSpec:
    """The base run on imbalanced CIFAR-10 (:func:`imbalanced_overrides`); the ``base`` arm of
    tab_gradscale's imbalanced comparison and the run of fig_imbalance_norms."""
    return base_run(plan, method, seed, extra=imbalanced_overrides(plan, method), tag="imbalanced/base")


def arm_means(table: pd.DataFrame, effects: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    """``table`` (:func:`effect_table` over ``by``) with the two arms' mean values over seeds beside the
    effect (``treat_mean``, ``control_mean``), so that a reader sees whether either arm left the
    untrained level, not only their difference."""
    means = effects.groupby(list(by), sort=True)[["treat", "control"]].mean().add_suffix("_mean").reset_index()
    return table.merge(means, on=list(by), how="left")
