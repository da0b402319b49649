"""Real-data artifacts (norm growth, weight decay, cut-init, GradScale, imbalance) on fabricated run
stores over several seeds: known metrics / embeddings in, the effects, intervals and verdicts they
imply out (values derived by hand)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from embedding_norms.runs import RunStore
from reproduce import fig_imbalance_norms, fig_norm_growth, tab_cut_init, tab_gradscale, tab_weight_decay
from reproduce.artifact import Artifact, Plan, Planned, plan_artifact
from reproduce.context import OutputDirs, build

T975_2 = 4.302652730  # Student-t quantile, 2 degrees of freedom (3 seeds), from a printed table


@pytest.fixture
def plan(data_dir):
    return Plan("smoke", str(data_dir), n_seeds=3)


def fabricate(store: RunStore, cfg, epochs, norms, knn=None, state="done", predictor=False):
    """A finished run with the given per-epoch mean norms of z (p = 2 z; h = 3 z) and kNN accuracies."""
    store.ensure(cfg)
    norms = np.asarray(norms, float)
    cols = {"epoch": epochs, "step": [10 * e for e in epochs], "loss": np.nan, "lr": 0.1}
    for v, f in (("z", 1.0), ("h", 3.0)) + ((("p", 2.0),) if predictor else ()):
        cols.update({f"{v}_norm_mean": f * norms, f"{v}_norm_q10": f * norms * 0.9, f"{v}_norm_q90": f * norms * 1.1})
    cols["knn_acc"] = knn if knn is not None else np.nan
    pd.DataFrame(cols).to_csv(store.path(cfg) / "metrics.csv", index=False)
    store.set_status(cfg, state)


def planned_with(module, plan, **params):
    """The artifact planned with explicit parameters (independent of the profile's section)."""
    p = module.Params(**params)
    return Planned(Artifact.from_module(module), p, module.runs(plan, p), plan.profile)


def run_build(module, plan, store, tmp_path, planned=None):
    planned = planned or plan_artifact(Artifact.from_module(module), plan)
    res = build(planned, store, OutputDirs(tmp_path / "out"))
    assert res.status == "built", (res.error, res.skipped)
    for f in res.figures + res.tables:
        assert (tmp_path / "out" / f).exists(), f
    return planned, res


def checks(result, claim):
    return [c for c in result.checks if c.claim == claim]


def test_norm_growth_effect_is_the_log_ratio_over_seeds(plan, tmp_path):
    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(Artifact.from_module(fig_norm_growth), plan)
    growth = {0: 2.0, 1: 4.0, 2: 8.0}  # final / initial per seed
    for key, spec in planned.specs.items():
        fabricate(store, spec.cfg, [0, 1, 2], [1.0, 1.5, growth[key.seed]], [10, np.nan, 30],
                  predictor=key.method != "simclr")
    _, res = run_build(fig_norm_growth, plan, store, tmp_path)
    cs = checks(res, "norm-growth")
    assert len(cs) == 5  # SimCLR z; SimSiam z, p; BYOL z, p
    logs = [math.log(2), math.log(4), math.log(8)]
    sd = float(np.std(logs, ddof=1))
    for c in cs:
        assert c.per_seed == pytest.approx(logs)
        assert c.effect == pytest.approx(math.log(4))
        assert c.ci_low == pytest.approx(math.log(4) - T975_2 * sd / math.sqrt(3), abs=1e-6)
        # low = 1.386 - 4.303 * 0.693 / 1.732 = -0.336: three seeds this spread are not enough
        assert c.verdict == "inconclusive"


@pytest.mark.parametrize("shrink", [True, False])
def test_weight_decay_effect_and_direction(plan, tmp_path, shrink):
    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(Artifact.from_module(tab_weight_decay), plan)
    for key, spec in planned.specs.items():
        final = 10.0 / (1 + 1e3 * key.wd) if shrink else 10.0 * (1 + 1e3 * key.wd)
        final *= 1 + 0.01 * key.seed  # a little seed spread, the same at every wd
        fabricate(store, spec.cfg, [0, 1, 2], [1.0, 2.0, final], [10, np.nan, 30], predictor=key.method == "simsiam")
    _, res = run_build(tab_weight_decay, plan, store, tmp_path)
    ratio = [c for c in checks(res, "weight-decay") if c.statistic.startswith("log")]
    ss = [c for c in ratio if c.test.startswith("SimSiam, z")][0]
    # SimSiam sweep 0 ... 5e-2: norm ratio 1 / (1 + 50) (or 51) in every seed: no spread
    assert ss.per_seed == pytest.approx([math.log(1 / 51) if shrink else math.log(51)] * 3)
    assert all(c.verdict == ("holds" if shrink else "contradicted") for c in ratio)
    rho = [c for c in checks(res, "weight-decay") if c.statistic.startswith("Spearman")]
    assert rho and all(c.effect == pytest.approx(-1.0 if shrink else 1.0) for c in rho)


def test_cut_init_effect_is_paired_by_seed(plan, tmp_path):
    store = RunStore(tmp_path / "runs")
    planned = planned_with(tab_cut_init, plan, constants=(1.0, 3.0, 9.0), regimes=("whole", "early"), early_epochs=2,
                           scopes=("all", "projector"))
    # c = 3 (all) beats c = 1 by 2 + seed points at every epoch after 0; c = 9 (all) loses 1 point;
    # the projector-only cut: c = 3 loses 2 points, c = 9 gains 1
    gains = {("all", 3.0): lambda s: 2.0 + s, ("all", 9.0): lambda s: -1.0,
             ("projector", 3.0): lambda s: -2.0, ("projector", 9.0): lambda s: 1.0}
    for key, spec in planned.specs.items():
        epochs = list(spec.cfg.train.eval_epochs)
        base = [10 + 5 * e + key.seed for e in epochs]
        gain = 0.0 if key.c == 1.0 else gains[(key.scope, key.c)](key.seed)
        fabricate(store, spec.cfg, epochs, [1.0] * len(epochs), [b + (gain if e > 0 else 0) for b, e in zip(base, epochs)])
    _, res = run_build(tab_cut_init, plan, store, tmp_path, planned)
    cs = [c for c in checks(res, "cut-init") if " cifar10," in c.test]
    c3 = [c for c in cs if "cut all: c=3" in c.test]
    assert len(c3) == 6  # 3 methods x 2 regimes
    assert all(c.per_seed == pytest.approx([2.0, 3.0, 4.0]) for c in c3)
    assert all(c.ci_low == pytest.approx(3 - T975_2 / math.sqrt(3), abs=1e-6) and c.verdict == "holds" for c in c3)
    c9 = [c for c in cs if "cut all: c=9" in c.test]
    assert c9 and all(c.per_seed == pytest.approx([-1.0] * 3) and c.verdict == "contradicted" for c in c9)
    p3 = [c for c in cs if "cut projector: c=3" in c.test]
    assert len(p3) == 6 and all(c.per_seed == pytest.approx([-2.0] * 3) and c.verdict == "contradicted" for c in p3)
    p9 = [c for c in cs if "cut projector: c=9" in c.test]
    assert len(p9) == 6 and all(c.verdict == "holds" for c in p9)
    regimes = {c.regime for c in cs}
    assert len(regimes) == 2  # whole schedule and early phase
    # one c = 1 run per (regime, method, seed), shared by the scopes; the scoped cut is its own run
    k = next(k for k in planned.specs if k.c == 1.0 and k.scope == "projector")
    assert planned.specs[k].cfg.hash() == planned.specs[k._replace(scope="all")].cfg.hash()
    k3 = k._replace(c=3.0)
    a, b = planned.specs[k3].cfg, planned.specs[k3._replace(scope="all")].cfg
    assert (a.norm.cut_scope, b.norm.cut_scope) == ("projector", "all") and a.hash() != b.hash()


def test_cut_init_check_is_gated_on_the_better_arm(plan, tmp_path):
    """Per seed, the better of the two arms must gain >= 5 points over epoch 0. c = 1 gains 2 + seed
    (< 5); with c = 3 one point above it (gains 3 + seed) some seed has no learned arm: every check
    is "not testable", its effect (+1) still shown; with c = 3 five points above (gains 7 + seed) the
    speed-up is decided (holds: +5 in every seed)."""
    planned = planned_with(tab_cut_init, plan, constants=(1.0, 3.0), methods=("simclr",), scopes=("all", "projector"))
    for bonus, verdict in ((1.0, "not testable"), (5.0, "holds")):
        store = RunStore(tmp_path / f"runs{bonus:g}")
        for key, spec in planned.specs.items():
            epochs = list(spec.cfg.train.eval_epochs)
            fabricate(store, spec.cfg, epochs, [1.0] * len(epochs),
                      [20.0] + [22.0 + (bonus if key.c == 3.0 else 0.0) + key.seed] * (len(epochs) - 1))
        _, res = run_build(tab_cut_init, plan, store, tmp_path / f"b{bonus:g}", planned)
        cs = checks(res, "cut-init")
        assert len(cs) == 2 and all(c.verdict == verdict and c.effect == pytest.approx(bonus) for c in cs), cs
        assert all("better arm" in c.detail for c in cs)
        if verdict == "not testable":
            assert all("gained less than 5" in c.detail for c in cs)
    early = tab_cut_init._overrides(tab_cut_init.Key("early", "cifar10", "simclr", "all", 3.0, 0), tab_cut_init.Params())
    cfg = plan.config("simclr", early)   # the released schedule, whatever the profile's base warm-up
    assert (cfg.optim.warmup_epochs, cfg.optim.schedule_epochs, cfg.optim.warmup_fraction) == (10.0, 512.0, None)


def test_cut_init_without_reference_constant_is_refused(data_dir, tmp_path, monkeypatch):
    from embedding_norms.config import ConfigError

    with pytest.raises(ValueError, match="1.0"):
        tab_cut_init.Params(constants=(3.0, 9.0))
    with pytest.raises(ValueError, match="regimes"):
        tab_cut_init.Params(regimes=("late",))
    with pytest.raises(ValueError, match="scopes"):
        tab_cut_init.Params(scopes=("head",))
    with pytest.raises(ValueError, match="scoped_methods"):
        tab_cut_init.Params(methods=("simclr",), scoped_methods=("byol",))


def test_gradscale_verdict_uses_the_shared_learning_rate(plan, tmp_path):
    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(Artifact.from_module(tab_gradscale), plan)
    # kNN at epoch 0: 15 % everywhere. At the end: p=0 base lr 30 %, p=1 base lr 33 + seed %
    # (SimCLR gains +3..+5); example lr: p=0 20 %, p=1 25 + seed % (+5..+7, descriptive).
    # SimSiam: p=1 at the base lr diverged in every seed (chance 10 %: 20 points below, fails).
    final = {("shared", 0.0): lambda s: 30.0, ("shared", 1.0): lambda s: 33.0 + s,
             ("example", 0.0): lambda s: 20.0, ("example", 1.0): lambda s: 25.0 + s}
    for key, spec in planned.specs.items():
        epochs = list(spec.cfg.train.eval_epochs)
        diverged = key.method == "simsiam" and key.setting == "shared" and key.power == 1.0
        fabricate(store, spec.cfg, epochs, [1.0] * len(epochs),
                  [15.0] + [final[(key.setting, key.power)](key.seed)] * (len(epochs) - 1),
                  state="diverged" if diverged else "done", predictor=key.method != "simclr")
    # the p = 0 arm at the base lr is the base run itself; p = 1 there differs in the power only
    k0 = next(k for k in planned.specs if k.setting == "shared" and k.power == 0.0 and k.data == "balanced")
    base = planned.specs[k0].cfg
    from reproduce.experiments import base_run

    assert base.hash() == base_run(plan, k0.method, k0.seed).cfg.hash()
    p1 = planned.specs[k0._replace(power=1.0)].cfg
    assert p1.replace({"norm": {"gradscale_power": 0.0},
                       "train": {"save_embeddings_epochs": list(base.train.save_embeddings_epochs),
                                 "full_test_norms_epochs": list(base.train.full_test_norms_epochs)}}).hash() == base.hash()
    res = build(plan_artifact(Artifact.from_module(tab_gradscale), plan), store, OutputDirs(tmp_path / "out"))
    assert res.status == "partial" and all(s["reason"] == "diverged" for s in res.skipped)  # listed, not dropped
    by_test = {c.test: c for c in res.checks}
    shared = by_test["SimCLR cifar10 balanced: p=1 - p=0 (base lr)"]
    assert shared.per_seed == pytest.approx([3.0, 4.0, 5.0]) and shared.verdict == "holds" and not shared.descriptive
    ex = by_test["SimCLR cifar10 balanced: p=1 - p=0 (example lr)"]
    assert ex.per_seed == pytest.approx([5.0, 6.0, 7.0]) and ex.descriptive
    cross = by_test["SimCLR cifar10 balanced: p=1 (example lr) - p=0 (base lr)"]
    assert cross.per_seed == pytest.approx([-5.0, -4.0, -3.0]) and cross.descriptive
    limit = by_test["SimSiam cifar10 balanced: p=1 - p=0 (base lr)"]
    assert limit.claim == "gradscale-limit" and limit.per_seed == pytest.approx([-20.0] * 3)
    # no spread: the interval has half-width 0 (detectable 0) and 2 seeds decide -20 against -5
    assert limit.detectable == pytest.approx(0.0) and limit.seeds_needed == 2
    assert limit.verdict == "holds" and limit.direction == "< -5"
    # the arms table shows absolute kNN beside the differences
    arms = pd.read_csv(tmp_path / "out" / "tables" / "tab_gradscale_arms.csv")
    row = arms[(arms.method == "simclr") & (arms.data == "balanced") & (arms.arm == "p=0 (base lr)")].iloc[0]
    assert (row.knn_epoch0, row.knn_last, row.knn_gain) == pytest.approx((15.0, 30.0, 15.0))
    effect = pd.read_csv(tmp_path / "out" / "tables" / "tab_gradscale_effect.csv")
    assert {"treat_mean", "control_mean"} <= set(effect.columns)


def test_gradscale_is_not_testable_where_p0_did_not_learn(plan, tmp_path):
    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(Artifact.from_module(tab_gradscale), plan)
    for key, spec in planned.specs.items():   # p = 0 gains 2 points; p = 1 gains 12
        epochs = list(spec.cfg.train.eval_epochs)
        fabricate(store, spec.cfg, epochs, [1.0] * len(epochs),
                  [15.0] + [(27.0 if key.power else 17.0) + key.seed] * (len(epochs) - 1), predictor=key.method != "simclr")
    _, res = run_build(tab_gradscale, plan, store, tmp_path)
    decided = [c for c in res.checks if "(base lr)" in c.test and "example" not in c.test]
    assert decided and all(c.verdict == "not testable" for c in decided)
    assert all("gained less than 5" in c.detail for c in decided)


def _limit_table(treat, control, states):
    return pd.DataFrame({"seed": range(len(treat)), "treat": treat, "control": control, "treat_state": states,
                         "chance": 10.0})


@pytest.mark.parametrize("case,treat,states,effects,expected", [
    # diverged in every seed: counted at chance 10 % against 30, 31, 32 -> -20, -21, -22
    ("diverged", [float("nan")] * 3, ["diverged"] * 3, [-20.0, -21.0, -22.0], "holds"),
    # collapsed with a measured 29 %: still a failure, counted at chance
    ("collapsed", [29.0, 30.0, 31.0], ["collapsed"] * 3, [-20.0, -21.0, -22.0], "holds"),
    # far below: 12 points below in every seed but one (11, 12, 13): interval (-14.5, -9.5) below -5
    ("far below", [19.0, 19.0, 19.0], ["done"] * 3, [-11.0, -12.0, -13.0], "holds"),
    # as good: -1, 0, +1 -> interval (-2.48, 2.48) above -5: p = 1 learns as well
    ("as good", [29.0, 31.0, 33.0], ["done"] * 3, [-1.0, 0.0, 1.0], "contradicted"),
    # borderline: -4, -5, -6 -> interval (-7.48, -2.52) contains -5
    ("borderline", [26.0, 26.0, 26.0], ["done"] * 3, [-4.0, -5.0, -6.0], "inconclusive"),
])
def test_gradscale_limitation_rule_on_hand_tables(case, treat, states, effects, expected):
    control = [30.0, 31.0, 32.0]
    eff = tab_gradscale.limitation_effects(_limit_table(treat, control, states))
    assert eff.tolist() == pytest.approx(effects), case
    iv, v = tab_gradscale.limitation_verdict(eff.tolist(), 5.0)
    assert v == expected, (case, iv)
    assert iv.mean == pytest.approx(sum(effects) / 3)


def test_gradscale_limitation_rule_edge_cases():
    assert tab_gradscale.limitation_verdict([], 5.0)[1] == "not run"
    assert tab_gradscale.limitation_verdict([-20.0], 5.0)[1] == "descriptive (1 seed)"   # one seed: no interval
    with pytest.raises(ValueError, match="margin"):
        tab_gradscale.limitation_verdict([-20.0, -21.0], -1.0)
    with pytest.raises(ValueError, match="settings"):
        tab_gradscale.Params(settings=("example",))


@pytest.mark.parametrize("sign", [1, -1])
def test_imbalance_norms_within_class_growth_slope_over_rotated_sizes(plan, tmp_path, sign):
    """Smoke rotates the class sizes by 3 per seed: class c keeps the size of rank (c - 3 s) mod 10
    (largest class 0, 3, 6 in seeds 0, 1, 2). Epoch-0 class norms = the class's own level L_c (class
    identity, here falling steeply with the class id), end norms = 2 L_c size_c**gamma with
    gamma = 0.1 sign. Growth log(end / start) = log 2 + gamma ln(size) = log 2 + gamma ln 2 log2(size):
    per seed slope gamma ln 2 whatever L_c, so the check holds (sign +1) or is contradicted (sign -1)."""
    store = RunStore(tmp_path / "runs")
    by_rank = np.array([50, 33, 22, 14, 9, 6, 4, 3, 2, 1])
    level = 10.0 ** -np.arange(10)
    gamma = 0.1 * sign
    planned = plan_artifact(Artifact.from_module(fig_imbalance_norms), plan)
    assert planned.params.shift_per_seed == 3
    for key, spec in planned.specs.items():
        assert spec.cfg.data.imbalance_shift_per_seed == 3 and list(spec.cfg.train.save_embeddings_epochs) == [0, 1]
        fabricate(store, spec.cfg, [0, 1], [1, 2], knn=[10.0, 20.0], predictor=key.method != "simclr")
        sizes = by_rank[(np.arange(10) - 3 * key.seed) % 10]
        labels = np.repeat(np.arange(10), sizes)
        path = store.path(spec.cfg) / "embeddings"
        path.mkdir(exist_ok=True)
        for epoch, norms in ((0, level), (1, 2 * level * sizes.astype(float) ** gamma)):
            arrays = {"train/z_norm": norms[labels].astype(np.float64), "train/labels": labels,
                      "train/indices": np.arange(len(labels))}
            if key.method != "simclr":
                arrays["train/p_norm"] = 3 * arrays["train/z_norm"]
            np.savez(path / f"epoch_{epoch:04d}.npz", **arrays)
    _, res = run_build(fig_imbalance_norms, plan, store, tmp_path)
    growth = [c for c in checks(res, "imbalance-norms") if "growth" in c.test]
    assert len(growth) == 3  # SimCLR z, SimSiam z and p
    assert all(c.per_seed == pytest.approx([gamma * math.log(2)] * 3, rel=1e-5) for c in growth)
    assert all(c.verdict == ("holds" if sign > 0 else "contradicted") for c in growth)
    assert all("largest class per seed [0, 3, 6]" in c.detail for c in growth)
    control = [c for c in checks(res, "imbalance-norms") if "epoch 0 (control)" in c.test]
    assert len(control) == 3 and all(c.descriptive for c in control)


def test_imbalance_norms_are_not_testable_when_a_run_did_not_learn(plan, tmp_path):
    """The gate: one SimSiam run gains 2 kNN points over epoch 0 (< 5): every SimSiam check says "not
    testable"; SimCLR's runs gained 10 points and are decided."""
    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(Artifact.from_module(fig_imbalance_norms), plan)
    for key, spec in planned.specs.items():
        low = key.method == "simsiam" and key.seed == 1
        fabricate(store, spec.cfg, [0, 1], [1, 2], knn=[10.0, 12.0 if low else 20.0], predictor=key.method != "simclr")
        labels = np.repeat(np.arange(10), np.arange(1, 11))
        path = store.path(spec.cfg) / "embeddings"
        path.mkdir(exist_ok=True)
        for epoch in (0, 1):
            z = (1.0 + epoch * (1 + labels + key.seed)).astype(np.float64)
            np.savez(path / f"epoch_{epoch:04d}.npz", **{"train/z_norm": z, "train/p_norm": z, "train/labels": labels})
    _, res = run_build(fig_imbalance_norms, plan, store, tmp_path)
    decided = [c for c in checks(res, "imbalance-norms") if not c.descriptive]
    assert {c.verdict for c in decided if c.test.startswith("SimSiam")} == {"not testable"}
    assert "not testable" not in {c.verdict for c in decided if c.test.startswith("SimCLR")}
    assert all("+2.0" in c.detail for c in decided if c.test.startswith("SimSiam"))


def test_imbalanced_runs_use_the_released_jitter_strength(plan):
    """Released ``get_transforms`` sets s = 0.5 only for the dataset names cifar10/cifar100; the
    imbalanced sets (``cifar10_unbalanced``) get s = 1 (issue 12, item 1). Balanced runs keep 0.5."""
    planned = plan_artifact(Artifact.from_module(tab_gradscale), plan)
    for key, spec in planned.specs.items():
        assert spec.cfg.data.jitter_strength == (1.0 if key.data == "imbalanced" else 0.5), key
        assert (spec.cfg.data.imbalance == "exponential") == (key.data == "imbalanced")
        # every imbalanced arm rotates its class sizes as fig_imbalance_norms says (smoke: 3 per seed)
        assert spec.cfg.data.imbalance_shift_per_seed == (3 if key.data == "imbalanced" else 0), key
    imb = plan_artifact(Artifact.from_module(fig_imbalance_norms), plan).specs
    shared = {(k.method, k.seed): s.cfg.hash() for k, s in planned.specs.items()
              if k.data == "imbalanced" and k.setting == "shared" and k.power == 0.0}
    assert shared == {(k.method, k.seed): s.cfg.hash() for k, s in imb.items() if k.method in {m for m, _ in shared}}


def test_a_diverged_arm_keeps_its_measured_knn_before_the_divergence():
    """A GradScale/cut-init arm that diverged at epoch 2 was a real network at epochs 0 and 1: its
    measured kNN there (17, 22) stays; from epoch 2 on it counts at chance (10 % on CIFAR-10).
    A reference arm (``failure_at_chance=False``) that diverged gives nothing."""
    from types import SimpleNamespace

    from reproduce.experiments import knn_or_chance

    metrics = pd.DataFrame({"epoch": [0, 1, 2], "knn_acc": [17.0, 22.0, 12.0]})
    run = SimpleNamespace(measured=False, metrics=lambda: metrics,
                          status=SimpleNamespace(state="diverged", epoch=2, health={"epoch": 2}),
                          cfg=SimpleNamespace(data=SimpleNamespace(dataset="cifar10"),
                                              train=SimpleNamespace(eval_epochs=[0, 1, 2, 4])),
                          label="p=1")
    assert knn_or_chance(run, failure_at_chance=True).to_dict() == {0: 17.0, 1: 22.0, 2: 10.0, 4: 10.0}
    assert knn_or_chance(run, failure_at_chance=False).empty
    # diverged before its first evaluation after epoch 0 (health epoch 1): only epoch 0 is measured
    run.status = SimpleNamespace(state="diverged", epoch=1, health={"epoch": 1})
    assert knn_or_chance(run, failure_at_chance=True).to_dict() == {0: 17.0, 1: 10.0, 2: 10.0, 4: 10.0}
