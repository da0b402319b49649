"""A re-run reproduces the verdicts (issue 15): an artifact rebuilt from an empty run store into a
fresh output folder gives, check by check, the verdicts of the committed quick outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Cheap artifacts of the quick profile whose checks rest on seeds (simulation (a)) or closed forms.
ARTIFACTS = ("fig_sim_convergence", "fig1_gradient_geometry")


@pytest.mark.slow
def test_rebuilt_artifacts_give_the_committed_verdicts(tmp_path):
    committed = {name: REPO / "results" / f"{name}.json" for name in ARTIFACTS}
    missing = [str(p) for p in committed.values() if not p.exists()]
    if missing:
        pytest.skip(f"no committed quick results to compare with: {missing}")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")  # another thread count than the build
    cmd = [sys.executable, "-m", "reproduce", *ARTIFACTS, "--profile", "quick", "--runs", str(tmp_path / "runs"),
           "--out", str(tmp_path / "out"), "--no-progress"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    for name, path in committed.items():
        old = json.loads(path.read_text())["checks"]
        new = json.loads((tmp_path / "out" / "results" / f"{name}.json").read_text())["checks"]
        assert [c["test"] for c in new] == [c["test"] for c in old], name
        assert [c["verdict"] for c in new] == [c["verdict"] for c in old], name
        for a, b in zip(new, old):  # and the effect lies in the committed interval
            if b.get("ci_low") is not None and a.get("effect") is not None:
                assert b["ci_low"] <= a["effect"] <= b["ci_high"], (name, a["test"])
