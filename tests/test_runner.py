"""The top-level runner: registry, CLI errors, dry run, caching, concurrent runners, interruption,
failed/diverged runs, REPORT.md, and the real-Slurm launcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedding_norms.report import load_results
from embedding_norms.runs import RunStore
from reproduce.artifact import Artifact, Plan, plan_artifact
from reproduce.context import OutputDirs, build
from reproduce.registry import ARTIFACT_MODULES, load_artifacts

REPO = Path(__file__).resolve().parents[1]


def run_cli(args, tmp_path, data_dir=None, timeout=600, check=True, env=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    env.pop("EMBEDDING_NORMS_DOWNLOAD", None)
    if data_dir:
        env["EMBEDDING_NORMS_DATA"] = str(data_dir)
    cmd = [sys.executable, "-m", "reproduce", *args, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
           "--no-progress"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def test_registry_lists_every_artifact_module():
    arts = load_artifacts()
    assert list(arts) == list(ARTIFACT_MODULES)
    for name in ARTIFACT_MODULES:
        assert (REPO / "reproduce" / f"{name}.py").exists()
        assert arts[name].paper_ref and arts[name].claims


def test_unknown_artifact_and_bad_override_are_rejected(tmp_path):
    out = run_cli(["no_such_figure", "--profile", "smoke"], tmp_path, check=False)
    assert out.returncode == 2 and "unknown artifact" in out.stderr
    assert "fig_norm_growth" in out.stderr  # lists the valid names
    out = run_cli(["fig4_norm_confidenc", "--profile", "smoke"], tmp_path, check=False)
    assert out.returncode == 2 and "did you mean fig4_norm_confidence?" in out.stderr
    out = run_cli(["all", "--force", "tab_cut", "--profile", "smoke"], tmp_path, check=False)
    assert out.returncode == 2 and "--force: unknown artifact 'tab_cut'" in out.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_dry_run_lists_deduplicated_runs_and_trains_nothing(tmp_path, data_dir):
    out = run_cli(["fig_norm_growth", "tab_weight_decay", "--profile", "smoke", "--dry-run"], tmp_path, data_dir)
    # 4 SimCLR + 4 SimSiam weight decays + 1 BYOL, shared by both artifacts
    assert "9 distinct runs needed by 2 artifacts" in out.stdout
    assert "9 to train" in out.stdout
    assert "view pairs" in out.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_smoke_build_all_then_cached(tmp_path, data_dir):
    t0 = time.time()
    out = run_cli(["all", "--profile", "smoke"], tmp_path, data_dir, timeout=900)
    first = time.time() - t0
    o = tmp_path / "out"
    results = {r.name: r for r in load_results(o / "results")}
    assert set(results) == set(ARTIFACT_MODULES), out.stdout
    for r in results.values():
        # a tiny smoke network at c > 1 can collapse (the health check says so): such runs are listed,
        # the artifact is "partial"; nothing else may be missing
        assert r.status == "built" or (r.status == "partial" and all("collapsed" in s["reason"] for s in r.skipped)), \
            (r.name, r.status, r.error, r.skipped)
        assert any(f.endswith(".png") for f in r.figures) or any(t.endswith(".csv") for t in r.tables), r.name
        for f in r.figures + r.tables:
            assert not Path(f).is_absolute() and (o / f).exists(), f  # relative to the output root
    statuses = {d.name: json.loads((d / "status.json").read_text())["state"] for d in (tmp_path / "runs").iterdir()}
    assert statuses and set(statuses.values()) <= {"done", "collapsed"}, statuses  # every run finishes (stand-ins too)
    assert list(statuses.values()).count("done") > len(statuses) // 2
    report = (o / "REPORT.md").read_text()
    assert "## Summary: every claim of the paper" in report and "Profile **`smoke`**" in report
    for name in ARTIFACT_MODULES:
        assert f'<a id="{name}"></a>' in report
    # issue 22: the answer first, the summary figure drawn and linked, short check labels
    assert (o / "figures" / "summary.png").is_file() and "figures/summary.png" in "\n".join(report.splitlines()[:10])
    assert "## The answer" in "\n".join(report.splitlines()[:12])
    long = [(r.name, c.test) for r in results.values() for c in r.checks if len(c.test) > 120]
    assert not long, long
    assert not list(o.rglob("*.tmp*")) and not list((tmp_path / "runs").rglob("*.tmp*"))
    # second call: everything reused
    t1 = time.time()
    out2 = run_cli(["all", "--profile", "smoke"], tmp_path, data_dir)
    assert "already trained" in out2.stdout
    assert time.time() - t1 < max(60.0, first / 3)


def _train_starts(runs: Path) -> dict[str, int]:
    return {d.name: (d / "train.log").read_text().count(" on cpu: ") for d in runs.iterdir() if (d / "train.log").exists()}


def test_two_runners_at_once_train_each_run_once(tmp_path, data_dir):
    env = dict(os.environ, EMBEDDING_NORMS_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "reproduce", "fig_imbalance_norms", "--profile", "smoke", "--runs",
           str(tmp_path / "runs"), "--no-progress"]
    procs = [subprocess.Popen(cmd + ["--out", str(tmp_path / f"out{i}")], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    starts = _train_starts(tmp_path / "runs")
    assert len(starts) == 2 and all(n == 1 for n in starts.values()), starts
    for i in range(2):  # both runners built the artifact from the finished runs
        res = json.loads((tmp_path / f"out{i}" / "results" / "fig_imbalance_norms.json").read_text())
        # SimCLR z, SimSiam z and p; each: growth slope, rho at the end, rho at epoch 0 (control)
        assert res["status"] == "built" and len(res["checks"]) == 9


def test_sigterm_leaves_no_half_written_files_and_next_call_continues(tmp_path, data_dir):
    env = dict(os.environ, EMBEDDING_NORMS_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "reproduce", "fig_imbalance_norms", "--profile", "smoke", "--runs",
           str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-progress"]
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/checkpoints/epoch_0001.pt")):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert not list(tmp_path.rglob("*.tmp*"))
    store = RunStore(tmp_path / "runs")
    states = [store.status(_cfg(d)).state for d in (tmp_path / "runs").iterdir()]
    assert set(states) <= {"pending", "done"} and "pending" in states, states  # interrupted run resumable
    out = run_cli(["fig_imbalance_norms", "--profile", "smoke"], tmp_path, data_dir)
    assert (tmp_path / "out" / "figures" / "fig_imbalance_norms.png").exists(), out.stdout


def _cfg(run_dir: Path):
    from embedding_norms.runs import load_config

    return load_config(run_dir)


def test_diverged_run_is_reported_not_dropped(tmp_path, data_dir):
    """A fabricated store: one GradScale p=1 SimSiam run diverged; the table shows it and the
    limitation check counts it as not converged (at chance accuracy)."""
    import pandas as pd

    from reproduce import tab_gradscale

    plan = Plan("smoke", str(data_dir))
    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(Artifact.from_module(tab_gradscale), plan)
    for key, s in planned.specs.items():
        store.ensure(s.cfg)
        e = list(s.cfg.train.eval_epochs)
        pd.DataFrame({"epoch": e, "knn_acc": [30.0] * len(e), "z_norm_mean": 1.0}).to_csv(
            store.path(s.cfg) / "metrics.csv", index=False)
        if key.method == "simsiam" and key.data == "balanced" and key.setting == "shared" and key.power == 1.0:
            store.set_status(s.cfg, "diverged", "loss became nan at epoch 1", epoch=1)
        else:
            store.set_status(s.cfg, "done")
    res = build(planned, store, OutputDirs(tmp_path / "out"))
    assert res.status == "partial", res.error  # the diverged run is listed as not finished
    table = (tmp_path / "out" / "tables" / "tab_gradscale.md").read_text()
    assert "diverged (epoch 1)" in table
    limit = [c for c in res.checks if c.claim == "gradscale-limit" and c.test == "SimSiam cifar10 balanced: p=1 - p=0 (base lr)"]
    # chance (10 %) minus the p = 0 arm at the same lr (30 %) in the one seed of smoke
    assert limit and limit[0].per_seed == pytest.approx([10.0 - 30.0])


def slurm_reachable() -> tuple[bool, str]:
    from embedding_norms.launch import slurm_available

    return slurm_available()


@pytest.mark.slurm
def test_slurm_launcher_runs_training_through_slurm(tmp_path, data_dir):
    ok, why = slurm_reachable()
    if not ok:
        pytest.skip(f"no Slurm cluster reachable ({why}); .ci/run starts one with shared/slurm/start-local-slurm.sh")
    out = run_cli(["fig_imbalance_norms", "--profile", "smoke", "--launcher", "slurm", "--slurm-gpus", "0",
                   "--slurm-cpus", "1", "--slurm-mem-gb", "3", "--slurm-time-min", "20",
                   "--slurm-logs", str(tmp_path / "slurm" / "%j")], tmp_path, data_dir, timeout=900)
    store = RunStore(tmp_path / "runs")
    dirs = list((tmp_path / "runs").iterdir())
    assert len(dirs) == 2   # the imbalanced SimCLR and SimSiam runs (issue 20: no balanced runs declared)
    for d in dirs:
        st = json.loads((d / "status.json").read_text())
        assert st["state"] == "done", st
        assert st.get("slurm_job_id"), st  # recorded by the Slurm task itself
        job = st["slurm_job_id"].split("_")[0]
        acct = subprocess.run(["sacct", "-n", "-X", "-j", job, "-o", "JobID,State"], capture_output=True, text=True)
        assert job in acct.stdout, acct.stdout + acct.stderr
    assert (tmp_path / "out" / "figures" / "fig_imbalance_norms.png").exists(), out.stdout


@pytest.mark.slurm
def test_slurm_preempted_task_is_requeued_and_resumes(tmp_path):
    """USR2 is the signal Slurm sends before a time limit or a preemption (submitit asks for it):
    submitit's handler checkpoints the TrainTask and requeues the job, and the requeued task
    resumes the run from its newest checkpoint instead of starting over."""
    import threading

    from embedding_norms.config import RunConfig
    from embedding_norms.launch import SlurmOptions, execute

    ok, why = slurm_reachable()
    if not ok:
        pytest.skip(f"no Slurm cluster reachable ({why}); .ci/run starts one with shared/slurm/start-local-slurm.sh")
    cfg = RunConfig.load("simclr", "smoke", {"data": {"standin": True}, "model": {"width": 4},
                                             "train": {"epochs": 10, "eval_epochs": [10], "save_embeddings_epochs": [10]}})
    store = RunStore(tmp_path / "runs")
    opts = SlurmOptions(gpus=0, cpus=1, mem_gb=3, time_min=20, folder=str(tmp_path / "slurm" / "%j"))
    results = []
    worker = threading.Thread(target=lambda: results.extend(execute([cfg], store, "slurm", slurm=opts, progress=False)))
    worker.start()
    ckpt = store.path(cfg) / "checkpoints" / "epoch_0002.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), "the Slurm task never reached epoch 2"
    job = store.status(cfg).slurm_job_id
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    # Slurm holds a requeued job back (BeginTime ~2 min); release it to keep the test short
    while worker.is_alive() and time.time() < deadline + 300:
        q = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout
        if "PENDING" in q and "BeginTime" in q:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        worker.join(timeout=1)
    worker.join(timeout=600)
    assert not worker.is_alive()
    assert results and results[0].state == "done", results
    log = (store.path(cfg) / "train.log").read_text()
    assert log.count(" on cpu: ") == 2, log          # trained in two segments (the job was requeued)
    assert "resumed from" in log, log
    assert store.metrics(cfg).epoch.tolist() == list(range(11))


# ----------------------------------------------------------------- bad input and faults found in review
def test_bad_data_dir_is_an_error_and_writes_nothing(tmp_path):
    out = run_cli(["fig_norm_growth", "--profile", "quick", "--data-dir", str(tmp_path / "typo")], tmp_path, check=False)
    assert out.returncode == 2 and "does not exist" in out.stderr and "--download" in out.stderr, out.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_missing_cifar10_is_an_error_outside_smoke(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run_cli(["fig_norm_growth", "--profile", "quick", "--data-dir", str(empty)], tmp_path, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "needs CIFAR-10" in out.stderr and "--download" in out.stderr and "EMBEDDING_NORMS_DATA" in out.stderr
    assert not (tmp_path / "out").exists()


def test_corrupt_data_file_stops_before_training(tmp_path, data_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cifar10_jpeg.npz").write_bytes((data_dir / "cifar10_jpeg.npz").read_bytes()[:100_000])
    out = run_cli(["fig_imbalance_norms", "--profile", "smoke", "--data-dir", str(bad)], tmp_path, check=False)
    assert out.returncode == 2 and "wrong checksum" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_artifact_parameters_are_checked_before_training(tmp_path, data_dir):
    """Bad artifact parameters in a profile stop the runner with exit 2, naming the key, before any
    training (issue 11, point 1)."""
    import shutil

    cfg = tmp_path / "configs"
    shutil.copytree(REPO / "configs", cfg)
    cases = {
        "tab_cut_init:\n    constants: [3.0, 9.0]": r"artifacts\.tab_cut_init.*constants must include 1\.0",
        "tab_gradscale:\n    powers: [0.0]": r"artifacts\.tab_gradscale.*powers",
        "tab_gradscale:\n    no_such_key: 1": r"artifacts\.tab_gradscale\.no_such_key",
        "fig_sim_convergence:\n    norms: [0.0, 1.0]": r"artifacts\.fig_sim_convergence",
    }
    import re

    for section, pattern in cases.items():
        text = (REPO / "configs" / "profiles" / "smoke.yaml").read_text()
        name = section.split(":")[0]
        text = re.sub(rf"^  {name}:\n(    .*\n)*", "", text, flags=re.M)
        (cfg / "profiles" / "smoke.yaml").write_text(text.replace("artifacts:\n", f"artifacts:\n  {section}\n", 1))
        env = {"EMBEDDING_NORMS_CONFIG_DIR": str(cfg)}
        out = run_cli([name, "--profile", "smoke"], tmp_path, data_dir, check=False, env=env)
        assert out.returncode == 2 and re.search(pattern, out.stderr), (section, out.stderr)
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_status_with_names_shows_only_those_and_trains_nothing(tmp_path, data_dir):
    out = run_cli(["status", "fig_imbalance_norms", "--profile", "smoke"], tmp_path, data_dir)
    assert "fig_imbalance_norms" in out.stdout and "tab_cut_init" not in out.stdout
    assert "pending" in out.stdout
    assert not (tmp_path / "out").exists()


def test_failed_run_is_retried_by_the_next_call(tmp_path, data_dir):
    run_cli(["fig_imbalance_norms", "--profile", "smoke"], tmp_path, data_dir)
    store = RunStore(tmp_path / "runs")
    run_dir = sorted((tmp_path / "runs").iterdir())[0]
    cfg = _cfg(run_dir)
    store.set_status(cfg, "failed", "RuntimeError: simulated failure of the environment")
    out = run_cli(["fig_imbalance_norms", "--profile", "smoke"], tmp_path, data_dir)
    assert "retrying 1 run(s) that failed before" in out.stdout, out.stdout
    assert store.status(cfg).state == "done"


def test_failed_run_makes_the_exit_status_nonzero(tmp_path, data_dir, monkeypatch):
    """A run that fails in this call is reported, the artifacts still build, and the exit status is 1."""
    from reproduce import runner
    from embedding_norms.launch import LaunchResult

    def fail_all(cfgs, store, *args, **kwargs):
        for c in cfgs:
            store.ensure(c)
            store.set_status(c, "failed", "RuntimeError: simulated")
        return [LaunchResult(c.name, "failed", "RuntimeError: simulated") for c in cfgs]

    monkeypatch.setattr(runner, "execute", fail_all)
    rc = runner.main(["fig_imbalance_norms", "--profile", "smoke", "--data-dir", str(data_dir), "--runs",
                      str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    res = json.loads((tmp_path / "out" / "results" / "fig_imbalance_norms.json").read_text())
    assert res["status"] == "partial" and any("failed" in s["reason"] for s in res["skipped"])


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_sigterm_stops_parallel_workers(tmp_path, data_dir):
    env = dict(os.environ, EMBEDDING_NORMS_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "reproduce", "fig_norm_growth", "--profile", "smoke", "--jobs", "2", "--runs",
           str(runs), "--out", str(tmp_path / "out"), "--no-progress"]
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(runs.glob("*/checkpoints/epoch_0001.pt")):
        time.sleep(0.1)
    t0 = time.time()
    started = {d.name for d in runs.iterdir() if (d / "train.log").exists()}
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert time.time() - t0 < 30
    # no queued run was started after the signal (workers must not run the runner's handler)
    assert {d.name for d in runs.iterdir() if (d / "train.log").exists()} <= started
    store = RunStore(runs)
    states = [store.status(_cfg(d)).state for d in runs.iterdir()]
    assert states.count("done") < 9 and "failed" not in states, states
    assert not _processes_mentioning(str(runs)), "worker processes outlived the runner"
