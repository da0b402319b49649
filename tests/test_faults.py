"""Faults the runner, the launcher and the single-run command survive (issue 14, section 3; README
"Faults the tool survives"): read-only outputs and run stores, a worker killed with ``kill -9``,
bad ``--slurm-config`` and ``--force``, sizes that do not fit the training set, the single-run
command's errors (corrupt data, locked run, Ctrl-C, full disk), file modes, stand-in data."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedding_norms.config import ConfigError, DataConfig, EvalConfig, RunConfig
from embedding_norms.data import check_run_sizes, expected_train_size, prepare_data
from embedding_norms.runs import RunLock, RunStore

REPO = Path(__file__).resolve().parents[1]


def run_cli(args, runs, out, data_dir=None, timeout=300, env_extra=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    env.pop("EMBEDDING_NORMS_DOWNLOAD", None)
    if data_dir:
        env["EMBEDDING_NORMS_DATA"] = str(data_dir)
    cmd = [sys.executable, "-m", "reproduce", *args, "--runs", str(runs), "--out", str(out), "--no-progress"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


class ReadOnly:
    """Make a folder read-only for this (possibly root) process: a read-only bind mount as root
    (root ignores permission bits), ``chmod 555`` otherwise; undone by :meth:`undo`."""

    def __init__(self, path: Path):
        self.path, self.mounted = Path(path), False
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot make a read-only folder as root here (mount: {r.stderr.strip()})")
            self.mounted = True
        else:
            for p in [self.path, *self.path.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o555)
        probe = self.path / ".write-probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        self.undo()
        pytest.skip("the folder stays writable (no way to make it read-only here)")

    def undo(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=False)
            self.mounted = False
        else:
            for p in [self.path, *self.path.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o755)


def runner_main(args, runs, out, capsys):
    """``python -m reproduce ARGS`` in this process: (exit status, stdout, stderr)."""
    from reproduce import runner

    capsys.readouterr()
    rc = runner.main([*args, "--runs", str(runs), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One decoded-image cache for the tests of this module that load CIFAR-10 (decoding is slow)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def no_data(tmp_path_factory):
    """An empty data folder: the smoke profile then trains on stand-ins (fast, no decoding)."""
    return tmp_path_factory.mktemp("no_data")


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory, no_data, shared_cache):
    """A run store in which both runs of ``fig_imbalance_norms`` (smoke, stand-in data) are finished."""
    base = tmp_path_factory.mktemp("finished")
    out = run_cli(["fig_imbalance_norms", "--profile", "smoke"], base / "runs", base / "out", no_data,
                  env_extra={"EMBEDDING_NORMS_CACHE": str(shared_cache)})
    assert out.returncode == 0, out.stdout + out.stderr
    return base / "runs"


# ----------------------------------------------------------------- read-only places
def test_read_only_out_is_refused_before_any_training(tmp_path, no_data):
    ro = tmp_path / "ro"
    ro.mkdir()
    guard = ReadOnly(ro)
    try:
        out = run_cli(["fig_imbalance_norms", "--profile", "smoke"], tmp_path / "runs", ro / "out", no_data)
    finally:
        guard.undo()
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{ro} is not writable" in out.stderr and "--out" in out.stderr and "nothing was trained" in out.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not list(runs.glob("*/checkpoints/*.pt"))  # no training happened


def test_read_only_finished_store_serves_status_and_build(tmp_path, finished_store, no_data, capsys):
    before = {p: p.stat().st_mtime_ns for p in finished_store.rglob("*")}
    guard = ReadOnly(finished_store)
    try:
        args = ["fig_imbalance_norms", "--profile", "smoke", "--data-dir", str(no_data)]
        rc_st, st_out, st_err = runner_main(["status", *args], finished_store, tmp_path / "out", capsys)
        rc, out, err = runner_main(args, finished_store, tmp_path / "out", capsys)
    finally:
        guard.undo()
    assert rc_st == 0, st_err
    assert st_out.count(" done ") == 2, st_out
    assert rc == 0, out + err
    assert "already trained" in out
    res = json.loads((tmp_path / "out" / "results" / "fig_imbalance_norms.json").read_text())
    assert res["status"] == "built"
    assert {p: p.stat().st_mtime_ns for p in finished_store.rglob("*")} == before  # reading never writes


def test_force_all_retrains_every_target_and_unknown_force_is_refused(tmp_path, finished_store, no_data, capsys):
    args = ["fig_imbalance_norms", "--profile", "smoke", "--dry-run", "--data-dir", str(no_data)]
    rc, out, err = runner_main([*args, "--force", "all"], finished_store, tmp_path / "out", capsys)
    assert rc == 0, err
    assert "2 to train (2 already finished" in out, out  # forced although finished (the 2 imbalanced runs)
    rc, out, err = runner_main([*args, "--force", "tab_cut_init"], finished_store, tmp_path / "out", capsys)
    assert rc == 2 and "--force tab_cut_init: tab_cut_init is not among the targets" in err, err


# ----------------------------------------------------------------- files and modes
def test_atomic_writes_respect_the_umask(tmp_path):
    from embedding_norms.io import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644  # 0o666 & ~0o022
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600  # 0o666 & ~0o077


# ----------------------------------------------------------------- a local worker killed with kill -9
def _fake_train(victim: str):
    def train(cfg, store, *args, **kwargs):
        if cfg.name == victim:
            os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
        store.ensure(cfg)
        time.sleep(0.3)
        store.set_status(cfg, "done", "fake")
        return store.status(cfg)
    return train


def test_killed_worker_fails_only_its_own_run(tmp_path, monkeypatch):
    """``--jobs 2`` with 6 runs; the worker of the 2nd run is killed: that run fails, the 5 others
    (the one aborted with the broken pool and the ones never started) are trained."""
    import embedding_norms.train as train_mod
    from embedding_norms.launch import execute

    cfgs = [RunConfig.load("simclr", "smoke", {"train.seed": s}) for s in range(6)]
    victim = cfgs[1]
    monkeypatch.setattr(train_mod, "train", _fake_train(victim.name))  # forked workers inherit it
    store = RunStore(tmp_path / "runs")
    results = {r.name: r for r in execute(cfgs, store, "local", jobs=2, progress=False)}
    assert results[victim.name].state == "failed"
    assert "died (signal SIGKILL" in results[victim.name].reason
    assert results[victim.name].log is None  # no train.log was written: none is named
    assert store.status(victim).state == "failed"
    others = [c for c in cfgs if c is not victim]
    assert [results[c.name].state for c in others] == ["done"] * 5
    assert [store.status(c).state for c in others] == ["done"] * 5


# ----------------------------------------------------------------- bad input found while planning
@pytest.mark.parametrize("content, expected", [
    ("partition: [debug\n", "is not valid YAML"),
    ("- debug\n- gpu\n", "must hold a mapping of Slurm options"),
    (None, "cannot read it"),
])
def test_bad_slurm_config_is_exit_2(tmp_path, data_dir, capsys, content, expected):
    from reproduce import runner

    f = tmp_path / "slurm.yaml"
    if content is not None:
        f.write_text(content)
    rc = runner.main(["fig_imbalance_norms", "--profile", "smoke", "--launcher", "slurm", "--slurm-config", str(f),
                      "--data-dir", str(data_dir), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and str(f) in err, err
    assert not (tmp_path / "runs").exists()


def test_expected_train_size_matches_the_loaded_data():
    # by hand: 352 stand-in images of 10 classes -> 35 per class (2 classes get 36), imbalance keeps
    # int(35 * 1.5**-i) = 35, 23, 15, 10, 6, 4, 3, 2, 1, 1 (>= 1) = 100 images
    d = DataConfig(dataset="cifar10", standin=True, train_size=352, imbalance="exponential")
    assert expected_train_size(d) == 100
    assert len(prepare_data(d, EvalConfig(knn_k=50), 0, 100).train) == 100
    assert expected_train_size(DataConfig(dataset="cifar10", classes=(0, 1, 2))) == 15000
    assert expected_train_size(DataConfig(dataset="flowers102")) is None  # size known only once loaded


@pytest.mark.parametrize("overrides, key, boundary", [
    # 100 images of 10 classes -> 10 per class -> 10, 6, 4, 2, 1, 1, 1, 1, 1, 1 = 28 images < a batch of 32
    ({"data.train_size": 100}, "28 images .* fewer than one optimizer step", {"data.train_size": 352}),
    ({"train.probe_size": 101}, "train.probe_size is 101", {"train.probe_size": 100}),  # 100 images
    ({"eval.knn_k": 101}, "eval.knn_k is 101", {"eval.knn_k": 100}),
])
def test_sizes_that_do_not_fit_the_training_set_are_refused(overrides, key, boundary):
    cfg = RunConfig.load("simclr", "smoke", {"data.imbalance": "exponential", **overrides})
    with pytest.raises(ConfigError, match=key):
        check_run_sizes(cfg)
    check_run_sizes(cfg.replace(boundary))  # the largest value that fits passes


def test_training_time_size_errors_are_found_while_planning_even_in_a_dry_run(tmp_path, data_dir, monkeypatch,
                                                                              capsys):
    from reproduce import runner

    real = runner._plan

    def plan_with_a_tiny_imbalanced_run(artifacts, plan):
        planned = real(artifacts, plan)
        pl = planned["fig_imbalance_norms"]
        key, s = next(iter(pl.specs.items()))  # 28 imbalanced images < one batch of 32:
        specs = {**pl.specs, key: dataclasses.replace(s, cfg=s.cfg.replace({"data.train_size": 100}))}
        planned["fig_imbalance_norms"] = dataclasses.replace(pl, specs=specs)
        return planned

    monkeypatch.setattr(runner, "_plan", plan_with_a_tiny_imbalanced_run)
    rc = runner.main(["fig_imbalance_norms", "--profile", "smoke", "--dry-run", "--data-dir", str(data_dir),
                      "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "fig_imbalance_norms run" in err and "28 images" in err and "optimizer step" in err, err


# ----------------------------------------------------------------- damaged runs (issue 23)
def test_damaged_runs_are_counted_in_the_header_marked_on_checks_and_exit_1(tmp_path, finished_store, no_data,
                                                                           capsys):
    """Random bytes over the SimCLR run's metrics.csv, or its last embeddings file cut short (two
    builds): REPORT.md's header counts and names the run with the fix, SimCLR's checks say they
    lost their seed while SimSiam's keep theirs, the build exits 1 with the fix on its last lines."""
    import shutil

    for damage in ("metrics", "embeddings"):
        store = tmp_path / damage / "runs"
        shutil.copytree(finished_store, store)
        dirs = sorted(d for d in store.iterdir() if (d / "config.yaml").exists())  # <method>-<data>-<hash>
        bad = next(d for d in dirs if d.name.startswith("simclr-cifar10-imb-"))
        if damage == "metrics":
            file = "metrics.csv"
            (bad / file).write_bytes(np.random.default_rng(1).bytes(400))
        else:
            npz = sorted((bad / "embeddings").glob("*.npz"))[-1]
            file = npz.name
            npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
        out_dir = tmp_path / damage / "out"
        rc, out, err = runner_main(["fig_imbalance_norms", "--profile", "smoke", "--data-dir", str(no_data)],
                                   store, out_dir, capsys)
        assert rc == 1, out + err
        header = (out_dir / "REPORT.md").read_text().split("## Summary")[0]
        usable_line = next(ln for ln in header.splitlines() if "usable" in ln)
        assert f"{len(dirs) - 1} of {len(dirs)} usable" in usable_line and "1 damaged" in usable_line, usable_line
        assert f"`{bad.name}`" in usable_line and file in usable_line and f"mv {bad} {bad}.damaged" in usable_line
        assert f"mv {bad} {bad}.damaged" in "\n".join(err.strip().splitlines()[-3:])  # the fix is on the last lines
        res = json.loads((out_dir / "results" / "fig_imbalance_norms.json").read_text())
        seeded = [c for c in res["checks"] if c["n_seeds"] is not None]
        lost = [c for c in seeded if c["n_seeds"] == 0]  # the smoke profile trains one seed per arm
        assert lost and all("LOST SEEDS: rests on 0 of 1 seeds" in c["detail"] for c in lost)
        assert all(c["test"].startswith("SimCLR") for c in lost)
        kept = [c for c in seeded if c["n_seeds"] == 1]
        assert kept and all("LOST SEEDS" not in c["detail"] and c["test"].startswith("SimSiam") for c in kept)


