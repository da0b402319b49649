"""The four theory/simulation artifacts build at the smoke profile: figure (PNG + PDF), tables
(CSV), results JSON with claim checks. Their numbers at smoke scale mean nothing; the claim
checks are only required to be recorded (with the right claim ids)."""

from __future__ import annotations

import importlib
import json

import pytest

from embedding_norms import simulate as sim
from embedding_norms.report import write_result
from embedding_norms.runs import RunStore
from reproduce.common import OutputDirs, Plan, timed_build

EXPECTED = {
    "fig1_gradient_geometry": ({"prop3.1", "cor3.3"}, ["fig1_gradient_geometry.csv"]),
    "fig_sim_convergence": ({"conv-norm", "conv-angle"},
                            ["fig_sim_convergence_norm.csv", "fig_sim_convergence_angle.csv"]),
    "fig_sim_imbalance": ({"sim-imbalance"}, ["fig_sim_imbalance.csv", "fig_sim_imbalance_history.csv"]),
    "fig_sim_density": ({"sim-density"}, ["fig_sim_density.csv", "fig_sim_density_points.csv"]),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_artifact_builds_at_smoke(name, tmp_path):
    art = importlib.import_module(f"reproduce.{name}").ARTIFACT
    assert art.name == name and art.runs(Plan("smoke")) == []
    out = OutputDirs(tmp_path / "out")
    res = timed_build(art, Plan("smoke"), RunStore(tmp_path / "runs"), out)
    assert res.status == "built", res.error
    for ext in ("png", "pdf"):
        f = out.figures / f"{name}.{ext}"
        assert f.is_file() and f.stat().st_size > 1000
    claims, tables = EXPECTED[name]
    for t in tables:
        assert (out.tables / t).is_file()
    path = write_result(res, out.results)
    data = json.loads(path.read_text())
    checks = data["checks"]
    assert {c["claim"] for c in checks} == claims == set(art.claims)
    for c in checks:
        assert c["statistic"] and c["threshold"] and c["value"] is not None and isinstance(c["holds"], bool)  # evaluated
    assert data["numbers"]


def test_density_reuses_the_imbalance_models(tmp_path):
    """Building fig_sim_imbalance then fig_sim_density trains the models once (shared cache)."""
    imb = importlib.import_module("reproduce.fig_sim_imbalance")
    den = importlib.import_module("reproduce.fig_sim_density")
    out, store = OutputDirs(tmp_path / "out"), RunStore(tmp_path / "runs")
    assert timed_build(imb.ARTIFACT, Plan("smoke"), store, out).status == "built"
    misses = sim.imbalance_simulation.cache_info().misses
    assert timed_build(den.ARTIFACT, Plan("smoke"), store, out).status == "built"
    assert sim.imbalance_simulation.cache_info().misses == misses


def test_invalid_simulation_parameters_fail_before_compute(monkeypatch, tmp_path):
    imb = importlib.import_module("reproduce.fig_sim_imbalance")
    with pytest.raises(ValueError, match=r"class_weights\[2\] must be > 0"):
        imb.setup_from_params(dict(imb.DEFAULTS, class_weights=[1, 2, 0, 8]))
    # an invalid norm in a profile makes the convergence artifact fail with a clear message, no output
    conv = importlib.import_module("reproduce.fig_sim_convergence")
    monkeypatch.setattr(conv, "DEFAULTS", dict(conv.DEFAULTS, norms=[1.0, 0.0]))
    out = OutputDirs(tmp_path / "out")
    res = timed_build(conv.ARTIFACT, Plan("paper"), RunStore(tmp_path / "runs"), out)
    assert res.status == "failed" and "norm must be a finite number > 0" in res.error and "undefined" in res.error
    assert not (out.figures / "fig_sim_convergence.png").exists()
