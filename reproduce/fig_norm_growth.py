"""Embedding norms grow during SSL training; weight decay holds them back (PAPER.md claim 3).

Top row: mean embedding norm per epoch (10-90 % band) of SimCLR, SimSiam and BYOL on CIFAR-10
for each weight decay of the paper's sweep (BYOL: its default weight decay only). Bottom row:
kNN accuracy at the evaluation epochs. Norms are measured on a fixed set of un-augmented
training images (the run's probe set) after every epoch.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, legend_or_note
from reproduce.common import Artifact, BuildContext, Plan, RunSpec, main_single
from reproduce.experiments import DEFAULT_WD, WEIGHT_DECAYS, state_of, wd_run

METHODS = ("simclr", "simsiam", "byol")


def sweep(method: str) -> list[float]:
    """Weight decays of ``method``'s sweep (PAPER.md, 'Weight-decay sweep'); BYOL: its default only."""
    return WEIGHT_DECAYS.get(method, [DEFAULT_WD[method]])


def runs(plan: Plan) -> list[RunSpec]:
    """The training runs this artifact needs at ``plan``'s profile (see the module docstring)."""
    return [wd_run(plan, m, wd) for m in METHODS for wd in sweep(m)]


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), sharex="col")
    finals: dict[str, dict] = {}
    for j, method in enumerate(METHODS):
        wds = sweep(method)
        shades = sns.light_palette(METHOD_COLORS[method], n_colors=len(wds) + 2)[2:][::-1] if len(wds) > 1 else [METHOD_COLORS[method]]
        ax_n, ax_k = axes[0, j], axes[1, j]
        finals[method] = {}
        for wd, color in zip(wds, shades):
            run = ctx.run(f"{method}/wd={wd:g}")
            m = run.metrics()
            if not len(m):
                ctx.skip(f"{method} wd={wd:g}", f"run {state_of(run)}: {run.status.reason}", run=run.label)
                continue
            lab = f"wd={wd:g}" + ("" if run.usable else f" [{state_of(run)}]")
            ax_n.plot(m.epoch, m.emb_norm_mean, color=color, label=lab, lw=1.8)
            ax_n.fill_between(m.epoch, m.emb_norm_q10, m.emb_norm_q90, color=color, alpha=0.15, lw=0)
            k = m.dropna(subset=["knn_acc"])
            ax_k.plot(k.epoch, k.knn_acc, "o-", color=color, label=lab, ms=4)
            finals[method][wd] = {"initial_norm": float(m.emb_norm_mean.iloc[0]),
                                  "final_norm": float(m.emb_norm_mean.iloc[-1]),
                                  "final_epoch": int(m.epoch.iloc[-1]), "state": state_of(run),
                                  "final_knn": float(k.knn_acc.iloc[-1]) if len(k) else None}
        emb = "projector output z" if method == "simclr" else "predictor output p"
        ax_n.set_title(f"{METHOD_LABELS[method]}: embedding norm ({emb})")
        ax_n.set_yscale("log")
        ax_n.set_ylabel("mean ||embedding|| (10-90 % band)")
        ax_k.set_ylabel("kNN accuracy (%)")
        ax_k.set_xlabel("epoch")
        legend_or_note(ax_n, loc="best", fontsize="x-small")
    fig.suptitle(f"Embedding norms during training on CIFAR-10 ({ctx.profile} profile)")
    fig.tight_layout()
    ctx.save_figure(fig)
    ctx.number("per_run", {m: {f"{wd:g}": v for wd, v in d.items()} for m, d in finals.items()})

    for method, d in finals.items():
        # claim 3a: norms grow (without weight decay; BYOL has only its default weight decay)
        wd0 = 0.0 if 0.0 in d else (min(d) if d else None)
        if wd0 is None:
            ctx.check("norm-growth", f"{METHOD_LABELS[method]}: final mean norm > initial", "final / initial",
                      None, "> 1", None, "run not available")
            continue
        r = d[wd0]
        ratio = r["final_norm"] / r["initial_norm"]
        ctx.check("norm-growth", f"{METHOD_LABELS[method]} (wd={wd0:g}): final mean norm > initial",
                  "final / initial mean norm", ratio, "> 1", ratio > 1,
                  f"{r['initial_norm']:.3g} -> {r['final_norm']:.3g} at epoch {r['final_epoch']}")
        if len(d) >= 3:
            wds = sorted(d)
            norms = [d[w]["final_norm"] for w in wds]
            drop = norms[-1] / norms[0]
            ctx.check("weight-decay", f"{METHOD_LABELS[method]}: final norm at the largest wd ({wds[-1]:g}) < at wd=0",
                      "norm(wd max) / norm(wd 0)", drop, "< 1", drop < 1,
                      "final norms by wd: " + ", ".join(f"{w:g}: {n:.3g}" for w, n in zip(wds, norms))
                      + f"; decreasing at every step of the sweep: {'yes' if all(np.diff(norms) < 0) else 'no'}")


ARTIFACT = Artifact(
    name="fig_norm_growth",
    paper_ref="Section 4 (norm growth during training, weight decay), cf. the weight-decay ablation",
    title="Embedding norms grow during training; weight decay holds them back",
    claims=("norm-growth", "weight-decay"),
    runs=runs,
    build=build,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