# ----------------------------------------------------------------- stand-in data
def test_smoke_on_an_empty_data_folder_says_it_uses_stand_ins(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = runner_main(["fig_imbalance_norms", "--profile", "smoke", "--dry-run", "--data-dir", str(empty)],
                               tmp_path / "runs", tmp_path / "out", capsys)
    assert rc == 0, err
    assert "stand-in data: 2 run(s) train on generated stand-in images for cifar10" in out


def test_report_header_says_stand_in_data(tmp_path):
    from embedding_norms.report import ArtifactResult, render_report

    real = ArtifactResult("a", "Fig. 1", "t", "smoke", runs=[{"dataset": "cifar10", "quirks": "lr_schedule=x"}])
    fake = ArtifactResult("b", "Fig. 2", "t", "smoke",
                          runs=[{"dataset": "cifar100 (imbalanced)", "quirks": "lr_schedule=x, standin data"}])
    text = render_report([real, fake], "smoke", tmp_path / "REPORT.md", env={})
    header = text.split("## Summary")[0]
    assert "stand-in data" in header and "cifar100 (b)" in header and "cifar10 " not in header
    assert "stand-in" not in render_report([real], "smoke", tmp_path / "R2.md", env={}).split("## Summary")[0]


# ----------------------------------------------------------------- the single-run command
def _train_main(tmp_path, *extra, data_dir=None):
    from embedding_norms.train_cli import main

    args = ["--method", "simclr", "--profile", "smoke", "--runs", str(tmp_path / "runs"), "--no-progress", *extra]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return main(args)


def test_single_run_corrupt_data_is_exit_2_before_a_run_folder(tmp_path, data_dir, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cifar10_jpeg.npz").write_bytes((data_dir / "cifar10_jpeg.npz").read_bytes()[:100_000])
    assert _train_main(tmp_path, data_dir=bad) == 2
    assert "wrong checksum" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_single_run_locked_and_interrupted_give_messages_not_tracebacks(tmp_path, data_dir, capsys, monkeypatch):
    import embedding_norms.train_cli as train_mod

    cfg = RunConfig.load("simclr", "smoke", {})
    store = RunStore(tmp_path / "runs")
    with RunLock(store.ensure(cfg)):
        assert _train_main(tmp_path, data_dir=data_dir) == 1
    err = capsys.readouterr().err
    assert "being trained by another process" in err and "Traceback" not in err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, "train", interrupted)
    assert _train_main(tmp_path, data_dir=data_dir) == 130
    assert "interrupted: run the same command again to resume" in capsys.readouterr().err


def test_single_run_full_disk_ends_failed_not_running(tmp_path, capsys, monkeypatch):
    """The first checkpoint hits ENOSPC; from then on every atomic write fails too (no room for a
    temporary file): the run must still end ``failed`` with the reason, and no traceback is printed."""
    import embedding_norms.io as io_mod
    import embedding_norms.train as train_mod

    full = []
    real_atomic = io_mod.atomic_path

    def no_space(*args, **kwargs):
        full.append(True)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def atomic_path(path):
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_atomic(path)

    monkeypatch.setattr(train_mod, "save_checkpoint", no_space)
    monkeypatch.setattr(io_mod, "atomic_path", atomic_path)
    import embedding_norms.runs as runs_mod
    monkeypatch.setattr(runs_mod, "atomic_path", atomic_path)
    assert _train_main(tmp_path, "--set", "data.standin=true") == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    st = json.loads((run_dir / "status.json").read_text())
    assert st["state"] == "failed" and "No space left" in st["reason"], st
    assert np.isfinite(st["updated"])


# ----------------------------------------------------------------- Slurm: an interrupted runner cancels its array
@pytest.mark.slurm
def test_sigterm_to_the_runner_cancels_its_slurm_array(tmp_path, no_data):
    from embedding_norms.launch import slurm_available

    ok, why = slurm_available()
    if not ok:
        pytest.skip(f"no Slurm cluster reachable ({why}); .ci/run starts one with shared/slurm/start-local-slurm.sh")
    runs = tmp_path / "runs"
    env = dict(os.environ, PYTHONUNBUFFERED="1", EMBEDDING_NORMS_DATA=str(no_data))
    cmd = [sys.executable, "-m", "reproduce", "fig_norm_growth", "--profile", "smoke", "--launcher", "slurm",
           "--slurm-gpus", "0", "--slurm-cpus", "1", "--slurm-mem-gb", "3", "--slurm-time-min", "20",
           "--slurm-logs", str(tmp_path / "slurm" / "%j"), "--runs", str(runs), "--out", str(tmp_path / "out"),
           "--no-progress"]
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, job = time.time() + 240, None
    while time.time() < deadline and job is None and p.poll() is None:
        for f in runs.glob("*/status.json"):
            try:
                job = json.loads(f.read_text()).get("slurm_job_id") or job
            except ValueError:
                pass
        time.sleep(0.2)
    assert job, "the runner never submitted its array"
    array = job.split("_")[0]
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert f"of Slurm array {array} (scancel)" in err, err  # it says what it cancelled
    deadline = time.time() + 60
    while time.time() < deadline:  # 9 one-CPU tasks on 2 CPUs: most were still queued or running
        left = subprocess.run(["squeue", "-h", "-j", array], capture_output=True, text=True).stdout.strip()
        if not left:
            break
        time.sleep(1)
    assert not left, f"tasks of array {array} still in the queue after the runner was stopped:\n{left}"
