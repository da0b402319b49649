"""GradScale table: kNN accuracy for p > 0 against p = 0 at a shared learning rate, over seeds.

SimCLR and SimSiam (and BYOL where listed) on balanced and class-imbalanced CIFAR-10 (``paper``
adds CIFAR-100). Each comparison sets p = 0 and p > 0 at the *same* optimiser settings; two
settings exist (profile parameter ``settings``):

- ``shared`` (the verdict): the method's base-run learning rate and warm-up, at which p = 0 learns
  (the base run *is* the p = 0 arm: no extra run); p > 0 adds one run per method, data and seed;
- ``example`` (descriptive): the released GradScale example's lr 0.1 and warm-up 100/512, for
  p = 0 and p > 0 (a matched pair); plus the comparison the released example makes, GradScale at
  the example's settings against the base run (two things change: descriptive too).

Claims: ``gradscale`` (SimCLR: p = 1 speeds up training, > 0; more on imbalanced data) and
``gradscale-limit`` (SimSiam/BYOL: p = 1 fails to converge, :func:`limitation_effects` and
:func:`limitation_verdict`). Every check is gated on its p = 0 arm having learned.

Imbalanced data: the released exponential class profile (class i keeps n * 1.5**-i images of a
balanced pool; ``paper``: the full training set, 14 717 images; ``quick``: a 30 000-image pool,
8 841 images), colour-jitter strength 1 (as released for the ``*_unbalanced`` datasets), and in
reduced profiles as many optimizer steps as a balanced base run (``experiments.imbalanced_overrides``).
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from embedding_norms.facts import SPECS
from embedding_norms.plotting import (METHOD_LABELS, NEUTRAL, epoch_axis, legend_or_note, method_style,
                                      plot_effect_by_epoch)
from embedding_norms.report import ClaimCheck
from embedding_norms.stats import (Interval, detectable_effect, learning_gate, seed_interval, seeds_to_decide,
                                   verdict)
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import (NO_EMBEDDINGS, arm_means, base_run, effect_table, imbalanced_overrides,
                                   imbalanced_run, knn_curve, knn_gain, knn_or_chance, merge, missing_seeds,
                                   paired_effects, state_of)

PAPER_REF = "Section 4.2 (GradScale), table of kNN accuracy on balanced / imbalanced data"
TITLE = "GradScale: kNN accuracy, p > 0 vs p = 0 at a shared learning rate (and the released example's), over seeds"
CLAIMS = ("gradscale", "gradscale-limit")
VECTOR = "backbone representation h (kNN accuracy); GradScale scales the gradient by ||z||^p (SimCLR) / ||p||^p"

SETTINGS = {"shared": "base lr", "example": "example lr"}
#: States of a GradScale run that did not converge (counted at chance accuracy).
FAILED = ("diverged", "collapsed")
#: Default margin of the limitation rule: p = 1 "clearly below" p = 0 means more than this many kNN points below.
LIMIT_MARGIN = 5.0


@dataclass(frozen=True)
class Params:
    """``artifacts.tab_gradscale`` of a profile."""

    powers: tuple[float, ...] = (1.0,)
    methods: tuple[str, ...] = ("simclr", "simsiam")
    datasets: tuple[str, ...] = ("cifar10",)
    data: tuple[str, ...] = ("balanced", "imbalanced")
    #: methods whose imbalanced comparison is run (the others: balanced only); () = all of ``methods``
    imbalanced_methods: tuple[str, ...] = ()
    #: ``shared`` (the method's base lr and warm-up: the verdict) and optionally ``example`` (descriptive)
    settings: tuple[str, ...] = ("shared", "example")
    #: methods that get the ``example`` arms; () = all of ``methods``
    example_methods: tuple[str, ...] = ()
    lr: float = 0.1                      # the released example's lr and warm-up (``example`` setting)
    warmup_fraction: float = 100 / 512
    simclr_batch_size: int = 0
    limit_margin: float = LIMIT_MARGIN

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
        for name in ("imbalanced_methods", "example_methods"):
            if any(m not in self.methods for m in getattr(self, name)):
                raise ValueError(f"{name} {list(getattr(self, name))} must be among methods {list(self.methods)}")
        if "shared" not in self.settings or any(s not in SETTINGS for s in self.settings):
            raise ValueError(f"settings: must include 'shared' (the verdict) and be among {list(SETTINGS)}, "
                             f"got {list(self.settings)}")
        if self.lr <= 0 or not 0 <= self.warmup_fraction < 1 or self.simclr_batch_size < 0 or self.limit_margin < 0:
            raise ValueError("need lr > 0, 0 <= warmup_fraction < 1, simclr_batch_size >= 0, limit_margin >= 0")

    def settings_of(self, method: str) -> tuple[str, ...]:
        """The settings run for ``method``."""
        return tuple(s for s in self.settings if s == "shared" or method in (self.example_methods or self.methods))


class Key(NamedTuple):
    dataset: str
    method: str
    data: str
    setting: str
    power: float
    seed: int


def arm(setting: str, power: float) -> str:
    """Display name of an arm, e.g. ``p=1 (base lr)``."""
    return f"p={power:g} ({SETTINGS[setting]})"


def run_spec(plan: Plan, key: Key, p: Params) -> RunSpec:
    """The run of one key; the p = 0 arm of the ``shared`` setting is the method's base run (balanced)
    or :func:`~reproduce.experiments.imbalanced_run` (imbalanced), shared with the other artifacts."""
    ex: dict = {}
    if key.method == "simclr" and p.simclr_batch_size:
        ex["optim"] = {"batch_size": p.simclr_batch_size}
    if key.data == "imbalanced":
        ex = merge(ex, imbalanced_overrides(plan, key.method))
    if key.setting == "example":
        ex = merge(ex, {"optim": {"lr": p.lr, "warmup_fraction": p.warmup_fraction}})
    if key.power:
        ex = merge(ex, {"norm": {"gradscale_power": float(key.power)}})
    if key.setting == "shared" and not key.power and key.dataset == "cifar10" and "optim" not in ex:
        return imbalanced_run(plan, key.method, key.seed) if key.data == "imbalanced" else base_run(plan, key.method, key.seed)
    tag = f"{key.data}/p={key.power:g}" + ("/example-lr" if key.setting == "example" else "")
    return base_run(plan, key.method, key.seed, key.dataset, merge(ex, NO_EMBEDDINGS), tag=tag)


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """Every dataset x method x data x setting x power (0 and ``powers``) x seed."""
    imb = set(p.imbalanced_methods or p.methods)
    keys = [Key(d, m, dt, st, pw, s) for d in p.datasets for m in p.methods for dt in p.data
            for st in p.settings_of(m) for pw in (0.0,) + tuple(p.powers) for s in plan.seeds]
    return {k: run_spec(plan, k, p) for k in keys if k.data == "balanced" or k.method in imb}


def comparisons(p: Params, method: str) -> list[tuple[str, tuple[str, float], tuple[str, float], bool]]:
    """(name, treat arm, control arm, decides) of every comparison of ``method``: p vs p = 0 per
    setting (``shared`` decides, ``example`` is descriptive), and the released example's
    GradScale vs the base run (descriptive: lr and warm-up change too)."""
    out = []
    for pw in p.powers:
        for st in p.settings_of(method):
            out.append((f"p={pw:g} - p=0 ({SETTINGS[st]})", (st, pw), (st, 0.0), st == "shared"))
        if "example" in p.settings_of(method):
            out.append((f"p={pw:g} (example lr) - p=0 (base lr)", ("example", pw), ("shared", 0.0), False))
    return out


def frames(runs: dict[Key, object], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: kNN per run and epoch (state noted); ``arms``: per arm the mean kNN at epoch 0 and at
    the last epoch, the gain and the failed seeds; ``effect``: per comparison and epoch the effect
    with its interval over seeds and both arms' mean kNN; ``_runs``: one row per run (the checks)."""
    rows, per_run = [], []
    for key, run in runs.items():
        name = arm(key.setting, key.power)
        # a GradScale run that diverged did not converge (chance); a p = 0 run that diverged gives no pair
        for epoch, acc in knn_or_chance(run, failure_at_chance=key.power > 0).items():
            rows.append({**key._asdict(), "arm": name, "epoch": int(epoch), "knn_acc": float(acc), "state": state_of(run)})
        curve = knn_curve(run)   # a diverged run's epochs before it diverged are measured (epoch 0 always)
        last = int(run.cfg.train.eval_epochs[-1])
        per_run.append({**key._asdict(), "arm": name, "label": run.label, "state": run.status.state,
                        "knn_epoch0": float(curve.get(0, float("nan"))),
                        "knn_last": float(curve.get(last, float("nan"))) if run.measured else float("nan"),
                        "knn_gain": knn_gain(run) if run.measured else float("nan"),
                        "chance": 100.0 / SPECS[run.cfg.data.dataset].num_classes})
    long, per_run = pd.DataFrame(rows), pd.DataFrame(per_run)
    if not len(long):
        return {"": long, "arms": pd.DataFrame(), "effect": pd.DataFrame(), "_effects": pd.DataFrame(), "_runs": per_run}
    by = ("dataset", "method", "data", "epoch")
    effs = []
    for m in p.methods:
        for name, treat, control, _ in comparisons(p, m):
            e = paired_effects(long[long.method == m], "arm", arm(*treat), arm(*control), "knn_acc", by)
            effs.append(e.assign(comparison=name))
    eff = pd.concat(effs, ignore_index=True)
    keys = by[:-1] + ("comparison", "epoch")
    arms = (per_run.assign(failed=per_run.state.isin(FAILED))
            .groupby(["dataset", "method", "data", "setting", "power", "arm"], sort=False)
            .agg(knn_epoch0=("knn_epoch0", "mean"), knn_last=("knn_last", "mean"), knn_gain=("knn_gain", "mean"),
                 failed_seeds=("failed", "sum"), seeds=("seed", "nunique")).reset_index())
    return {"": long, "arms": arms, "effect": arm_means(effect_table(eff, keys), eff, keys), "_effects": eff,
            "_runs": per_run}


