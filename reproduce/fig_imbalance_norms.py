"""Real-data counterpart of the imbalance simulation: on exponentially imbalanced CIFAR-10,
the mean embedding norm of each class against the class's number of training images, at
the end of training (un-augmented training images), for SimCLR and SimSiam.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, legend_or_note
from reproduce.common import Artifact, BuildContext, Plan, RunSpec, main_single
from reproduce.experiments import spearman, state_of
from reproduce.tab_gradscale import gradscale_specs

METHODS = ("simclr", "simsiam")


def runs(plan: Plan) -> list[RunSpec]:
    """The training runs this artifact needs at ``plan``'s profile (see the module docstring)."""
    specs = gradscale_specs(plan)  # the p = 0 imbalanced CIFAR-10 runs of tab_gradscale (same configs)
    return [specs[("cifar10", m, True, 0.0)] for m in METHODS]


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    fig, ax = plt.subplots(figsize=(5.2, 4))
    rows = []
    for method in METHODS:
        run = ctx.run(f"{method}/imbalanced/p=0")
        if not run.usable:
            ctx.skip(METHOD_LABELS[method], f"run {state_of(run)}: {run.status.reason or run.spec.skipped}", run=run.label)
            continue
        emb = run.embeddings()
        labels, norms = emb["train/labels"], emb["train/emb_norm"].astype(np.float64)
        sizes = np.bincount(labels)
        classes = np.flatnonzero(sizes)
        means = np.array([norms[labels == c].mean() for c in classes])
        rel = means / means.mean()
        ax.plot(sizes[classes], rel, "o-", color=METHOD_COLORS[method], label=METHOD_LABELS[method])
        for c, s, mu, r in zip(classes, sizes[classes], means, rel):
            rows.append({"method": METHOD_LABELS[method], "class": int(c), "train_images": int(s),
                         "mean_norm": float(mu), "relative_norm": float(r)})
        metrics = run.metrics()
        ctx.note(f"{METHOD_LABELS[method]}: {int(metrics.step.max())} optimizer steps ({run.cfg.train.epochs} epochs) "
                 f"on {int(sizes.sum())} imbalanced training images; norms of all of them (un-augmented) after "
                 f"epoch {int(metrics.epoch.max())}.")
        rho = spearman(sizes[classes], means)
        ctx.check("imbalance-norms", f"{METHOD_LABELS[method]}: class mean norm rises with class size",
                  "Spearman rho(class size, mean norm)", rho, "> 0", (rho > 0) if rho == rho else None,
                  f"{len(classes)} classes, {int(sizes.sum())} training images")
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("class mean norm / mean over classes")
    ax.set_title(f"Imbalanced CIFAR-10 ({ctx.profile} profile)")
    legend_or_note(ax)
    fig.tight_layout()
    ctx.save_figure(fig)
    table = pd.DataFrame(rows)
    ctx.save_table(table)
    ctx.number("per_class", rows)


ARTIFACT = Artifact(
    name="fig_imbalance_norms",
    paper_ref="Section 3.3 / 4.2 (class imbalance and norms), real-data counterpart of the simulation",
    title="Imbalanced CIFAR-10: class mean embedding norm vs class size",
    claims=("imbalance-norms",),
    runs=runs,
    build=build,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
