"""Weight-decay sweep table: kNN accuracy and mean embedding norm at every evaluation epoch.

SimCLR wd in {0, 1e-8, 1e-6, 1e-4}, SimSiam wd in {0, 5e-6, 5e-4, 5e-2} on CIFAR-10 (the
released code's sweep; the same runs as ``fig_norm_growth``).
"""

from __future__ import annotations

import pandas as pd

from embedding_norms.plotting import METHOD_LABELS
from reproduce.common import Artifact, BuildContext, Plan, RunSpec, main_single
from reproduce.experiments import WEIGHT_DECAYS, spearman, state_of, wd_run


def runs(plan: Plan) -> list[RunSpec]:
    """The training runs this artifact needs at ``plan``'s profile (see the module docstring)."""
    return [wd_run(plan, m, wd) for m, wds in WEIGHT_DECAYS.items() for wd in wds]


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    rows = []
    for method, wds in WEIGHT_DECAYS.items():
        for wd in wds:
            run = ctx.run(f"{method}/wd={wd:g}")
            m = run.metrics()
            if not len(m):
                rows.append({"method": METHOD_LABELS[method], "weight_decay": wd, "epoch": None,
                             "knn_acc": None, "mean_norm": None, "state": state_of(run)})
                continue
            for _, r in m.dropna(subset=["knn_acc"]).iterrows():
                rows.append({"method": METHOD_LABELS[method], "weight_decay": wd, "epoch": int(r.epoch),
                             "knn_acc": r.knn_acc, "mean_norm": r.emb_norm_mean, "state": state_of(run)})
    table = pd.DataFrame(rows)
    ctx.save_table(table)
    # a wide view: one row per (method, wd), columns = epochs
    done = table.dropna(subset=["epoch"])
    if len(done):
        wide = done.pivot_table(index=["method", "weight_decay"], columns="epoch", values=["knn_acc", "mean_norm"])
        wide.columns = [f"{v} @{int(e)}" for v, e in wide.columns]
        ctx.save_table(wide.reset_index(), suffix="_wide")

    for method, wds in WEIGHT_DECAYS.items():
        sub = done[done.method == METHOD_LABELS[method]]
        if not len(sub):
            ctx.check("weight-decay", f"{METHOD_LABELS[method]}: norm falls with weight decay", "Spearman rho", None,
                      "< 0", None, "runs not available")
            continue
        last = sub[sub.epoch == sub.epoch.max()]
        rho = spearman(last.weight_decay, last.mean_norm)
        ctx.check("weight-decay", f"{METHOD_LABELS[method]}: mean norm at epoch {int(sub.epoch.max())} falls with wd",
                  "Spearman rho(wd, mean norm)", rho, "< 0", (rho < 0) if rho == rho else None,
                  ", ".join(f"{w:g}: {n:.3g}" for w, n in zip(last.weight_decay, last.mean_norm)))
        ctx.number(f"{method}_final", {f"{w:g}": {"knn_acc": k, "mean_norm": n}
                                      for w, k, n in zip(last.weight_decay, last.knn_acc, last.mean_norm)})


ARTIFACT = Artifact(
    name="tab_weight_decay",
    paper_ref="weight-decay ablation (released weight_decay_ablation.ipynb)",
    title="Weight decay: kNN accuracy and mean embedding norm per evaluation epoch",
    claims=("weight-decay",),
    runs=runs,
    build=build,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
