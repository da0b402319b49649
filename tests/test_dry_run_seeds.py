"""`--seeds N` and the dry run's cost table (issue 21): the paper profile has >= 3 seeds for every
CIFAR-10 comparison and a projected GPU-hours total on a CPU-only machine; one seed makes the
real-data checks descriptive."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reproduce import fig_norm_growth
from reproduce.artifact import Plan
from reproduce.costs import seeds_per_dataset

REPO = Path(__file__).resolve().parents[1]


def _cli(args, tmp_path, data_dir):
    env = dict(os.environ, EMBEDDING_NORMS_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "reproduce", *args, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
           "--no-progress", "--device", "cpu"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _row(stdout: str, artifact: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(artifact + " "))


@pytest.mark.slow
def test_paper_dry_run_has_three_cifar10_seeds_and_projected_gpu_hours(tmp_path, data_dir):
    out = _cli(["fig_norm_growth", "tab_cut_init", "--profile", "paper", "--dry-run"], tmp_path, data_dir)
    for art in ("fig_norm_growth", "tab_cut_init"):
        assert "cifar10 3" in _row(out, art) and "A100-h" in _row(out, art)
    total = _row(out, "total (distinct runs)")
    assert "A100-h" in total and "H100-h" in total
    assert "PROJECTION from counted FLOPs" in out and "0.3 x the datasheet peak" in out
    # --seeds overrides the profile for any build
    one = _cli(["fig_norm_growth", "--profile", "paper", "--dry-run", "--seeds", "1"], tmp_path, data_dir)
    assert "cifar10 1 " in _row(one, "fig_norm_growth")


def test_seeds_override_in_the_plan_and_per_dataset_count():
    assert Plan("paper").seeds == (0, 1, 2)
    assert Plan("paper", n_seeds=1).seeds == (0,)
    cfgs = [Plan("smoke").config("simclr", {"train": {"seed": s}}) for s in (0, 1, 1)]
    assert seeds_per_dataset(cfgs) == {"cifar10": 2}


def test_one_seed_makes_real_data_checks_descriptive():
    # fig_norm_growth's checks on the effects of a 1-seed build: no interval over seeds, not inconclusive
    eff = pd.DataFrame([{"method": "simclr", "seed": 0, "vector": "z", "epoch": 4, "effect": 2.0}])
    checks = fig_norm_growth.checks({"_effects": eff}, fig_norm_growth.Params(methods=("simclr",)))
    assert [c.verdict for c in checks] == ["descriptive (1 seed)"]
    two = pd.concat([eff, eff.assign(seed=1, effect=2.2), eff.assign(seed=2, effect=1.9)])
    assert fig_norm_growth.checks({"_effects": two}, fig_norm_growth.Params(methods=("simclr",)))[0].verdict == "holds"
