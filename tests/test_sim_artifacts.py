"""The four theory/simulation artifacts build at the smoke profile through the artifact interface
(reproduce.artifact.Artifact.from_module + reproduce.context.build): figure (PNG + PDF), tables,
claim checks with the right claim ids and kinds (exact for closed forms, intervals over seeds for
simulations). Their numbers at smoke scale mean nothing about the paper."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy import stats

from embedding_norms import sim_classes
from embedding_norms.config import artifact_params
from embedding_norms.runs import RunStore
from embedding_norms.stats import VERDICTS
from reproduce.artifact import Artifact, Planned
from reproduce.context import OutputDirs, build

EXPECTED = {  # claims, tables, seeded checks?
    "fig1_gradient_geometry": ({"prop3.1", "cor3.3"}, ["fig1_gradient_geometry.csv"], False),
    "fig_sim_convergence": ({"conv-norm", "conv-angle"},
                            ["fig_sim_convergence_norm.csv", "fig_sim_convergence_angle.csv",
                             "fig_sim_convergence_fit.csv"], True),
    "fig_sim_imbalance": ({"sim-imbalance"}, ["fig_sim_imbalance.csv", "fig_sim_imbalance_per_seed.csv",
                                              "fig_sim_imbalance_slopes.csv", "fig_sim_imbalance_history.csv"], True),
    "fig_sim_density": ({"sim-density"}, ["fig_sim_density.csv", "fig_sim_density_points.csv"], True),
}


def _planned(name: str, profile: str = "smoke") -> Planned:
    art = Artifact.from_module(importlib.import_module(f"reproduce.{name}"))
    return Planned(art, artifact_params(profile, name, art.params_cls), art.runs(None, None), profile)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_artifact_builds_at_smoke(name, tmp_path):
    planned = _planned(name)
    assert planned.artifact.name == name and planned.specs == {}      # no training runs
    out = OutputDirs(tmp_path / "out")
    res = build(planned, RunStore(tmp_path / "runs"), out)
    assert res.status == "built", res.error
    for ext in ("png", "pdf"):
        f = out.figures / f"{name}.{ext}"
        assert f.is_file() and f.stat().st_size > 1000
    claims, tables, seeded = EXPECTED[name]
    assert sorted(p.name for p in out.tables.glob("*.csv")) == sorted(tables)
    assert {c.claim for c in res.checks} == claims == set(planned.artifact.claims)
    for c in res.checks:
        assert c.verdict in VERDICTS and c.verdict != "not run" and c.statistic and c.regime
        if seeded:   # one effect per seed, t-interval over the smoke profile's 2 seeds (Fisher z for correlations)
            assert c.n_seeds == 2 and len(c.per_seed) == 2 and "t-interval over 2 seeds" in c.interval
            if "ρ(" in c.statistic and "ρ(trained) − ρ(untrained)" not in c.statistic:
                assert c.interval.startswith("Fisher z") or "equal correlations" in c.interval
            assert c.ci_low is not None and c.ci_low <= c.effect <= c.ci_high
        else:
            assert c.n_seeds is None and c.interval == "exact"
    assert res.numbers["params"] and res.vector


def test_density_reuses_the_imbalance_models(tmp_path):
    """The smoke sections of both artifacts give one simulation: it is trained once."""
    imb, den = _planned("fig_sim_imbalance"), _planned("fig_sim_density")
    assert sim_classes.ImbalanceSetup.of(imb.params) == sim_classes.ImbalanceSetup.of(den.params)
    out, store = OutputDirs(tmp_path / "out"), RunStore(tmp_path / "runs")
    assert build(imb, store, out).status == "built"
    misses = sim_classes.imbalance_simulation.cache_info().misses
    assert build(den, store, out).status == "built"
    assert sim_classes.imbalance_simulation.cache_info().misses == misses


def test_released_variants_are_the_defaults():
    imb = importlib.import_module("reproduce.fig_sim_imbalance").Params()
    den = importlib.import_module("reproduce.fig_sim_density").Params()
    assert (imb.loss, imb.window_end, imb.epoch) == ("symmetric", 49, 49)
    assert (den.evaluation, den.eval_spread, den.k) == ("released", 0.1, 10)


@pytest.mark.parametrize("name, kwargs, match", [
    ("fig_sim_convergence", dict(norms=(1.0, 0.0)), "norm must be a finite number > 0.*undefined"),
    ("fig_sim_convergence", dict(seeds=0), "seeds must"),
    ("fig_sim_convergence", dict(exponent_range=(2.2, 1.8)), "exponent_range"),
    ("fig_sim_imbalance", dict(class_weights=(1, 2, 0, 8)), r"class_weights\[2\] must be > 0"),
    ("fig_sim_imbalance", dict(epochs=5), r"window_end must be .* 1 … epochs \(5\)"),
    ("fig_sim_imbalance", dict(loss="all"), "loss must be one of symmetric, one_partner"),
    ("fig_sim_density", dict(evaluation="test"), "evaluation must be one of released, own"),
    ("fig_sim_density", dict(scatter_seed=5), "scatter_seed"),
    ("fig1_gradient_geometry", dict(direction=(0.0, 0.0)), "norm of direction"),
    ("fig1_gradient_geometry", dict(steps=0), "steps must"),
])
def test_invalid_parameters_fail_on_construction(name, kwargs, match):
    params_cls = importlib.import_module(f"reproduce.{name}").Params
    with pytest.raises(ValueError, match=match):
        params_cls(**kwargs)


def test_options_change_the_variant(tmp_path):
    """``evaluation: own`` embeds the training points; ``window_end: null`` takes the last epoch."""
    den = importlib.import_module("reproduce.fig_sim_density")
    base = artifact_params("smoke", "fig_sim_density", den.Params)
    own = den.Params(**{**base.__dict__, "evaluation": "own"})
    released = den.frames({}, base)["points"]["class"].value_counts().sort_index().to_numpy()
    trained_on = den.frames({}, own)["points"]["class"].value_counts().sort_index().to_numpy()
    assert released.sum() == trained_on.sum() == base.n_samples
    assert released.max() < 1.5 * released.min()          # balanced evaluation set
    assert trained_on[3] > 3 * trained_on[0]               # the 1:2:4:8 training set
    imb = importlib.import_module("reproduce.fig_sim_imbalance")
    p = imb.Params(n_samples=64, batch_size=32, epochs=3, seeds=2, window_end=None)
    assert p.epoch == 3 and (imb.frames({}, p)[""].window_epoch == 3).all()
    p2 = imb.Params(n_samples=64, batch_size=32, epochs=3, seeds=2, window_end=1)
    assert (imb.frames({}, p2)[""].window_epoch == 1).all()


def _fake_simulation(p, growth_slopes):
    """Class norms of known slopes: initial norms 5 · w^-0.1 · (1 + s/10) (slope -0.1 in every seed s),
    at every later epoch the initial norm times 1.2 · w^b_s (growth slope b_s)."""
    w = np.asarray(p.class_weights)
    S, C = p.seeds, len(w)
    init = 5 * w[None, :] ** -0.1 * (1 + np.arange(S)[:, None] / 10)
    later = init * 1.2 * w[None, :] ** np.asarray(growth_slopes)[:, None]
    norms = np.concatenate([init[:, None, :], np.repeat(later[:, None, :], p.epochs, axis=1)], axis=1)
    runs = tuple({"labels": np.repeat(np.arange(C), [1, 2, 4, 8])} for _ in range(S))
    return sim_classes.ImbalanceResult(sim_classes.ImbalanceSetup.of(p), norms, np.zeros((S, p.epochs)), runs)


@pytest.mark.parametrize("sign, verdict", [(1, "holds"), (-1, "contradicted")])
def test_imbalance_slope_check_on_known_slopes(monkeypatch, sign, verdict):
    imb = importlib.import_module("reproduce.fig_sim_imbalance")
    p = imb.Params(epochs=4, seeds=4, window_end=2)
    b = sign * np.array([0.1, 0.2, 0.3, 0.4])
    monkeypatch.setattr(imb, "imbalance_simulation", lambda setup: _fake_simulation(p, b))
    fr = imb.frames({}, p)
    checks = {c.test: c for c in imb.checks(fr, p)}
    primary = checks[imb.GROWTH_SLOPE]
    assert len(imb.GROWTH_SLOPE) <= 100 and primary.claim == "sim-imbalance" and primary.direction == "> 0"
    assert primary.per_seed == pytest.approx(b, abs=1e-12)
    half = stats.t.ppf(0.975, 3) * np.std(b, ddof=1) / 2            # t-interval over 4 seeds
    assert (primary.effect, primary.ci_low, primary.ci_high) == pytest.approx((sign * 0.25, sign * 0.25 - half,
                                                                               sign * 0.25 + half), abs=1e-12)
    assert primary.verdict == verdict and not primary.descriptive
    norm = checks["slope of log class norm on log class weight"]     # the norm itself: b_s + the initial -0.1
    assert norm.per_seed == pytest.approx(b - 0.1, abs=1e-12)
    assert fr["slopes"].slope_initial_norm.to_numpy() == pytest.approx(np.full(4, -0.1), abs=1e-12)


def _cosine_knn_by_brute_force(emb, k):
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    d = 1 - u @ u.T
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def test_density_strengthening_is_decided_on_the_own_points():
    den = importlib.import_module("reproduce.fig_sim_density")
    base = artifact_params("smoke", "fig_sim_density", den.Params)
    assert base.evaluation == "released"
    res = sim_classes.imbalance_simulation(sim_classes.ImbalanceSetup.of(base))
    expected = []
    for s in range(base.seeds):
        trained, init = res.runs[s]["embeddings"], res.runs[s]["initial_embeddings"]
        rho = [stats.spearmanr(np.linalg.norm(e, axis=1), _cosine_knn_by_brute_force(e, base.k)).statistic
               for e in (trained, init)]
        expected.append(rho[0] - rho[1])
    for evaluation in ("released", "own"):      # the figure's evaluation does not change the decision
        p = den.Params(**{**base.__dict__, "evaluation": evaluation})
        checks = {c.test: c for c in den.checks(den.frames({}, p), p)}
        primary = checks[den.STRENGTHENS]
        assert len(den.STRENGTHENS) <= 100 and primary.claim == "sim-density" and primary.direction == "< 0"
        assert primary.per_seed == pytest.approx(expected, abs=1e-9) and not primary.descriptive
        released = [c for c in checks.values() if c.descriptive]
        assert len(released) == 1 and "released" in released[0].regime and "cannot decide" in released[0].detail
        assert not np.allclose(released[0].per_seed, expected)
