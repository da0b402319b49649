"""Weight-decay sweep: mean embedding norm and kNN accuracy at every evaluation epoch, over seeds.

SimCLR and SimSiam on CIFAR-10 with the released sweep (SimCLR wd in {0, 1e-8, 1e-6, 1e-4},
SimSiam wd in {0, 5e-6, 5e-4, 5e-2}; a profile may use a subset). The released weight-decay
ablation notebook reads the projector output z from the saved train embeddings; z is the default
vector here and SimSiam's predictor output p is shown beside it (the two can differ under weight
decay: z ends in a BatchNorm whose affine parameters are decayed). Norms: un-augmented probe
images after every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from embedding_norms.plotting import (METHOD_LABELS, method_style, plain_log_ticks, plot_effect_by_epoch,
                                      plot_seeds_and_mean, seed_lines_entry)
from embedding_norms.report import ClaimCheck
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import (DEFAULT_WD, effect_table, final_bn_note, final_bn_values, norm_column, spearman,
                                   vectors_of, wd_run)

PAPER_REF = "weight-decay ablation (released weight_decay_ablation.ipynb)"
TITLE = "Weight decay: mean embedding norm (z, p) and kNN accuracy per evaluation epoch, over seeds"
CLAIMS = ("weight-decay",)
VECTOR = ("projector output z (default; the released notebook's `embedding_layer = 'projector'`) and SimSiam's "
          "predictor output p beside it; mean norm over the run's fixed probe set of un-augmented training images "
          "after every epoch (the released notebook reads the saved train-set embeddings, one augmented view each, "
          "at the saved epochs: a deviation in the images, not in the vector)")


@dataclass(frozen=True)
class Params:
    """``artifacts.tab_weight_decay`` of a profile (the sweeps must include the released default)."""

    simclr: tuple[float, ...] = (0.0, 1e-8, 1e-6, 1e-4)
    simsiam: tuple[float, ...] = (0.0, 5e-6, 5e-4, 5e-2)

    def __post_init__(self) -> None:
        for m in ("simclr", "simsiam"):
            wds = getattr(self, m)
            if len(wds) < 2 or any(w < 0 for w in wds) or len(set(wds)) != len(wds):
                raise ValueError(f"{m}: need at least two distinct weight decays >= 0, got {list(wds)}")

    def sweep(self, method: str) -> tuple[float, ...]:
        """Sorted weight decays of ``method``."""
        return tuple(sorted(getattr(self, method)))


class Key(NamedTuple):
    method: str
    wd: float
    seed: int


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """Every method x weight decay x seed (the released default is the base run)."""
    return {Key(m, float(w), s): wd_run(plan, m, w, s) for m in ("simclr", "simsiam") for w in p.sweep(m)
            for s in plan.seeds}


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: norm (per vector) and kNN per run at the evaluation epochs; ``effect``: per method,
    vector and epoch, ``log(norm(largest wd) / norm(smallest wd))`` with its interval over seeds."""
    rows = []
    for key, run in runs.items():
        if not run.measured:  # done or collapsed: the metrics are complete (a collapse is an outcome)
            continue
        m = run.metrics().dropna(subset=["knn_acc"])
        for v in vectors_of(key.method):
            for _, r in m.iterrows():
                rows.append({"method": key.method, "weight_decay": key.wd, "seed": key.seed, "vector": v,
                             "epoch": int(r.epoch), "mean_norm": float(r[norm_column(v)]), "knn_acc": float(r.knn_acc),
                             **final_bn_values(r)})
    long = pd.DataFrame(rows)
    if not len(long):
        return {"": long, "effect": pd.DataFrame(), "_effects": pd.DataFrame(), "summary": pd.DataFrame()}
    effs = []
    for m in ("simclr", "simsiam"):
        lo, hi = p.sweep(m)[0], p.sweep(m)[-1]
        sub = long[long.method == m].set_index(["vector", "epoch", "seed", "weight_decay"]).mean_norm.unstack()
        if lo in sub and hi in sub:
            e = np.log(sub[hi] / sub[lo]).dropna().rename("effect").reset_index().assign(method=m)
            effs.append(e)
    eff = pd.concat(effs, ignore_index=True) if effs else pd.DataFrame()
    summary = (long.groupby(["method", "vector", "weight_decay", "epoch"])
               .agg(mean_norm=("mean_norm", "mean"), gamma_norm=("gamma_norm", "mean"),
                    pre_bn_norm=("pre_bn_norm", "mean"), knn_acc=("knn_acc", "mean"), seeds=("seed", "nunique"))
               .reset_index())
    return {"": long, "summary": summary, "effect": effect_table(eff, ("method", "vector", "epoch")) if len(eff) else eff,
            "_effects": eff}


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Mean norm at the last epoch against weight decay (thin: one seed each, bold: mean over seeds;
    z solid, p dashed); the effect of the largest weight decay against the epoch."""
    long, table = frames[""], frames["effect"]
    if not len(long):
        return {}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for j, m in enumerate(("simclr", "simsiam")):
        ax, zero = axes[j], p.sweep(m)[1] / 10  # wd = 0 drawn one decade left of the smallest wd > 0
        sub = long[(long.method == m) & (long.epoch == long[long.method == m].epoch.max())]
        sub = sub.assign(x=np.where(sub.weight_decay > 0, sub.weight_decay, zero))
        for v in vectors_of(m):
            if (sub.vector == v).any():
                plot_seeds_and_mean(ax, sub[sub.vector == v], "x", "mean_norm", f"||{v}||, mean of seeds",
                                    method_style(m, vector=v))
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax, "y")
        ax.set_xticks([zero, *[w for w in p.sweep(m) if w > 0]], ["0", *[f"{w:g}" for w in p.sweep(m) if w > 0]])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("weight decay")
        ax.set_ylabel("mean norm at the last epoch")
        ax.set_title(f"{METHOD_LABELS[m]}: norm at the last epoch")
        seed_lines_entry(ax, fontsize="x-small")
    if len(table):
        plot_effect_by_epoch(axes[2], table.assign(comparison=table.method.map(METHOD_LABELS) + " " + table.vector),
                             "comparison", unit="log(norm, largest / smallest wd)")
        axes[2].legend(fontsize="x-small")
        axes[2].set_title("Effect of the largest weight decay")
    fig.tight_layout()
    return {"": fig}


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per method and vector at the last evaluation epoch: per seed (a) log(norm at largest wd / at
    smallest wd) < 0 and (b) Spearman rho(wd, norm) over the sweep < 0."""
    long, eff, out = frames[""], frames["_effects"], []
    for m in ("simclr", "simsiam"):
        sweep = ", ".join(f"{w:g}" for w in p.sweep(m))
        for v in vectors_of(m):
            sub = eff[(eff.method == m) & (eff.vector == v)] if len(eff) else eff
            test = f"{METHOD_LABELS[m]}, {v}: norm at wd {p.sweep(m)[-1]:g} below wd {p.sweep(m)[0]:g}"
            if not len(sub):
                out.append(ClaimCheck.from_effects("weight-decay", test, "log(norm ratio)", [], regime=f"sweep {sweep}"))
                continue
            last = sub[sub.epoch == sub.epoch.max()].sort_values("seed")
            fixed = v == "z" and bool(final_bn_note(long, m, "x"))
            out.append(ClaimCheck.from_effects("weight-decay", test + f" (epoch {int(last.epoch.max())})",
                                               "log(norm(largest wd) / norm(smallest wd))", last.effect.tolist(), "< 0",
                                               f"sweep {sweep}", f"ratio {np.exp(last.effect.mean()):.3g}x"
                                               + ("; ||z|| follows the final BatchNorm's gamma (descriptive)" if fixed else ""),
                                               descriptive=fixed, method=METHOD_LABELS[m], vector=v))
            ls = long[(long.method == m) & (long.vector == v)]
            ls = ls[ls.epoch == ls.epoch.max()]
            rhos = [spearman(g.weight_decay, g.mean_norm) for _, g in ls.groupby("seed")] if len(p.sweep(m)) >= 3 else []
            if rhos:
                out.append(ClaimCheck.from_correlations("weight-decay", f"{METHOD_LABELS[m]}, {v}: norm falls along "
                                                        "the sweep", "Spearman rho(wd, mean norm)", rhos, "< 0",
                                                        f"sweep {sweep}", method=METHOD_LABELS[m], vector=v))
    return out


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Sweep and defaults."""
    out = [f"Sweeps: SimCLR {list(p.sweep('simclr'))}, SimSiam {list(p.sweep('simsiam'))}; the released defaults "
           f"({DEFAULT_WD['simclr']:g}, {DEFAULT_WD['simsiam']:g}) are the base runs shared with the other artifacts."]
    long = frames[""]
    if len(long):
        for w, g in long[long.method == "simsiam"].groupby("weight_decay"):
            n = final_bn_note(g, "simsiam", f"weight decay {w:g}")
            if n:
                out.append(n)
    return out


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["tab_weight_decay", *sys.argv[1:]]))
