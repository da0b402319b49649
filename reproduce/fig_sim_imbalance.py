"""Simulation (b) of Section 3: with a supervised InfoNCE loss on class-imbalanced data, do
frequent classes get larger embedding norms?

4 latent classes on the 10-d sphere drawn with weights 1:2:4:8 (2000 points, spread 1),
observed through a random 64×10 Gaussian map (×10); an MLP 64-64-10 trained by SGD (lr 0.01,
batch 128, 100 epochs) with the released symmetric-partner supervised InfoNCE (temperature 1);
5 seeds (:mod:`embedding_norms.sim_classes`). As in the released figure the statistics are taken
at the end of the plotted window, epoch 49 (``window_end``); ``window_end: 100`` and
``loss: one_partner`` give the variant used before (options).
(a) Mean norm per class over the epochs (mean ± sd over seeds; the window shaded). (b) Norm at
the window's end and its growth since initialisation, per class and seed.

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

from embedding_norms.plotting import class_palette
from embedding_norms.report import ClaimCheck
from embedding_norms.sim_classes import ImbalanceSetup, imbalance_simulation

PAPER_REF = "Section 3, simulation (b)"
TITLE = "Class-imbalance simulation: mean embedding norm per class over training"
CLAIMS = ("sim-imbalance",)
VECTOR = "output z of the simulation's MLP (no backbone)"


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
    """Per class: the seed means (main table); per seed and class (``per_seed``); per epoch (``history``)."""
    res = imbalance_simulation(ImbalanceSetup.of(p))
    w = np.asarray(p.class_weights)
    C, S, E = len(w), p.seeds, p.epoch
    rows = []
    for s in range(S):
        counts = np.bincount(res.runs[s]["labels"], minlength=C)
        cn = res.class_norms[s]
        for c in range(C):
            rows.append({"seed": s, "class": c, "weight": w[c], "points": int(counts[c]), "initial_norm": cn[0, c],
                         "window_norm": cn[E, c], "growth": cn[E, c] - cn[0, c], "final_norm": cn[-1, c]})
    per_seed = pd.DataFrame(rows)
    summary = (per_seed.groupby(["class", "weight"])
               .agg(points_mean=("points", "mean"), initial_norm_mean=("initial_norm", "mean"),
                    window_norm_mean=("window_norm", "mean"), window_norm_sd=("window_norm", "std"),
                    growth_mean=("growth", "mean"), growth_sd=("growth", "std"),
                    final_norm_mean=("final_norm", "mean")).reset_index())
    summary.insert(2, "window_epoch", E)
    history = (res.history().groupby(["epoch", "class", "weight"]).mean_norm
               .agg(["mean", "std", "min", "max"]).reset_index()
               .rename(columns={"mean": "mean_norm", "std": "sd_over_seeds", "min": "min_over_seeds",
                                "max": "max_over_seeds"}))
    loss = pd.DataFrame({"seed": np.repeat(np.arange(S), p.epochs), "epoch": np.tile(np.arange(1, p.epochs + 1), S),
                         "loss": res.loss.ravel()})
    return {"": summary, "per_seed": per_seed, "history": history, "_loss": loss}


def figures(fr: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """(a) class norms over the epochs, (b) norm at the window's end and its growth, every seed."""
    hist, per_seed, summ = fr["history"], fr["per_seed"], fr[""]
    w = np.asarray(p.class_weights)
    pal = class_palette(len(w))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    ax = axes[0]
    for c, g in hist.groupby("class"):
        sd = g.sd_over_seeds.fillna(0)
        ax.plot(g.epoch, g.mean_norm, color=pal[c], lw=2, label=f"weight {w[c]:g} (≈{summ.points_mean[c]:.0f} points)")
        ax.fill_between(g.epoch, g.mean_norm - sd, g.mean_norm + sd, color=pal[c], alpha=0.15)
    ax.axvspan(0, p.epoch, color="grey", alpha=0.08, label=f"released plot window 0–{p.epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean embedding norm of the class")
    ax.set_title(f"(a) class norms during training (mean ± sd over {p.seeds} seeds)")
    ax.legend(title="class sampling weight", fontsize="small")
    x = np.log2(w)
    for ax, col, what in ((axes[1], "window_norm", f"mean norm at epoch {p.epoch}"),
                          (axes[2], "growth", f"norm growth, epoch 0 → {p.epoch}")):
        for s, g in per_seed.groupby("seed"):
            ax.plot(x, g[col], "o-", color="grey", alpha=0.6, lw=1, ms=4, label="one seed" if s == 0 else None)
        ax.plot(x, per_seed.groupby("class")[col].mean(), "s-", color="black", lw=2, ms=6, label="mean over seeds")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:g}" for v in w])
        ax.set_xlabel("class sampling weight")
        ax.set_ylabel(what)
        ax.legend(fontsize="small")
    axes[1].set_title("(b) class norms, every seed")
    axes[2].set_title("(c) growth since initialisation, every seed")
    fig.tight_layout()
    return {"": fig}


def _per_seed(per_seed: pd.DataFrame, f) -> list[float]:
    return [float(f(g.sort_values("class"))) for _, g in per_seed.groupby("seed")]


def checks(fr: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """One effect per seed (Spearman ρ over the classes, or a norm difference), t-interval over seeds."""
    ps = fr["per_seed"]
    rare, freq = int(np.argmin(p.class_weights)), int(np.argmax(p.class_weights))
    regime = (f"simulation (b), {p.loss} loss: epoch {p.epoch}"
              + (" (end of the released plot window)" if p.window_end is not None else " (last epoch)")
              + f", {p.seeds} seeds")
    weights = ":".join(f"{v:g}" for v in p.class_weights)
    rho_n = _per_seed(ps, lambda g: stats.spearmanr(g.weight, g.window_norm).statistic)
    rho_g = _per_seed(ps, lambda g: stats.spearmanr(g.weight, g.growth).statistic)
    diff = _per_seed(ps, lambda g: g.window_norm.iloc[freq] - g.window_norm.iloc[rare])
    return [
        ClaimCheck.from_correlations("sim-imbalance", f"class norms ordered by class frequency (weights {weights})",
                                     f"Spearman ρ(class weight, mean class norm at epoch {p.epoch})", rho_n, "> 0",
                                     regime),
        ClaimCheck.from_correlations("sim-imbalance", "norm growth since initialisation ordered by class frequency",
                                     f"Spearman ρ(class weight, norm growth epoch 0 → {p.epoch})", rho_g, "> 0",
                                     regime),
        ClaimCheck.from_effects("sim-imbalance", "most frequent class vs rarest class",
                                f"norm(weight {p.class_weights[freq]:g}) − norm(weight {p.class_weights[rare]:g}) "
                                f"at epoch {p.epoch}", diff, "> 0", regime),
    ]


def notes(fr: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Which variant produced the numbers."""
    loss = {"symmetric": "the released symmetric-partner loss (each anchor draws a random same-class partner and "
                         "the partner gets the anchor too)",
            "one_partner": "the one-random-partner loss (option; the released loss is symmetric)"}[p.loss]
    return [f"Loss: {loss}. Statistics at epoch {p.epoch}"
            + (" (released window)." if p.window_end == 49 else ".")
            + f" Simulation constants: {dataclasses.asdict(ImbalanceSetup.of(p))}."]


if __name__ == "__main__":
    import sys
    from reproduce.runner import main
    raise SystemExit(main(["fig_sim_imbalance", *sys.argv[1:]]))
