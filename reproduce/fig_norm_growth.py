"""Embedding norms grow during SSL training (PAPER.md claim 3), over seeds.

SimCLR, SimSiam and BYOL on CIFAR-10 with their released weight decay (the base runs, shared
with the other artifacts). Norms are measured after every epoch on a fixed set of un-augmented
training images (the run's probe set), for the projector output z (the released ablation
notebook's ``embedding_layer = 'projector'``; default) and, for SimSiam/BYOL, the predictor
output p beside it. The claim check is the per-seed growth ``log(norm(final) / norm(0))`` with a
t-interval over seeds; the second figure shows that growth at every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from embedding_norms.config import METHODS
from embedding_norms.plotting import (METHOD_COLORS, METHOD_LABELS, effect_figure, epoch_axis, legend_or_note,
                                      method_style, plot_seeds_and_mean, seed_lines_entry)
from embedding_norms.report import ClaimCheck
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import base_run, effect_table, final_bn_note, final_bn_values, norm_column, vectors_of

PAPER_REF = "Section 4 (norm growth during training), cf. the weight-decay ablation"
TITLE = "Embedding norms grow during training (z and p, over seeds)"
CLAIMS = ("norm-growth",)
VECTOR = ("projector output z (default; the released ablation notebook's `embedding_layer = 'projector'`) and "
          "predictor output p (SimSiam, BYOL) beside it; mean norm over the run's fixed probe set of un-augmented "
          "training images after every epoch (the notebook reads saved augmented train embeddings at saved epochs)")


@dataclass(frozen=True)
class Params:
    """``artifacts.fig_norm_growth`` of a profile."""

    methods: tuple[str, ...] = ("simclr", "simsiam", "byol")

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; choose from {', '.join(METHODS)}")


class Key(NamedTuple):
    method: str
    seed: int


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """The base run of every method and seed."""
    return {Key(m, s): base_run(plan, m, s) for m in p.methods for s in plan.seeds}


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: per run, vector and epoch the mean norm (10-90 % quantiles) and kNN accuracy;
    ``growth``: log(norm(epoch) / norm(0)) per method, vector and epoch with its interval."""
    rows = []
    for key, run in runs.items():
        if not run.measured:  # done or collapsed: the metrics are complete (a collapse is an outcome)
            continue
        m = run.metrics()
        for v in vectors_of(key.method):
            for _, r in m.iterrows():
                rows.append({"method": key.method, "seed": key.seed, "vector": v, "epoch": int(r.epoch),
                             "norm_mean": float(r[norm_column(v)]), "norm_q10": float(r[norm_column(v, "q10")]),
                             "norm_q90": float(r[norm_column(v, "q90")]), "knn_acc": r.get("knn_acc", np.nan),
                             **final_bn_values(r)})
    long = pd.DataFrame(rows)
    if not len(long):
        return {"": long, "growth": pd.DataFrame(), "_effects": pd.DataFrame()}
    start = long[long.epoch == 0].set_index(["method", "seed", "vector"]).norm_mean.rename("norm0")
    eff = long.join(start, on=["method", "seed", "vector"])
    eff = eff.assign(effect=np.log(eff.norm_mean / eff.norm0))[["method", "seed", "vector", "epoch", "effect"]]
    eff = eff[eff.epoch > 0]
    return {"": long, "growth": effect_table(eff, ("method", "vector", "epoch")), "_effects": eff}


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Top: mean norm of z (solid) and p (dashed) over seeds on a linear axis (band = seed range; the
    jump in epoch 1 and what follows are both visible), beside the final BatchNorm's ||gamma|| (dotted)
    where the projector has one; bottom: kNN accuracy, one thin line per seed under the mean. Second
    figure: growth since epoch 0 with its interval over seeds."""
    long, growth = frames[""], frames["growth"]
    if not len(long):
        return {}
    fig, axes = plt.subplots(2, len(p.methods), figsize=(4.4 * len(p.methods), 6.8), squeeze=False, sharex="col")
    for j, m in enumerate(p.methods):
        ax, ax_k = axes[0, j], axes[1, j]
        sub = long[long.method == m]
        drawn = []
        for v in vectors_of(m):
            g = sub[sub.vector == v].groupby("epoch").norm_mean
            if len(g.mean()):
                ax.plot(g.mean().index, g.mean().values, ms=3, label=f"||{v}||, mean of seeds", **method_style(m, vector=v))
                ax.fill_between(g.min().index, g.min().values, g.max().values, color=METHOD_COLORS[m], alpha=0.15, lw=0)
                drawn.append(f"||{v}||")
        gam = sub[sub.vector == "z"].dropna(subset=["gamma_norm"]) if "gamma_norm" in sub else sub.iloc[:0]
        if len(gam):
            gm = gam.groupby("epoch").gamma_norm.mean()
            ax.plot(gm.index, gm.values, ":", lw=1.6, color=METHOD_COLORS[m], label="||gamma|| of z's final BatchNorm")
            drawn.append("||gamma||")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{METHOD_LABELS[m]}: " + ", ".join(drawn or ["no finished run"]))
        ax.set_ylabel("mean norm (band: seed range)")
        legend_or_note(ax, fontsize="x-small")
        k = sub[sub.vector == "z"].dropna(subset=["knn_acc"])
        if len(k):
            plot_seeds_and_mean(ax_k, k, "epoch", "knn_acc", "mean of seeds", method_style(m))
            seed_lines_entry(ax_k, fontsize="x-small")
        else:
            legend_or_note(ax_k)
        ax_k.set_ylabel("kNN accuracy (%)")
        epoch_axis(ax_k)
    fig.suptitle("Embedding norms during training on CIFAR-10 (released weight decay)")
    fig.tight_layout()
    out = {"": fig}
    if len(growth):
        out["effect"] = effect_figure(growth, "log(norm / norm at epoch 0)", "Norm growth since initialisation")
    return out


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per method and vector: per-seed ``log(norm(final) / norm(0))`` (claim: > 0)."""
    eff, out = frames["_effects"], []
    for m in p.methods:
        for v in vectors_of(m):
            sub = eff[(eff.method == m) & (eff.vector == v)] if len(eff) else eff
            test = f"{METHOD_LABELS[m]}: norm of {v} at the last epoch above its initial norm"
            if not len(sub):
                out.append(ClaimCheck.from_effects("norm-growth", test, "log(final / initial mean norm)", [],
                                                   regime="base runs"))
                continue
            last = sub[sub.epoch == sub.epoch.max()]
            fixed = v == "z" and bool(final_bn_note(frames.get("", pd.DataFrame()), m, "x"))
            detail = f"ratio {np.exp(last.effect.mean()):.3g}x (geometric mean over seeds)"
            if fixed:
                detail += "; set by the final BatchNorm's gamma (descriptive, see notes)"
            out.append(ClaimCheck.from_effects(
                "norm-growth", test + f" (epoch {int(last.epoch.max())})", "log(final / initial mean norm)",
                last.sort_values("seed").effect.tolist(), "> 0", "base runs (released weight decay)",
                detail, descriptive=fixed, method=METHOD_LABELS[m], vector=v))
    return out


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Epoch 0 and what a final BatchNorm fixes."""
    out = ["Epoch 0 is the untrained network with its BatchNorm statistics recalibrated on training images "
           "(issue 19), so growth is measured from a network that exists in training."]
    long = frames[""]
    if len(long):
        out += [n for n in (final_bn_note(long, m, "norm growth") for m in p.methods) if n]
    return out


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["fig_norm_growth", *sys.argv[1:]]))