def shown(name: str) -> str:
    """An arm or comparison name as the figure shows it: the GradScale power spelled ``power`` (``p``
    names the predictor output), e.g. ``power 1 - power 0 (base lr)``."""
    return name.replace("p=", "power ")


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Per method and data: the absolute kNN curve of every arm (mean over seeds; dotted grey: the
    arms' mean kNN at epoch 0, the untrained level) above the effect of GradScale against each
    reference, with its interval. Colour: the method; line style and marker: the arm."""
    long, table, arms = frames[""], frames["effect"], frames["arms"]
    if not len(table):
        return {}
    panels = table[["dataset", "method", "data"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(2, len(panels), figsize=(4.0 * len(panels), 7.0), squeeze=False)
    for j, (d, m, dt) in enumerate(panels):
        ax, ax_e = axes[0, j], axes[1, j]
        sub = long[(long.dataset == d) & (long.method == m) & (long.data == dt)]
        order = [arm(st, pw) for st in p.settings_of(m) for pw in (0.0, *p.powers)]
        styles = {name: method_style(m, i) for i, name in enumerate(order)}
        for name in order:
            mean = sub[sub.arm == name].groupby("epoch").knn_acc.mean()
            if len(mean):
                ax.plot(mean.index, mean.values, ms=3, label=shown(name), **styles[name])
        a = arms[(arms.dataset == d) & (arms.method == m) & (arms.data == dt)] if len(arms) else arms
        if len(a) and a.knn_epoch0.notna().any():
            ax.axhline(a.knn_epoch0.mean(), color=NEUTRAL, ls=":", lw=1.2, label="untrained (epoch 0)")
        ax.set_title(f"{METHOD_LABELS[m]}, {d}, {dt}", fontsize="small")
        ax.set_ylabel("kNN accuracy (%), mean over seeds")
        epoch_axis(ax, "")
        legend_or_note(ax, fontsize="x-small")
        # a comparison is drawn in the style of its GradScale arm; a second comparison of that arm in a new style
        eff_styles, used = {}, set()
        for name, treat, _, _ in comparisons(p, m):
            new = arm(*treat) not in used
            eff_styles[shown(name)] = styles[arm(*treat)] if new else method_style(m, len(order) + len(eff_styles) - len(used))
            used.add(arm(*treat))
        t = table[(table.dataset == d) & (table.method == m) & (table.data == dt)]
        t = t.assign(comparison=t.comparison.map(shown), _order=t.comparison.map(shown).map(list(eff_styles).index))
        plot_effect_by_epoch(ax_e, t.sort_values(["_order", "epoch"]), "comparison", unit="kNN points", styles=eff_styles)
        ax_e.legend(fontsize="x-small")
    fig.suptitle("GradScale (gradient scaled by the norm to a power): kNN accuracy of each arm (top; dotted: untrained "
                 "level)\nand the difference of GradScale against power 0 (bottom; band: 95 % CI over seeds)")
    fig.tight_layout()
    return {"": fig}


def limitation_effects(pairs: pd.DataFrame) -> pd.Series:
    """Per-seed effect of the limitation rule (claim ``gradscale-limit``): ``kNN(p) - kNN(p=0)`` at the
    last epoch, with a GradScale run that diverged or collapsed counted at chance accuracy (it did
    not converge, whatever kNN it measured before it stopped).

    Args:
        pairs: one row per seed with ``seed``, ``treat`` (kNN of p > 0, %), ``treat_state`` (run state),
            ``control`` (kNN of p = 0, %) and ``chance`` (%).

    Returns:
        Effects in points, indexed by seed (seeds without a control value left out).

    Raises:
        KeyError: a column is missing.
    """
    treat = pairs.treat.where(~pairs.treat_state.isin(FAILED), pairs.chance)
    return (treat - pairs.control).set_axis(pairs.seed).dropna()


def limitation_verdict(effects: Sequence[float], margin: float = LIMIT_MARGIN) -> tuple[Interval, str]:
    """Does GradScale fail to converge where p = 0 learns? (Section 4.2, the limitation.)

    The rule: p fails when it is *clearly below* p = 0, i.e. the mean effect is more than ``margin``
    points below 0. With the t-interval over seeds of the per-seed effects
    (:func:`limitation_effects`): ``holds`` (p fails to converge) when the whole interval lies below
    ``-margin``; ``contradicted`` (p learns as well, within ``margin``) when the whole interval lies
    above ``-margin``; else ``inconclusive`` (also with one seed: no interval); ``not run`` without
    effects. Diverged or collapsed runs enter at chance accuracy, far below a p = 0 arm that learned.

    Returns:
        (the interval of the effects, not shifted, with the p-value of "effect = -margin" for Holm;
        the verdict).

    Raises:
        ValueError: ``margin < 0``.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0 points, got {margin}")
    iv = seed_interval(list(effects))
    shifted = seed_interval([e + margin for e in effects if e is not None])   # its p-value tests "-margin"
    return dataclasses.replace(iv, p_value=shifted.p_value), verdict(shifted, "< 0")


def _pairs(per_run: pd.DataFrame, d: str, m: str, dt: str, treat: tuple, control: tuple) -> pd.DataFrame:
    g = per_run[(per_run.dataset == d) & (per_run.method == m) & (per_run.data == dt)]
    t = g[(g.setting == treat[0]) & (g.power == treat[1])].set_index("seed")
    c = g[(g.setting == control[0]) & (g.power == control[1])].set_index("seed")
    # a diverged GradScale run counts at chance (its kNN may be missing): the speed-up check too
    tv = t.knn_last.where(~t.state.isin(FAILED), t.chance)
    j = pd.concat([tv.rename("treat"), t.state.rename("treat_state"), t.chance, c.knn_last.rename("control")],
                  axis=1, join="inner")
    return j.reset_index()


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """At the last epoch, per seed, every comparison of :func:`comparisons`: SimCLR: claim
    ``gradscale`` (> 0); SimSiam/BYOL: claim ``gradscale-limit`` (:func:`limitation_verdict`, margin
    ``limit_margin``). A GradScale run that diverged or collapsed counts at chance accuracy. Only the
    ``shared`` comparison decides (the others are descriptive). Each check is gated on its p = 0 runs
    having learned. SimCLR also: the gain on imbalanced minus the gain on balanced data (> 0)."""
    per_run, out = frames["_runs"], []
    if not len(per_run):
        return [ClaimCheck.from_effects("gradscale", "GradScale runs", "kNN(p) - kNN(p=0) [points]", [])]
    gains = {}
    for (d, m, dt), g in per_run.groupby(["dataset", "method", "data"], sort=False):
        for name, treat, control, decides in comparisons(p, m):
            claim = "gradscale" if m == "simclr" else "gradscale-limit"
            pairs = _pairs(per_run, d, m, dt, treat, control)
            ctrl = g[(g.setting == control[0]) & (g.power == control[1])]
            why = learning_gate(dict(zip(ctrl.label, ctrl.knn_gain)))
            tr = g[(g.setting == treat[0]) & (g.power == treat[1])]
            failed = int(tr.state.isin(FAILED).sum())
            detail = (f"kNN at the last epoch: {arm(*treat)} {pairs.treat.mean():.1f} %, {arm(*control)} "
                      f"{pairs.control.mean():.1f} % (epoch 0: {ctrl.knn_epoch0.mean():.1f} %); {arm(*treat)} diverged "
                      f"or collapsed in {failed} of {len(tr)} seeds (counted at chance); gated on {arm(*control)} "
                      f"gaining >= 5 kNN points over epoch 0 (mean gain {ctrl.knn_gain.mean():+.1f})"
                      + missing_seeds(g.seed.unique(), pairs.seed))
            regime = ("shared lr and warm-up (the method's base run)" if decides
                      else "released example's settings: descriptive")
            test = f"{METHOD_LABELS[m]} {d} {dt}: {name}"
            if claim == "gradscale":
                eff = (pairs.treat - pairs.control).tolist()
                if decides:
                    gains[(d, dt, name)] = ((pairs.treat - pairs.control).set_axis(pairs.seed), why)
                out.append(ClaimCheck.from_effects(claim, test, "kNN(p) - kNN(p=0) at the last epoch [points]", eff,
                                                   "> 0", regime, detail, descriptive=not decides, untestable=why))
                continue
            eff = limitation_effects(pairs)
            iv, v = limitation_verdict(eff.tolist(), p.limit_margin)
            rule = (f"p fails to converge: interval of kNN(p) - kNN(p=0) below -{p.limit_margin:g} points (diverged "
                    f"or collapsed runs at chance); p learns as well: interval above -{p.limit_margin:g}")
            if why and v != "not run":
                v = "not testable"
            out.append(ClaimCheck(claim, test, "kNN(p) - kNN(p=0) at the last epoch [points]", iv.mean,
                                  f"< -{p.limit_margin:g}", v, iv.low, iv.high, iv.n, eff.tolist(), regime,
                                  "; ".join(x for x in (why, rule, detail) if x), iv.method, not decides,
                                  p_value=iv.p_value, detectable=detectable_effect(iv),
                                  # seeds that would decide the mean against -margin, the rule's boundary
                                  seeds_needed=seeds_to_decide(seed_interval((eff + p.limit_margin).tolist()))))
    for (d, dt, name), (g_imb, why_imb) in gains.items():
        if dt != "imbalanced" or (d, "balanced", name) not in gains:
            continue
        g_bal, why_bal = gains[(d, "balanced", name)]
        diff = (g_imb - g_bal).dropna()
        out.append(ClaimCheck.from_effects(
            "gradscale", f"SimCLR {d}: gain of {name} larger on imbalanced than on balanced data",
            "gain(imbalanced) - gain(balanced) [points]", diff.tolist(), "> 0",
            "shared lr and warm-up (the method's base run)", "gated on both p = 0 arms",
            untestable=(why_imb or why_bal) and "; ".join(dict.fromkeys(x for x in (why_imb, why_bal) if x))))
    return out


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """The arms and their settings."""
    return [f"Settings: `base lr` = the method's base run settings (p = 0 there *is* the base run), at which p = 0 "
            f"learns: the comparison that decides; `example lr` = lr {p.lr:g} and warm-up {p.warmup_fraction:.3g} of "
            "the cosine horizon (the released GradScale example), shown for p = 0 and p > 0 and against the base run, "
            "descriptive. A GradScale run that diverged or collapsed counts at chance accuracy. Limitation rule "
            f"(SimSiam/BYOL): p = 1 fails to converge where the whole interval of kNN(p) - kNN(p=0) lies below "
            f"-{p.limit_margin:g} points; 'contradicted' only when it lies above (p = 1 learns as well). Every check is "
            "gated on its p = 0 runs having learned (>= 5 kNN points over epoch 0); table `arms` shows each arm's "
            "absolute kNN at epoch 0 and at the end."]


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["tab_gradscale", *sys.argv[1:]]))
