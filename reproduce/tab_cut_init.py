"""Cut-initialization table: kNN accuracy per evaluation epoch for c in {1, 3, 9}.

SimCLR, SimSiam and BYOL on CIFAR-10 and CIFAR-100 (``paper`` adds ImageNet-100), plus the
first evaluation epoch at which each run reaches a target accuracy (a fraction of the c = 1
run's final kNN accuracy) and the speed-up of c > 1 over c = 1 in epochs. In ``paper`` SimCLR
uses batch 512 here, as in the released example (``simclr_batch_size``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, legend_or_note
from reproduce.common import Artifact, BuildContext, Plan, RunSpec, main_single
from reproduce.experiments import cut_run, first_epoch_reaching, knn_curve, state_of

METHODS = ("simclr", "simsiam", "byol")
DEFAULTS = {"constants": [1.0, 3.0, 9.0], "datasets": ["cifar10", "cifar100"], "simclr_batch_size": 0,
            "target_fraction": 0.9}


def _extra(method: str, p: dict) -> dict:
    if method == "simclr" and p["simclr_batch_size"]:
        return {"optim": {"batch_size": p["simclr_batch_size"]}}
    return {}


def runs(plan: Plan) -> list[RunSpec]:
    """The training runs this artifact needs at ``plan``'s profile (see the module docstring)."""
    p = plan.params("tab_cut_init", DEFAULTS)
    return [cut_run(plan, m, c, ds, _extra(m, p)) for ds in p["datasets"] for m in METHODS for c in p["constants"]]


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    p = ctx.params(DEFAULTS)
    rows, curves = [], {}
    for ds in p["datasets"]:
        for method in METHODS:
            ref_label = f"{method if ds == 'cifar10' else f'{method}/{ds}'}/c=1"
            ref = ctx.run(ref_label)
            if ref.cfg is None:
                ctx.skip(f"{METHOD_LABELS[method]} on {ds}", ref.spec.skipped, run=ref.label)
                continue
            ref_curve = knn_curve(ref)
            target = p["target_fraction"] * float(ref_curve.iloc[-1]) if len(ref_curve) else None
            ref_epoch = first_epoch_reaching(ref_curve, target) if target is not None else None
            for c in p["constants"]:
                run = ctx.run(f"{method if ds == 'cifar10' else f'{method}/{ds}'}/c={c:g}")
                curve = knn_curve(run)
                curves[(ds, method, c)] = curve
                hit = first_epoch_reaching(curve, target) if target is not None else None
                row = {"dataset": ds + (" (stand-in)" if run.cfg.data.standin else ""), "method": METHOD_LABELS[method],
                       "c": c, "state": state_of(run)}
                row.update({f"knn@{int(e)}": v for e, v in curve.items()})
                row["target_acc"] = target
                row["first_epoch_at_target"] = hit
                row["speedup_vs_c1"] = (ref_epoch / hit) if (hit and ref_epoch) else None
                rows.append(row)
    table = pd.DataFrame(rows)
    ctx.save_table(table)

    # figure: kNN curves per method, one line per c
    present = [(ds, m) for ds in p["datasets"] for m in METHODS if any(k[:2] == (ds, m) for k in curves)]
    if present:
        fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 3.3), squeeze=False)
        for ax, (ds, m) in zip(axes[0], present):
            for c, style in zip(p["constants"], ("-", "--", ":", "-.")):
                cur = curves.get((ds, m, c))
                if cur is not None and len(cur):
                    ax.plot(cur.index, cur.values, style, marker="o", ms=3, color=METHOD_COLORS[m], label=f"c={c:g}")
            ax.set_title(f"{METHOD_LABELS[m]}, {ds}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("kNN accuracy (%)")
            legend_or_note(ax, fontsize="x-small")
        fig.suptitle(f"Cut-initialization ({ctx.profile} profile)")
        fig.tight_layout()
        ctx.save_figure(fig)

    # claim checks: first evaluation epoch after 0, and time to target
    for ds in p["datasets"]:
        for method in METHODS:
            base = curves.get((ds, method, 1.0))
            if base is None:
                continue
            base = base[base.index > 0]
            for c in p["constants"]:
                if c == 1.0:
                    continue
                cur = curves.get((ds, method, c))
                cur = cur[cur.index > 0] if cur is not None else None
                if cur is None or not len(cur) or not len(base):
                    ctx.check("cut-init", f"{METHOD_LABELS[method]} {ds}: c={c:g} beats c=1 at the first eval epoch",
                              "kNN(c) - kNN(1)", None, "> 0", None, "run missing, diverged or failed")
                    continue
                e = int(min(cur.index[0], base.index[0]))
                diff = float(cur.get(e, float("nan")) - base.get(e, float("nan")))
                ctx.check("cut-init", f"{METHOD_LABELS[method]} {ds}: c={c:g} beats c=1 at the first eval epoch ({e})",
                          "kNN(c) - kNN(1) [points]", diff, "> 0", diff > 0,
                          f"c=1: {base.get(e):.1f}%, c={c:g}: {cur.get(e):.1f}%")
                # the whole learning curve: mean kNN accuracy over the common evaluation epochs after 0
                common = sorted(set(cur.index) & set(base.index))
                if common:
                    auc = float(cur[common].mean() - base[common].mean())
                    ctx.check("cut-init", f"{METHOD_LABELS[method]} {ds}: c={c:g} above c=1 over the learning curve "
                              f"(mean over epochs {', '.join(map(str, common))})",
                              "mean kNN(c) - mean kNN(1) [points]", auc, "> 0", auc > 0,
                              f"c=1: {base[common].mean():.1f}%, c={c:g}: {cur[common].mean():.1f}%")
    ctx.number("table", table.to_dict("records"))


ARTIFACT = Artifact(
    name="tab_cut_init",
    paper_ref="Section 4.1 (cut-initialization), table of kNN accuracy per epoch",
    title="Cut-initialization: kNN accuracy per evaluation epoch for c = 1, 3, 9",
    claims=("cut-init",),
    runs=runs,
    build=build,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
