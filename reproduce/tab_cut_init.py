"""Cut-initialization table: kNN accuracy per evaluation epoch for c = 1 and c > 1, over seeds.

SimCLR, SimSiam and BYOL (CIFAR-10; ``paper`` adds CIFAR-100 and ImageNet-100), in two regimes:

- ``whole``: the profile's run (at ``quick`` scale the released schedule compressed to the run:
  warm-up 10/512 of it, cosine over the run). This is the miniature of the paper's tables, whose
  evaluation epochs 16-512 of a 512-epoch run lie after the released 10-epoch warm-up.
- ``early``: the released schedule itself (warm-up 10 epochs, cosine horizon 512 epochs), trained
  for the first ``early_epochs`` epochs: the phase in which cut-initialization acts at CPU scale
  (a measurement in README "Profiles" chose it).

Each check is the per-seed difference ``kNN(c) - kNN(1)`` (same seed, same images), averaged over
the regime's evaluation epochs after 0, with a t-interval over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import pandas as pd

from embedding_norms.config import METHODS
from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, legend_or_note, plot_effect_by_epoch
from embedding_norms.report import ClaimCheck
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import (NO_EMBEDDINGS, base_run, effect_table, knn_or_chance, merge, missing_seeds,
                                   paired_effects, state_of)

PAPER_REF = "Section 4.1 (cut-initialization), table of kNN accuracy per epoch"
TITLE = "Cut-initialization: kNN accuracy per evaluation epoch, c = 1 vs c > 1, over seeds"
CLAIMS = ("cut-init",)
VECTOR = "backbone representation h (kNN accuracy, k = 200, T = 0.1)"

REGIMES = {"whole": "whole schedule (profile's run, compressed released schedule)",
           "early": "early phase (released warm-up 10/512 epochs, first epochs)"}
SUPPORTED_DATASETS = ("cifar10", "cifar100", "imagenet100")


@dataclass(frozen=True)
class Params:
    """``artifacts.tab_cut_init`` of a profile."""

    constants: tuple[float, ...] = (1.0, 3.0, 9.0)
    methods: tuple[str, ...] = ("simclr", "simsiam", "byol")
    datasets: tuple[str, ...] = ("cifar10",)        # paper: cifar10, cifar100, imagenet100
    regimes: tuple[str, ...] = ("whole",)
    simclr_batch_size: int = 0          # paper: 512, as in the released cut/GradScale example
    early_epochs: int = 4
    early_schedule_epochs: float = 512.0   # the released horizon; warm-up = warmup_fraction of it (10 epochs)

    def __post_init__(self) -> None:
        if 1.0 not in self.constants:
            raise ValueError(f"constants must include 1.0 (the reference run), got {list(self.constants)}")
        if any(c <= 0 for c in self.constants) or len(self.constants) < 2:
            raise ValueError(f"constants must be > 0 and at least two values, got {list(self.constants)}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"methods: unknown {bad}; choose from {', '.join(METHODS)}")
        bad = [d for d in self.datasets if d not in SUPPORTED_DATASETS]
        if bad:
            raise ValueError(f"datasets: unsupported {bad}; choose from {', '.join(SUPPORTED_DATASETS)}")
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad or not self.regimes:
            raise ValueError(f"regimes: unknown {bad}; choose from {', '.join(REGIMES)}")
        if self.early_epochs < 1 or self.simclr_batch_size < 0:
            raise ValueError("early_epochs must be >= 1 and simclr_batch_size >= 0")


class Key(NamedTuple):
    regime: str
    dataset: str
    method: str
    c: float
    seed: int


def _overrides(key: Key, p: Params) -> dict:
    ov: dict = {"norm": {"cut_constant": float(key.c)}}
    if key.method == "simclr" and p.simclr_batch_size:
        ov["optim"] = {"batch_size": p.simclr_batch_size}
    if key.regime == "early":
        e = p.early_epochs
        ov.setdefault("optim", {}).update(schedule_epochs=p.early_schedule_epochs)
        ov["train"] = {"epochs": e, "eval_epochs": list(range(0, e + 1)), "save_embeddings_epochs": []}
    return ov


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """Every (regime, dataset, method, c, seed) run; ``whole`` with c = 1 is the method's base run."""
    out = {}
    for regime in p.regimes:
        for ds in p.datasets:
            for m in p.methods:
                for c in p.constants:
                    for s in plan.seeds:
                        key = Key(regime, ds, m, float(c), s)
                        ov = _overrides(key, p)
                        if regime == "whole" and c == 1.0 and not ov.get("optim"):
                            out[key] = base_run(plan, m, s, ds)      # shared with the other artifacts
                        else:
                            out[key] = base_run(plan, m, s, ds, merge(ov, NO_EMBEDDINGS), tag=f"{regime}/c={c:g}")
    return out


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: kNN accuracy per run and evaluation epoch (long); ``effect``: ``kNN(c) - kNN(1)``
    per regime, dataset, method, c and epoch with its interval over seeds."""
    rows = []
    for key, run in runs.items():
        # c > 1 that diverged did not learn (chance); a diverged c = 1 reference gives no pair
        curve = knn_or_chance(run, failure_at_chance=key.c != 1.0)
        for epoch, acc in curve.items():
            rows.append({**key._asdict(), "epoch": int(epoch), "knn_acc": float(acc), "state": state_of(run)})
        if not len(curve):
            rows.append({**key._asdict(), "epoch": None, "knn_acc": None, "state": state_of(run)})
    long = pd.DataFrame(rows)
    done = long.dropna(subset=["knn_acc"])
    by = ("regime", "dataset", "method", "epoch")
    effects = pd.concat([paired_effects(done, "c", c, 1.0, "knn_acc", by).assign(c=c)
                         for c in p.constants if c != 1.0], ignore_index=True) if len(done) else pd.DataFrame()
    table = effect_table(effects, by + ("c",)) if len(effects) else pd.DataFrame()
    declared = pd.DataFrame([k._asdict() for k in runs])
    return {"": long, "effect": table, "_effects": effects, "_declared": declared}


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """One column per method; per regime (and dataset) two rows: kNN curves (mean over seeds, band =
    seed range, one line per c) and the effect of c against c = 1 with its interval over seeds."""
    long, table = frames[""].dropna(subset=["knn_acc"]), frames["effect"]
    blocks = [(r, d) for r in p.regimes for d in p.datasets if len(long[(long.regime == r) & (long.dataset == d)])]
    if not blocks:
        return {}
    fig, axes = plt.subplots(2 * len(blocks), len(p.methods), figsize=(3.6 * len(p.methods), 2.7 * 2 * len(blocks)),
                             squeeze=False)
    for i, (r, d) in enumerate(blocks):
        for j, m in enumerate(p.methods):
            ax, ax_e = axes[2 * i, j], axes[2 * i + 1, j]
            sub = long[(long.regime == r) & (long.dataset == d) & (long.method == m)]
            for c, style in zip(p.constants, ("-", "--", ":", "-.")):
                g = sub[sub.c == c].groupby("epoch").knn_acc
                if len(g.mean()):
                    ax.plot(g.mean().index, g.mean().values, style, marker="o", ms=3, color=METHOD_COLORS[m], label=f"c={c:g}")
                    ax.fill_between(g.min().index, g.min().values, g.max().values, color=METHOD_COLORS[m], alpha=0.1)
            ax.set_title(f"{METHOD_LABELS[m]}, {d}, {r} regime", fontsize="small")
            ax.set_ylabel("kNN acc. (%)")
            legend_or_note(ax, fontsize="x-small")
            t = table[(table.regime == r) & (table.dataset == d) & (table.method == m)] if len(table) else table
            if len(t):
                plot_effect_by_epoch(ax_e, t.assign(comparison=t.c.map(lambda c: f"c={c:g} - c=1")), "comparison")
                ax_e.set_ylabel("kNN(c) - kNN(1)\n[points, 95 % CI]")
                ax_e.legend(fontsize="x-small")
    fig.suptitle("Cut-initialization: kNN accuracy (band: seed range) and the effect of c (band: 95 % CI over seeds)")
    fig.tight_layout()
    return {"": fig}


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per regime, dataset, method and c > 1: the mean over evaluation epochs after 0 of the
    per-seed ``kNN(c) - kNN(1)`` (claim: > 0, cut-initialization speeds up training)."""
    eff = frames["_effects"]
    out = []
    for r in p.regimes:
        for d in p.datasets:
            for m in p.methods:
                for c in p.constants:
                    if c == 1.0:
                        continue
                    test = f"{METHOD_LABELS[m]} {d}: c={c:g} above c=1"
                    sub = eff[(eff.regime == r) & (eff.dataset == d) & (eff.method == m) & (eff.c == c)
                              & (eff.epoch > 0)] if len(eff) else eff
                    if not len(sub):
                        out.append(ClaimCheck.from_effects("cut-init", test, "mean over epochs of kNN(c) - kNN(1) [points]",
                                                           [], regime=REGIMES[r], detail="runs missing or not finished"))
                        continue
                    per_seed = sub.groupby("seed").effect.mean()
                    epochs = sorted(sub.epoch.unique().astype(int))
                    dec = frames["_declared"]
                    declared = dec[(dec.regime == r) & (dec.dataset == d) & (dec.method == m)].seed.unique()
                    out.append(ClaimCheck.from_effects(
                        "cut-init", test + f" (mean over epochs {', '.join(map(str, epochs))})",
                        "mean over epochs of kNN(c) - kNN(1) [points]", per_seed.tolist(), "> 0", REGIMES[r],
                        f"c=1: {sub.control.mean():.1f} %, c={c:g}: {sub.treat.mean():.1f} % (mean over seeds and epochs)"
                        + missing_seeds(declared, per_seed.index)))
    return out


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """How the regimes relate to the paper's tables."""
    return [f"Regimes: {'; '.join(f'`{r}` = {REGIMES[r]}' for r in p.regimes)}. The paper's tables (evaluation epochs "
            "16-512 of 512) correspond to the whole-schedule regime; the early regime shows whether the mechanism "
            "acts at all in the released warm-up phase. Effect per seed: same seed and images for c and c = 1."]


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["tab_cut_init", *sys.argv[1:]]))
