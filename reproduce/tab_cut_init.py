"""Cut-initialization table: kNN accuracy per evaluation epoch for c = 1 and c > 1, over seeds.

SimCLR, SimSiam and BYOL (CIFAR-10; ``paper`` adds CIFAR-100 and ImageNet-100), in two regimes:

- ``whole``: the profile's run (its base-run schedule, whatever warm-up the profile gives it).
  This is the miniature of the paper's tables, whose evaluation epochs 16-512 of a 512-epoch run
  lie after the released 10-epoch warm-up.
- ``early``: the released schedule itself, set explicitly (warm-up ``early_warmup_epochs`` = 10
  epochs, cosine horizon 512 epochs, whatever the profile's base warm-up), trained for the first
  ``early_epochs`` epochs: the phase in which cut-initialization acts at CPU scale.

and, per regime, one or more *scopes* of the cut (``norm.cut_scope``, :data:`embedding_norms.models.CUT_SCOPES`):

- ``all``: every parameter divided by c, BYOL's target included (as released);
- ``projector``: only the projector (+ predictor, + BYOL's target projector), the part that sets
  the initial embedding norm. Dividing weights that a BatchNorm follows by c leaves the forward
  pass unchanged but multiplies their effective learning rate by about c**2; the full cut does that
  to every backbone layer. The projector-only cut gives small initial embedding norms (for
  SimSiam/BYOL exactly those of the full cut: their projector ends in BatchNorm) with the backbone
  as in the uncut run, so it separates the paper's mechanism from that backbone lr shock;
- ``backbone``: only the backbone (SimSiam/BYOL: the lr shock *without* a smaller initial embedding norm).

Each check is the per-seed difference ``kNN(c) - kNN(1)`` (same seed, same images), averaged over
the regime's evaluation epochs after 0, with a t-interval over seeds; each (regime, scope) has its
own verdict, gated per seed on the better of its two arms having learned (:func:`speedup_gate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import matplotlib.pyplot as plt
import pandas as pd

from embedding_norms.config import METHODS
from embedding_norms.models import CUT_SCOPES
from embedding_norms.plotting import (METHOD_COLORS, METHOD_LABELS, epoch_axis, legend_or_note, method_style,
                                      plot_effect_by_epoch)
from embedding_norms.report import ClaimCheck
from embedding_norms.stats import learning_gate
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import (NO_EMBEDDINGS, arm_means, base_run, effect_table, knn_gain, knn_or_chance, merge,
                                   missing_seeds, paired_effects, state_of)

PAPER_REF = "Section 4.1 (cut-initialization), table of kNN accuracy per epoch"
TITLE = "Cut-initialization: kNN accuracy per evaluation epoch, c = 1 vs c > 1, over seeds"
CLAIMS = ("cut-init",)
VECTOR = "backbone representation h (kNN accuracy, k = 200, T = 0.1)"

REGIMES = {"whole": "whole schedule (the profile's base-run schedule)",
           "early": "early phase (released schedule: warm-up 10 of 512 epochs, first epochs)"}
#: What each scope's check isolates (shown in the check's detail).
SCOPES = {"all": "all parameters cut (as released): small initial embedding norm and, behind every BatchNorm, "
                 "an effective-lr boost of about c^2",
          "projector": "projector (+ predictor) cut only: small initial embedding norm, backbone as uncut (no "
                       "BatchNorm effective-lr shock in the backbone whose h the kNN measures)",
          "backbone": "backbone cut only: BatchNorm effective-lr shock in the backbone; SimSiam/BYOL's initial "
                      "embedding norm unchanged (their projector ends in BatchNorm)"}
SUPPORTED_DATASETS = ("cifar10", "cifar100", "imagenet100")


@dataclass(frozen=True)
class Params:
    """``artifacts.tab_cut_init`` of a profile."""

    constants: tuple[float, ...] = (1.0, 3.0, 9.0)
    methods: tuple[str, ...] = ("simclr", "simsiam", "byol")
    datasets: tuple[str, ...] = ("cifar10",)        # paper: cifar10, cifar100, imagenet100
    regimes: tuple[str, ...] = ("whole",)
    #: scopes of the cut (``norm.cut_scope``); ``all`` is the released cut
    scopes: tuple[str, ...] = ("all",)
    #: methods / regimes that get the scopes other than ``all`` (() = every method / regime)
    scoped_methods: tuple[str, ...] = ()
    scoped_regimes: tuple[str, ...] = ()
    simclr_batch_size: int = 0          # paper: 512, as in the released cut/GradScale example
    early_epochs: int = 4
    early_schedule_epochs: float = 512.0   # the released cosine horizon (epochs)
    early_warmup_epochs: float = 10.0      # the released warm-up (epochs), whatever the profile's base warm-up

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
        bad = [sc for sc in self.scopes if sc not in CUT_SCOPES]
        if bad or not self.scopes:
            raise ValueError(f"scopes: unknown {bad}; choose from {', '.join(CUT_SCOPES)}")
        if any(m not in self.methods for m in self.scoped_methods):
            raise ValueError(f"scoped_methods {list(self.scoped_methods)} must be among methods {list(self.methods)}")
        if any(r not in self.regimes for r in self.scoped_regimes):
            raise ValueError(f"scoped_regimes {list(self.scoped_regimes)} must be among regimes {list(self.regimes)}")
        if self.early_epochs < 1 or self.simclr_batch_size < 0 or self.early_warmup_epochs < 0:
            raise ValueError("early_epochs must be >= 1, simclr_batch_size >= 0 and early_warmup_epochs >= 0")

    def scopes_of(self, regime: str, method: str) -> tuple[str, ...]:
        """The cut scopes run for ``(regime, method)``: every scope where the scoped arms run, else ``all``
        (when listed)."""
        scoped = (method in (self.scoped_methods or self.methods)) and (regime in (self.scoped_regimes or self.regimes))
        return self.scopes if scoped else tuple(sc for sc in self.scopes if sc == "all")


class Key(NamedTuple):
    regime: str
    dataset: str
    method: str
    scope: str
    c: float
    seed: int


def _overrides(key: Key, p: Params) -> dict:
    ov: dict = {"norm": {"cut_constant": float(key.c)}}
    if key.c != 1.0 and key.scope != "all":
        ov["norm"]["cut_scope"] = key.scope        # c = 1: no cut, the same run for every scope
    if key.method == "simclr" and p.simclr_batch_size:
        ov["optim"] = {"batch_size": p.simclr_batch_size}
    if key.regime == "early":
        e = p.early_epochs
        ov.setdefault("optim", {}).update(schedule_epochs=p.early_schedule_epochs, warmup_epochs=p.early_warmup_epochs,
                                          warmup_fraction=None)
        ov["train"] = {"epochs": e, "eval_epochs": list(range(0, e + 1)), "save_embeddings_epochs": []}
    return ov


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """Every (regime, dataset, method, scope, c, seed) run; the c = 1 run is one run shared by the
    scopes of its regime, and in ``whole`` it is the method's base run."""
    out = {}
    for regime in p.regimes:
        for ds in p.datasets:
            for m in p.methods:
                for scope in p.scopes_of(regime, m):
                    for c in p.constants:
                        for s in plan.seeds:
                            key = Key(regime, ds, m, scope, float(c), s)
                            ov = _overrides(key, p)
                            if regime == "whole" and c == 1.0 and not ov.get("optim"):
                                out[key] = base_run(plan, m, s, ds)      # shared with the other artifacts
                            else:
                                tag = f"{regime}/c={c:g}" + (f"/cut-{scope}" if c != 1.0 and scope != "all" else "")
                                out[key] = base_run(plan, m, s, ds, merge(ov, NO_EMBEDDINGS), tag=tag)
    return out


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: kNN accuracy per run and evaluation epoch (long); ``effect``: ``kNN(c) - kNN(1)``
    per regime, dataset, method, scope, c and epoch with its interval over seeds and both arms'
    mean kNN; ``init``: per run group the epoch-0 (BatchNorm-recalibrated) norms of h, z and p and
    the kNN gain over epoch 0 (what each scope does to the initial norms; whether each arm learned)."""
    rows, runs_rows = [], []
    for key, run in runs.items():
        # c > 1 that diverged did not learn (chance); a diverged c = 1 reference gives no pair
        curve = knn_or_chance(run, failure_at_chance=key.c != 1.0)
        for epoch, acc in curve.items():
            rows.append({**key._asdict(), "epoch": int(epoch), "knn_acc": float(acc), "state": state_of(run)})
        if not len(curve):
            rows.append({**key._asdict(), "epoch": None, "knn_acc": None, "state": state_of(run)})
        m = run.metrics() if run.measured else pd.DataFrame()
        first = m[m.epoch == 0].iloc[0] if len(m) and "epoch" in m and (m.epoch == 0).any() else {}
        runs_rows.append({**key._asdict(), "label": run.label, "knn_gain": knn_gain(run) if run.measured else float("nan"),
                          **{f"{v}_norm_epoch0": float(first.get(f"{v}_norm_mean", float("nan"))) for v in ("h", "z", "p")}})
    long = pd.DataFrame(rows)
    per_run = pd.DataFrame(runs_rows)
    done = long.dropna(subset=["knn_acc"])
    by = ("regime", "dataset", "method", "scope", "epoch")
    effects = pd.concat([paired_effects(done, "c", c, 1.0, "knn_acc", by).assign(c=c)
                         for c in p.constants if c != 1.0], ignore_index=True) if len(done) else pd.DataFrame()
    table = arm_means(effect_table(effects, by + ("c",)), effects, by + ("c",)) if len(effects) else pd.DataFrame()
    init = (per_run.drop(columns=["label", "seed"]).groupby(["regime", "dataset", "method", "scope", "c"], sort=False)
            .mean().reset_index().rename(columns={"knn_gain": "knn_gain_mean"}))
    return {"": long, "effect": table, "init": init, "_effects": effects, "_runs": per_run,
            "_declared": pd.DataFrame([k._asdict() for k in runs])}


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """One column per method; per regime (and dataset) two rows: kNN curves (mean over seeds, band =
    seed range, one line per c and scope) and the effect of c against c = 1 with its interval over seeds."""
    long, table = frames[""].dropna(subset=["knn_acc"]), frames["effect"]
    blocks = [(r, d) for r in p.regimes for d in p.datasets if len(long[(long.regime == r) & (long.dataset == d)])]
    if not blocks:
        return {}
    fig, axes = plt.subplots(2 * len(blocks), len(p.methods), figsize=(3.8 * len(p.methods), 2.8 * 2 * len(blocks)),
                             squeeze=False)
    for i, (r, d) in enumerate(blocks):
        for j, m in enumerate(p.methods):
            ax, ax_e = axes[2 * i, j], axes[2 * i + 1, j]
            sub = long[(long.regime == r) & (long.dataset == d) & (long.method == m)]
            arms = [(1.0, p.scopes_of(r, m)[0])] + [(c, sc) for sc in p.scopes_of(r, m) for c in p.constants if c != 1.0]
            styles = {}  # the effect of an arm is drawn in the style of the arm (c = 1: solid)
            for k, (c, sc) in enumerate(arms):
                g = sub[(sub.c == c) & (sub.scope == sc)].groupby("epoch").knn_acc
                styles[f"c={c:g} - c=1, cut {sc}"] = method_style(m, k)
                if len(g.mean()):
                    name = "c=1" if c == 1.0 else f"c={c:g}, cut {sc}"
                    ax.plot(g.mean().index, g.mean().values, ms=3, label=name, **method_style(m, k))
                    ax.fill_between(g.min().index, g.min().values, g.max().values, color=METHOD_COLORS[m], alpha=0.1, lw=0)
            ax.set_title(f"{METHOD_LABELS[m]}, {d}, {r} regime", fontsize="small")
            ax.set_ylabel("kNN acc. (%)")
            epoch_axis(ax, "")
            legend_or_note(ax, fontsize="x-small")
            t = table[(table.regime == r) & (table.dataset == d) & (table.method == m)] if len(table) else table
            if len(t):
                plot_effect_by_epoch(ax_e, t.assign(comparison=[f"c={c:g} - c=1, cut {sc}" for c, sc in zip(t.c, t.scope)]),
                                     "comparison", styles=styles)
                ax_e.set_ylabel("kNN(c) - kNN(1)\n[points, 95 % CI]")
                ax_e.legend(fontsize="x-small")
            else:
                epoch_axis(ax_e)
    fig.suptitle("Cut-initialization: kNN accuracy (band: seed range) and the effect of c (band: 95 % CI over seeds)")
    fig.tight_layout()
    return {"": fig}


def check_label(method: str, dataset: str, regime: str, scope: str, c: float) -> str:
    """The stable label of a cut-init check: method, dataset, regime, scope, comparison."""
    return f"{METHOD_LABELS[method]} {dataset}, {regime} regime, cut {scope}: c={c:g} above c=1"


def speedup_gate(ref: pd.DataFrame, arm: pd.DataFrame, regime: str) -> tuple[Optional[str], str]:
    """The learning gate of a speed-up comparison: per seed, the better of the two arms (c = 1 and
    c) must have gained >= 5 kNN points over epoch 0. A speed-up is a comparison of how far the
    arms got, so the early phase may leave c = 1 below the bar as long as one arm learned; if
    neither did, the difference is one between two untrained networks: "not testable".

    Args:
        ref, arm: per-run rows (columns ``seed``, ``knn_gain``) of the c = 1 and the c arm.

    Returns:
        (reason or None, the note for the check's detail).
    """
    best = pd.concat([ref[["seed", "knn_gain"]], arm[["seed", "knn_gain"]]]).groupby("seed").knn_gain.max()
    why = learning_gate({f"seed {s} (better arm)": g for s, g in best.items()})
    note = (f"gated per seed on the better arm gaining >= 5 kNN points over epoch 0 (c = 1 {regime}-regime gains "
            f"{[round(float(g), 1) for g in ref.sort_values('seed').knn_gain]}, c arm "
            f"{[round(float(g), 1) for g in arm.sort_values('seed').knn_gain]})")
    return why, note


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per regime, dataset, method, scope and c > 1: the mean over evaluation epochs after 0 of the
    per-seed ``kNN(c) - kNN(1)`` (claim: > 0, cut-initialization speeds up training). Each check is
    gated per seed on the better of its two arms having learned (:func:`speedup_gate`): else
    "not testable"."""
    eff, per_run = frames["_effects"], frames["_runs"]
    stat = "mean over epochs of kNN(c) - kNN(1) [points]"
    out = []
    for r in p.regimes:
        for d in p.datasets:
            for m in p.methods:
                ref = per_run[(per_run.regime == r) & (per_run.dataset == d) & (per_run.method == m) & (per_run.c == 1.0)]
                ref = ref.drop_duplicates("label")
                for sc in p.scopes_of(r, m):
                    for c in p.constants:
                        if c == 1.0:
                            continue
                        arm = per_run[(per_run.regime == r) & (per_run.dataset == d) & (per_run.method == m)
                                      & (per_run.c == c) & (per_run.scope == sc)].drop_duplicates("label")
                        why, gate_note = speedup_gate(ref, arm, r)
                        test = check_label(m, d, r, sc, c)
                        sub = eff[(eff.regime == r) & (eff.dataset == d) & (eff.method == m) & (eff.scope == sc)
                                  & (eff.c == c) & (eff.epoch > 0)] if len(eff) else eff
                        if not len(sub):
                            out.append(ClaimCheck.from_effects("cut-init", test, stat, [], regime=REGIMES[r],
                                                               detail="runs missing or not finished"))
                            continue
                        per_seed = sub.groupby("seed").effect.mean()
                        epochs = sorted(sub.epoch.unique().astype(int))
                        dec = frames["_declared"]
                        declared = dec[(dec.regime == r) & (dec.dataset == d) & (dec.method == m)].seed.unique()
                        out.append(ClaimCheck.from_effects(
                            "cut-init", test, stat, per_seed.tolist(), "> 0", REGIMES[r],
                            f"{SCOPES[sc]}; epochs {', '.join(map(str, epochs))}; c=1: {sub.control.mean():.1f} %, "
                            f"c={c:g}: {sub.treat.mean():.1f} % (mean over seeds and epochs); {gate_note}"
                            + missing_seeds(declared, per_seed.index), untestable=why))
    return out


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """How the regimes and scopes relate to the paper's tables and mechanism."""
    out = [f"Regimes: {'; '.join(f'`{r}` = {REGIMES[r]}' for r in p.regimes)}. The paper's tables (evaluation epochs "
           "16-512 of 512) correspond to the whole-schedule regime; the early regime shows whether the mechanism "
           f"acts at all in the released warm-up phase (warm-up {p.early_warmup_epochs:g} of {p.early_schedule_epochs:g} "
           "epochs, set explicitly, whatever the profile's base warm-up). Effect per seed: same seed and images for c "
           "and c = 1. Every check is gated per seed on the better of its two arms having learned (>= 5 kNN points over "
           "epoch 0): a speed-up may leave c = 1 below the bar early on, two untrained arms decide nothing."]
    out.append("Scopes of the cut: " + "; ".join(f"`{sc}` = {SCOPES[sc]}" for sc in p.scopes) + ". Dividing weights "
               "that a BatchNorm follows by c leaves the forward pass unchanged but multiplies their effective learning "
               "rate by about c^2; table `init` shows each scope's epoch-0 norms of h, z and p (the paper's mechanism "
               "is the small initial embedding norm). A `projector` effect like the `all` effect points to the "
               "paper's mechanism; an `all` effect that the `projector` cut lacks points to the backbone's lr shock.")
    return out


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["tab_cut_init", *sys.argv[1:]]))
