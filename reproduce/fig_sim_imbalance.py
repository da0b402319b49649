"""Simulation (b) of Section 3: with a supervised InfoNCE loss on class-imbalanced data, do
frequent classes get larger embedding norms?

4 latent classes on the 10-d sphere drawn with weights 1:2:4:8 (2000 points, spread 1),
observed through a random 64×10 Gaussian map (×10); an MLP 64-64-10 trained by SGD (lr 0.01,
batch 128, 100 epochs) with the released symmetric-partner supervised InfoNCE (temperature 1);
5 seeds by default as in the paper, more in the profiles (a seed costs about 2 s; README "Designs
per claim") (:mod:`embedding_norms.sim_classes`). As in the released figure the statistics are taken
at the end of the plotted window, epoch 49 (``window_end``); ``window_end: 100`` and
``loss: one_partner`` give the variant used before (options).

The claim is decided per seed by the least-squares slope of log(norm / initial norm) on log(class
weight) (:func:`embedding_norms.sim_classes.loglog_slope`): the growth of every class relative to
its own initial norm, whose spread between classes is larger than the growth (notes).
(a) Mean norm per class over the epochs (mean ± sd over seeds; the window shaded). (b) Norm at
the window's end and (c) its growth relative to initialisation, per class and seed. (d) The
per-seed slopes, with their mean and 95 % t-interval.

The trained models are shared with ``fig_sim_density`` through the cache of
:func:`embedding_norms.sim_classes.imbalance_simulation` when both sections of the profile give
the same simulation parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from embedding_norms.plotting import class_palette, epoch_axis, plain_log_ticks, wrap
from embedding_norms.report import ClaimCheck
from embedding_norms.sim_classes import ImbalanceSetup, imbalance_simulation, loglog_slope
from embedding_norms.stats import seed_interval

PAPER_REF = "Section 3, simulation (b)"
TITLE = "Class-imbalance simulation: mean embedding norm per class over training"
CLAIMS = ("sim-imbalance",)
VECTOR = "output z of the simulation's MLP (no backbone)"
#: Test label of the primary check (stable: the claim-check key of ``sim-imbalance``).
GROWTH_SLOPE = "slope of log class-norm growth (trained / initial) on log class weight"


@dataclass(frozen=True)
class Params(ImbalanceSetup):
    """:class:`~embedding_norms.sim_classes.ImbalanceSetup`'s fields plus

    Attributes:
        window_end: the epoch at which the statistics are taken and the end of the released plot
            window 0 … window_end (released 49); ``None``: the last epoch (``epochs``).
    """

    window_end: Optional[int] = 49

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_end is not None and not (isinstance(self.window_end, int) and 1 <= self.window_end <= self.epochs):
            raise ValueError(f"window_end must be an integer in 1 … epochs ({self.epochs}) or null, "
                             f"got {self.window_end!r}")

    @property
    def epoch(self) -> int:
        """The epoch of the statistics."""
        return self.epochs if self.window_end is None else self.window_end


def frames(runs, p: Params) -> dict[str, pd.DataFrame]:
    """Per class: the seed means (main table); per seed and class (``per_seed``); per seed the
    log-log slopes on the class weight (``slopes``); per epoch (``history``)."""
    res = imbalance_simulation(ImbalanceSetup.of(p))
    w = np.asarray(p.class_weights)
    C, S, E = len(w), p.seeds, p.epoch
    rows = []
    for s in range(S):
        counts = np.bincount(res.runs[s]["labels"], minlength=C)
        cn = res.class_norms[s]
        for c in range(C):
            rows.append({"seed": s, "class": c, "weight": w[c], "points": int(counts[c]), "initial_norm": cn[0, c],
                         "window_norm": cn[E, c], "growth": cn[E, c] - cn[0, c],
                         "growth_ratio": cn[E, c] / cn[0, c], "final_norm": cn[-1, c]})
    per_seed = pd.DataFrame(rows)
    summary = (per_seed.groupby(["class", "weight"])
               .agg(points_mean=("points", "mean"), initial_norm_mean=("initial_norm", "mean"),
                    window_norm_mean=("window_norm", "mean"), window_norm_sd=("window_norm", "std"),
                    growth_mean=("growth", "mean"), growth_sd=("growth", "std"),
                    growth_ratio_mean=("growth_ratio", "mean"), final_norm_mean=("final_norm", "mean")).reset_index())
    summary.insert(2, "window_epoch", E)
    cn = res.class_norms
    slopes = pd.DataFrame({"seed": np.arange(S), "epoch": E,
                           "slope_growth": loglog_slope(w, cn[:, E] / cn[:, 0]),
                           "slope_norm": loglog_slope(w, cn[:, E]), "slope_initial_norm": loglog_slope(w, cn[:, 0])})
    history = (res.history().groupby(["epoch", "class", "weight"]).mean_norm
               .agg(["mean", "std", "min", "max"]).reset_index()
               .rename(columns={"mean": "mean_norm", "std": "sd_over_seeds", "min": "min_over_seeds",
                                "max": "max_over_seeds"}))
    loss = pd.DataFrame({"seed": np.repeat(np.arange(S), p.epochs), "epoch": np.tile(np.arange(1, p.epochs + 1), S),
                         "loss": res.loss.ravel()})
    return {"": summary, "per_seed": per_seed, "slopes": slopes, "history": history, "_loss": loss}


def figures(fr: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """(a) class norms over the epochs, (b) norm at the window's end and (c) its growth relative to
    initialisation, every seed, (d) the per-seed slopes with their mean and 95 % interval."""
    hist, per_seed, summ, slopes = fr["history"], fr["per_seed"], fr[""], fr["slopes"]
    w = np.asarray(p.class_weights)
    pal = class_palette(len(w))
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6), gridspec_kw={"width_ratios": [1.5, 1, 1, 1]})
    ax = axes[0]
    for c, g in hist.groupby("class"):
        sd = g.sd_over_seeds.fillna(0)
        ax.plot(g.epoch, g.mean_norm, color=pal[c], lw=2, label=f"weight {w[c]:g} (≈{summ.points_mean[c]:.0f} points)")
        ax.fill_between(g.epoch, g.mean_norm - sd, g.mean_norm + sd, color=pal[c], alpha=0.15)
    ax.axvspan(0, p.epoch, color="grey", alpha=0.08, label=f"released plot window 0–{p.epoch}")
    epoch_axis(ax)
    ax.set_ylabel("mean embedding norm of the class")
    ax.set_title(f"(a) class norms during training (mean ± sd over {p.seeds} seeds)")
    ax.legend(title="class sampling weight", fontsize="small")
    alpha = min(0.6, 6.0 / p.seeds)
    x = np.log2(w)
    for ax, col, what in ((axes[1], "window_norm", f"mean norm at epoch {p.epoch}"),
                          (axes[2], "growth_ratio", f"relative growth, norm(epoch {p.epoch}) / norm(epoch 0)")):
        for s, g in per_seed.groupby("seed"):
            ax.plot(x, g[col], "o-", color="grey", alpha=alpha, lw=1, ms=3, label="one seed" if s == 0 else None)
        ax.plot(x, per_seed.groupby("class")[col].mean(), "s-", color="black", lw=2, ms=6, label="mean over seeds")
        ax.set_yscale("log")
        plain_log_ticks(ax, "y")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:g}" for v in w])
        ax.set_xlabel("class sampling weight (log scale)")
        ax.set_ylabel(wrap(what + " (log scale)", 40))
        ax.legend(fontsize="small")
    axes[1].set_title("(b) class norms, every seed")
    axes[2].set_title("(c) growth since initialisation, every seed")
    ax = axes[3]
    ax.axhline(0, color="black", lw=0.8)
    panels = (("slope_growth", "growth\n(decides)"), ("slope_norm", "norm"), ("slope_initial_norm", "initial\nnorm"))
    for i, (col, _) in enumerate(panels):
        v = slopes[col].to_numpy()
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(v))
        ax.plot(i + jitter, v, "o", color="grey", alpha=alpha, ms=4)
        iv = seed_interval(v)
        ax.errorbar(i, iv.mean, yerr=[[iv.mean - iv.low], [iv.high - iv.mean]] if iv.defined else None,
                    fmt="s", color="black", ms=7, capsize=5)
    ax.set_xticks(range(len(panels)))
    ax.set_xticklabels([name for _, name in panels])
    ax.set_ylabel("slope of log value on log class weight")
    ax.set_title(f"(d) per-seed slopes, mean and 95 % interval (epoch {p.epoch})")
    fig.tight_layout()
    return {"": fig}


def checks(fr: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """One effect per seed, t-interval over seeds. The slope of the relative growth decides (primary):
    it compares every class with its own initial norm; the slope of the norm and the earlier Spearman ρ
    of the growth support it."""
    ps, sl = fr["per_seed"], fr["slopes"]
    E = p.epoch
    regime = (f"simulation (b), {p.loss} loss: epoch {E}"
              + (" (end of the released plot window)" if p.window_end is not None else " (last epoch)")
              + f", {p.seeds} seeds")
    weights = ":".join(f"{v:g}" for v in p.class_weights)
    init = seed_interval(sl.slope_initial_norm)
    rho_g = [float(stats.spearmanr(g.weight, g.growth).statistic) for _, g in ps.groupby("seed")]
    return [
        ClaimCheck.from_effects("sim-imbalance", GROWTH_SLOPE,
                                f"least-squares slope of log(norm at epoch {E} / norm at epoch 0) on log(class weight), "
                                f"classes of weights {weights}", sl.slope_growth, "> 0", regime,
                                detail=f"slope of the initial norms: {init.mean:.4f} [{init.low:.4f}, {init.high:.4f}]"),
        ClaimCheck.from_effects("sim-imbalance", "slope of log class norm on log class weight",
                                f"least-squares slope of log(mean class norm at epoch {E}) on log(class weight)",
                                sl.slope_norm, "> 0", regime),
        ClaimCheck.from_correlations("sim-imbalance", "norm growth since initialisation ordered by class frequency",
                                f"Spearman ρ(class weight, norm growth epoch 0 → {E}) over {len(p.class_weights)} classes",
                                rho_g, "> 0", regime),
    ]


def notes(fr: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Which variant produced the numbers, and why the growth slope decides (with this build's numbers)."""
    ps, sl = fr["per_seed"], fr["slopes"]
    loss = {"symmetric": "the released symmetric-partner loss (each anchor draws a random same-class partner and "
                         "the partner gets the anchor too)",
            "one_partner": "the one-random-partner loss (option; the released loss is symmetric)"}[p.loss]
    by_seed = ps.groupby("seed")
    spread = (by_seed.initial_norm.max() - by_seed.initial_norm.min()).median()
    growth = (by_seed.growth.max() - by_seed.growth.min()).median()
    width = {c: seed_interval(sl[c]) for c in ("slope_growth", "slope_norm", "slope_initial_norm")}
    return [f"Loss: {loss}. Statistics at epoch {p.epoch}"
            + (" (released window)." if p.window_end == 49 else ".")
            + f" Simulation constants: {dataclasses.asdict(ImbalanceSetup.of(p))}.",
            "Decided per seed by the least-squares slope of log(class norm at the statistics' epoch / the same "
            "class's initial norm) on log(class weight), mean with a t-interval over seeds (issue 20; a Spearman ρ "
            "over 4 classes moves in steps of 0.2). At initialisation the class norms of a seed already differ by "
            f"{spread:.2f} (median over seeds of max − min; {ps.initial_norm.min():.2f}–{ps.initial_norm.max():.2f} "
            f"over all classes and seeds), while the classes' growth differs by {growth:.2f}: the initial differences "
            f"are {'larger than' if spread > growth else 'of the order of'} the effect and come from the random "
            "network, not from the class weight (new class "
            f"centres in every seed; slope of the initial norms {width['slope_initial_norm'].mean:.4f}). The ratio "
            "to each class's own initial norm removes them, so the statistic measures what training did; it is "
            "defined for every class (a class mean norm is > 0), where the difference trained − initial can be "
            "<= 0 and has no logarithm. The slope of the norm itself supports it (interval width "
            f"{width['slope_norm'].high - width['slope_norm'].low:.4f} against "
            f"{width['slope_growth'].high - width['slope_growth'].low:.4f} for the growth)."]


if __name__ == "__main__":
    import sys
    from reproduce.runner import main
    raise SystemExit(main(["fig_sim_imbalance", *sys.argv[1:]]))
