"""Real-data counterpart of the imbalance simulation: on exponentially imbalanced CIFAR-10 (the
released class profile n * 1.5**-i; ``quick``: 8 841 images from a 30 000-image pool), the mean
embedding norm of each class against its number of training images at the end of training
(un-augmented training images), for SimCLR and SimSiam, over seeds. The runs are the imbalanced
base runs of tab_gradscale (``experiments.imbalanced_run``).

Class size is tied to class identity (class 0 is always the largest), so a class's own norm level
could mimic a size effect. A second check removes it: per class, the log-ratio of its mean norm
in the imbalanced run to its mean norm in the balanced base run of the same method and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, effect_figure, legend_or_note
from embedding_norms.report import ClaimCheck
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import base_run, effect_table, imbalanced_run, spearman, vectors_of

PAPER_REF = "Section 3.3 / 4.2 (class imbalance and norms), real-data counterpart of the simulation"
TITLE = "Imbalanced CIFAR-10: class mean embedding norm vs class size, over seeds"
CLAIMS = ("imbalance-norms",)
VECTOR = "projector output z (default) and predictor output p (SimSiam) beside it; all un-augmented training images"


@dataclass(frozen=True)
class Params:
    """``artifacts.fig_imbalance_norms`` of a profile."""

    methods: tuple[str, ...] = ("simclr", "simsiam")

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in ("simclr", "simsiam", "byol")]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}")


class Key(NamedTuple):
    method: str
    data: str      # "imbalanced" or "balanced" (the reference of each class's own norm level)
    seed: int


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """The imbalanced base run and the balanced base run of every method and seed."""
    out = {Key(m, "imbalanced", s): imbalanced_run(plan, m, s) for m in p.methods for s in plan.seeds}
    out.update({Key(m, "balanced", s): base_run(plan, m, s) for m in p.methods for s in plan.seeds})
    return out


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: per method, seed, vector and class: training images and mean norm (also relative to
    the mean over classes); ``rho``: Spearman rho(class size, class mean norm) per run and vector."""
    rows, rhos, by_epoch = [], [], []
    balanced = {}
    for key, run in runs.items():
        if key.data == "balanced" and run.usable:
            emb = run.embeddings()
            balanced[(key.method, key.seed)] = {
                v: pd.Series(emb[f"train/{v}_norm"].astype(np.float64)).groupby(emb["train/labels"]).mean()
                for v in vectors_of(key.method)}
    for key, run in runs.items():
        if key.data != "imbalanced" or not run.usable:
            continue
        emb = run.embeddings()
        labels = emb["train/labels"]
        sizes = np.bincount(labels)
        classes = np.flatnonzero(sizes)
        steps = int(run.metrics().step.max())
        for v in vectors_of(key.method):
            norms = emb[f"train/{v}_norm"].astype(np.float64)
            means = np.array([norms[labels == c].mean() for c in classes])
            for c, n, mu in zip(classes, sizes[classes], means):
                rows.append({"method": key.method, "seed": key.seed, "vector": v, "class": int(c),
                             "train_images": int(n), "mean_norm": float(mu), "relative_norm": float(mu / means.mean())})
            ref = balanced.get((key.method, key.seed), {}).get(v)
            rel = np.log(means / ref.reindex(classes).to_numpy()) if ref is not None else None
            rhos.append({"method": key.method, "seed": key.seed, "vector": v, "rho": spearman(sizes[classes], means),
                         "rho_vs_balanced": spearman(sizes[classes], rel) if rel is not None else float("nan"),
                         "images": int(sizes.sum()), "optimizer_steps": steps})
            # the same correlation at every epoch, from the per-class norms of the run's probe images
            cn = run.class_norms()
            col = f"{v}_norm_mean"
            if len(cn) and col in cn:
                for epoch, g in cn.groupby("epoch"):
                    g = g.set_index("class").reindex(classes)
                    by_epoch.append({"method": key.method, "seed": key.seed, "vector": v, "epoch": int(epoch),
                                     "effect": spearman(sizes[classes], g[col].to_numpy())})
    eff = pd.DataFrame(by_epoch)
    table = (effect_table(eff.dropna(subset=["effect"]), ("method", "vector", "epoch"), correlation=True)
             if len(eff) else eff)
    return {"": pd.DataFrame(rows), "rho": pd.DataFrame(rhos), "rho_by_epoch": table}


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Relative class norm against class size (log x), one line per seed, z solid / p dashed."""
    t = frames[""]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for (m, v, s), g in (t.groupby(["method", "vector", "seed"]) if len(t) else []):
        g = g.sort_values("train_images")
        ax.plot(g.train_images, g.relative_norm, "o-" if v == "z" else "s--", ms=3, alpha=0.7, color=METHOD_COLORS[m],
                label=f"{METHOD_LABELS[m]} {v}" if s == t.seed.min() else None)
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("class mean norm / mean over classes")
    ax.set_title("Imbalanced CIFAR-10 (one line per seed)", fontsize="small")
    legend_or_note(ax, fontsize="x-small")
    fig.tight_layout()
    out = {"": fig}
    e = frames.get("rho_by_epoch", pd.DataFrame())
    if len(e):
        out["effect"] = effect_figure(e, "Spearman rho(class size, class mean norm)",
                                      "Class-size effect on the norm during training (probe images)")
    return out


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per method and vector: per-seed Spearman rho(class size, class mean norm) (claim: > 0)."""
    r, out = frames["rho"], []
    for m in p.methods:
        for v in vectors_of(m):
            g = r[(r.method == m) & (r.vector == v)].sort_values("seed") if len(r) else r
            detail = (f"{int(g.images.iloc[0])} images, {int(g.optimizer_steps.iloc[0])} optimizer steps" if len(g) else "")
            regime = "released class profile, as many steps as a balanced run"
            out.append(ClaimCheck.from_correlations(
                "imbalance-norms", f"{METHOD_LABELS[m]}, {v}: class mean norm rises with class size",
                "Spearman rho(class size, class mean norm)", g.rho.tolist() if len(g) else [], "> 0", regime, detail))
            out.append(ClaimCheck.from_correlations(
                "imbalance-norms", f"{METHOD_LABELS[m]}, {v}: class norm relative to the same class in the balanced run "
                "rises with class size (class identity removed)",
                "Spearman rho(class size, log(norm imbalanced / norm balanced))",
                g.rho_vs_balanced.tolist() if len(g) else [], "> 0", regime, detail))
    return out


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["fig_imbalance_norms", *sys.argv[1:]]))
