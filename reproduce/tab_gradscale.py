"""GradScale table: kNN accuracy for p > 0 against a matched p = 0 control and the base run, over seeds.

SimCLR and SimSiam on balanced and class-imbalanced CIFAR-10 (``paper`` adds CIFAR-100). The
released GradScale example trains p > 0 with lr 0.1 and a warm-up of 100 of 512 epochs, while the
methods' defaults (the base runs) use lr 0.6 (SimCLR) / 0.2 and a 10/512 warm-up: that example
changes two things. Three arms isolate them:

- ``p=<p>``: GradScale with the released example's optimiser settings;
- ``p=0 matched``: no GradScale, the *same* lr and warm-up (the control the verdict on p uses);
- ``base``: the method's released defaults (p = 0), i.e. the comparison the released example makes.

Imbalanced data: the released exponential class profile (class i keeps n * 1.5**-i images of a
balanced pool; ``paper``: the full training set, 14 717 images; ``quick``: a 30 000-image pool,
8 841 images), colour-jitter strength 1 (as released for the ``*_unbalanced`` datasets), and in
reduced profiles as many optimizer steps as a balanced base run (``experiments.imbalanced_overrides``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import pandas as pd

from embedding_norms.plotting import METHOD_LABELS, plot_effect_by_epoch
from embedding_norms.report import ClaimCheck
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import (NO_EMBEDDINGS, base_run, effect_table, imbalanced_overrides, imbalanced_run,
                                   knn_or_chance, merge, missing_seeds, paired_effects, state_of)

PAPER_REF = "Section 4.2 (GradScale), table of kNN accuracy on balanced / imbalanced data"
TITLE = "GradScale: kNN accuracy, p > 0 vs a matched p = 0 control and the base run, over seeds"
CLAIMS = ("gradscale", "gradscale-limit")
VECTOR = "backbone representation h (kNN accuracy); GradScale scales the gradient by ||z||^p (SimCLR) / ||p||^p"


@dataclass(frozen=True)
class Params:
    """``artifacts.tab_gradscale`` of a profile."""

    powers: tuple[float, ...] = (1.0,)
    methods: tuple[str, ...] = ("simclr", "simsiam")
    datasets: tuple[str, ...] = ("cifar10",)
    data: tuple[str, ...] = ("balanced", "imbalanced")
    #: methods whose imbalanced comparison is run (the others: balanced only); () = all of ``methods``
    imbalanced_methods: tuple[str, ...] = ()
    lr: float = 0.1
    warmup_fraction: float = 100 / 512
    simclr_batch_size: int = 0

    def __post_init__(self) -> None:
        if not self.powers or any(pw <= 0 for pw in self.powers):
            raise ValueError(f"powers: GradScale powers must be > 0 (p = 0 is the control), got {list(self.powers)}")
        bad = [m for m in self.methods if m not in ("simclr", "simsiam", "byol")]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}")
        if any(d not in ("cifar10", "cifar100") for d in self.datasets) or not self.datasets:
            raise ValueError(f"datasets: choose from cifar10, cifar100, got {list(self.datasets)}")
        if any(d not in ("balanced", "imbalanced") for d in self.data) or not self.data:
            raise ValueError(f"data: choose from balanced, imbalanced, got {list(self.data)}")
        if any(m not in self.methods for m in self.imbalanced_methods):
            raise ValueError(f"imbalanced_methods {list(self.imbalanced_methods)} must be among methods {list(self.methods)}")
        if self.lr <= 0 or not 0 <= self.warmup_fraction < 1 or self.simclr_batch_size < 0:
            raise ValueError("need lr > 0, 0 <= warmup_fraction < 1, simclr_batch_size >= 0")


class Key(NamedTuple):
    dataset: str
    method: str
    data: str
    arm: str
    seed: int


def arms(p: Params) -> list[str]:
    """The arms of every comparison: base, the matched control, one per GradScale power."""
    return ["base", "p=0 matched"] + [f"p={pw:g}" for pw in p.powers]


def run_spec(plan: Plan, key: Key, p: Params) -> RunSpec:
    """The run of one (dataset, method, data, arm, seed); the imbalanced base arm is
    :func:`~reproduce.experiments.imbalanced_run`, shared with fig_imbalance_norms."""
    ex: dict = {}
    if key.dataset != "cifar10":
        ex["data"] = {"dataset": key.dataset}
    if key.method == "simclr" and p.simclr_batch_size:
        ex["optim"] = {"batch_size": p.simclr_batch_size}
    if key.data == "imbalanced":
        ex = merge(ex, imbalanced_overrides(plan, key.method))
    if key.arm != "base":
        power = 0.0 if key.arm == "p=0 matched" else float(key.arm[2:])
        ex = merge(ex, {"optim": {"lr": p.lr, "warmup_fraction": p.warmup_fraction},
                        "norm": {"gradscale_power": power}})
    if not ex:
        return base_run(plan, key.method, key.seed)
    if key.arm == "base" and key.data == "imbalanced" and ex == imbalanced_overrides(plan, key.method):
        return imbalanced_run(plan, key.method, key.seed)
    return base_run(plan, key.method, key.seed, extra=merge(ex, NO_EMBEDDINGS),
                    tag=f"{key.data}/{key.arm.replace(' ', '-')}")


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """Every dataset x method x data x arm x seed."""
    imb = set(p.imbalanced_methods or p.methods)
    return {k: run_spec(plan, k, p) for k in (Key(d, m, dt, a, s) for d in p.datasets for m in p.methods
                                              for dt in p.data for a in arms(p) for s in plan.seeds)
            if k.data == "balanced" or k.method in imb}


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: kNN per run and epoch (state noted); ``effect``: per comparison and epoch the effect
    of each GradScale arm against the matched control and against the base run, over seeds."""
    rows = []
    for key, run in runs.items():
        # a GradScale run that diverged did not converge (chance); a control that diverged gives no pair
        for epoch, acc in knn_or_chance(run, failure_at_chance=key.arm.startswith("p=") and key.arm != "p=0 matched").items():
            rows.append({**key._asdict(), "epoch": int(epoch), "knn_acc": float(acc), "state": state_of(run)})
    long = pd.DataFrame(rows)
    if not len(long):
        return {"": long, "effect": pd.DataFrame(), "_effects": pd.DataFrame()}
    by = ("dataset", "method", "data", "epoch")
    effs = []
    for pw in p.powers:
        arm = f"p={pw:g}"
        for ref in ("p=0 matched", "base"):
            e = paired_effects(long, "arm", arm, ref, "knn_acc", by)
            effs.append(e.assign(comparison=f"{arm} - {ref}"))
    eff = pd.concat(effs, ignore_index=True)
    states = pd.DataFrame([{**k._asdict(), "state": r.status.state} for k, r in runs.items()])
    return {"": long, "effect": effect_table(eff, by[:-1] + ("comparison", "epoch")), "_effects": eff,
            "_states": states}


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Effect of GradScale against each reference, per method and data, with its interval."""
    table = frames["effect"]
    if not len(table):
        return {}
    panels = table[["dataset", "method", "data"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6), squeeze=False)
    for ax, (d, m, dt) in zip(axes[0], panels):
        t = table[(table.dataset == d) & (table.method == m) & (table.data == dt)]
        plot_effect_by_epoch(ax, t, "comparison", unit="kNN points")
        ax.set_title(f"{METHOD_LABELS[m]}, {d}, {dt}", fontsize="small")
        ax.legend(fontsize="x-small")
    fig.suptitle("GradScale: kNN(p) - kNN(reference), mean over seeds with 95 % CI")
    fig.tight_layout()
    return {"": fig}


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """At the last epoch, per seed: GradScale minus the matched control (the verdict on p) and minus
    the base run; SimCLR: claim ``gradscale`` (> 0); SimSiam/BYOL: claim ``gradscale-limit``
    (p = 1 fails: < 0; a diverged GradScale run counts at chance, a collapsed one with its measured
    accuracy, and the check says in how many seeds it happened); the base comparison changes the
    learning rate and warm-up too, so it is *descriptive* (shown, not counted). SimCLR also: the gain on
    imbalanced minus the gain on balanced data (> 0, "most of all on imbalanced data")."""
    eff, out = frames["_effects"], []
    if not len(eff):
        return [ClaimCheck.from_effects("gradscale", "GradScale runs", "kNN(p) - kNN(p=0 matched) [points]", [])]
    last = eff[eff.epoch == eff.groupby(["dataset", "method", "data"]).epoch.transform("max")]
    st = frames["_states"]
    for (d, m, dt, comp), g in last.groupby(["dataset", "method", "data", "comparison"], sort=False):
        claim = "gradscale" if m == "simclr" else "gradscale-limit"
        direction = "> 0" if claim == "gradscale" else "< 0"
        g = g.sort_values("seed")
        matched = "matched" in comp
        arm = comp.split(" - ")[0]
        arm_states = st[(st.dataset == d) & (st.method == m) & (st.data == dt) & (st.arm == arm)].state
        failed = int(arm_states.isin(["diverged", "collapsed"]).sum())
        regime = ("matched control (same lr and warm-up)" if matched
                  else "released example vs base run (lr and warm-up differ too): descriptive")
        declared = st[(st.dataset == d) & (st.method == m) & (st.data == dt)].seed.unique()
        out.append(ClaimCheck.from_effects(
            claim, f"{METHOD_LABELS[m]} {d} {dt}: {comp} at epoch {int(g.epoch.max())}", "kNN difference [points]",
            g.effect.tolist(), direction, regime,
            f"means {g.treat.mean():.1f} % vs {g.control.mean():.1f} %; {arm} diverged or collapsed in {failed} of "
            f"{len(arm_states)} seeds (counted at chance if diverged)" + missing_seeds(declared, g.seed),
            descriptive=not matched))
    matched = last[last.comparison.str.endswith("p=0 matched") & (last.method == "simclr")]
    for (d, comp), g in matched.groupby(["dataset", "comparison"]):
        w = g.pivot_table(index="seed", columns="data", values="effect")
        if {"balanced", "imbalanced"} <= set(w.columns):
            diff = (w["imbalanced"] - w["balanced"]).dropna()
            out.append(ClaimCheck.from_effects(
                "gradscale", f"SimCLR {d}: gain of {comp.split(' - ')[0]} larger on imbalanced than on balanced data",
                "gain(imbalanced) - gain(balanced) [points]", diff.tolist(), "> 0",
                "matched control (same lr and warm-up)"))
    return out


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """The arms and their settings."""
    return [f"Arms: `base` = released defaults (p = 0); `p=0 matched` = p = 0 with lr {p.lr:g} and warm-up "
            f"{p.warmup_fraction:.3g} of the cosine horizon (the released GradScale example's settings); `p=...` = "
            "GradScale with those settings. The verdict on p rests on the matched control; the base comparison is the "
            "one the released example makes. A GradScale run that diverged counts at chance accuracy (a collapsed one with its measured accuracy); the checks say in how many seeds either happened. The base comparisons are descriptive: shown, not counted in the verdict."]


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["tab_gradscale", *sys.argv[1:]]))
