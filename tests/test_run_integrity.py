"""Damaged run files (issue 14 section 2): every file of a finished run that an artifact reads is
verified; damage is reported with the file, the reason and the fix, and reading raises a typed
error; a resume checks that the checkpoint belongs to the run and that the metrics reach it."""

import shutil

import numpy as np
import pandas as pd
import pytest

from embedding_norms.config import RunConfig
from embedding_norms.integrity import DamagedRunError
from embedding_norms.runs import RunStore
from embedding_norms.train import train
from reproduce.artifact import RunSpec
from reproduce.context import RunHandle

TINY = {"model": {"backbone": "resnet18_narrow", "width": 4, "projector_hidden_dim": 16, "projector_out_dim": 16},
        "data": {"standin": True, "train_size": 128, "test_size": 50},
        "optim": {"batch_size": 32},
        "train": {"epochs": 2, "eval_epochs": [0, 1, 2], "save_embeddings_epochs": [2], "probe_size": 50}}


def tiny(seed=0):
    return RunConfig.load("simclr", "smoke", {**TINY, "train": {**TINY["train"], "seed": seed}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run A and one finished run B (another seed), trained once for the module."""
    root = tmp_path_factory.mktemp("ref") / "runs"
    store = RunStore(root)
    for seed in (0, 1):
        assert train(tiny(seed), store, progress=False).state == "done"
    return root


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the store: (store, cfg of run A, reference metrics of A)."""
    shutil.copytree(trained, tmp_path / "runs")
    store = RunStore(tmp_path / "runs")
    cfg = tiny(0)
    assert store.verify(cfg) == []
    return store, cfg, store.metrics(cfg)


def _same_metrics(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = [c for c in a.columns if c != "epoch_seconds"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def _one_problem(store, cfg, file_name, reason_part):
    (p,) = store.verify(cfg)
    assert p.file.endswith(file_name) and reason_part in p.reason
    assert str(store.path(cfg)) in p.fix and "retrain" in p.fix
    return p


def test_random_bytes_in_metrics(run):
    store, cfg, _ = run
    (store.path(cfg) / "metrics.csv").write_bytes(np.random.default_rng(0).bytes(300) + b"\xff\xfe")
    _one_problem(store, cfg, "metrics.csv", "not a readable CSV")
    with pytest.raises(DamagedRunError, match="metrics.csv") as exc:
        store.metrics(cfg)
    assert "retrain" in exc.value.fix
    handle = RunHandle(RunSpec("A", cfg), store)  # the artifact side: not usable, described without crashing
    assert handle.status.state == "damaged" and not handle.usable
    assert handle.describe()["status"].startswith("damaged")


@pytest.mark.parametrize("damage", ["truncate", "delete", "lose_knn"])
def test_incomplete_metrics_of_a_finished_run(run, damage):
    store, cfg, ref = run
    f = store.path(cfg) / "metrics.csv"
    if damage == "truncate":
        ref.iloc[:-1].to_csv(f, index=False)
        _one_problem(store, cfg, "metrics.csv", "epochs [2] missing")
    elif damage == "delete":
        f.unlink()
        _one_problem(store, cfg, "metrics.csv", "missing or empty")
    else:
        ref.assign(knn_acc=ref.knn_acc.where(ref.epoch != 1)).to_csv(f, index=False)
        _one_problem(store, cfg, "metrics.csv", "kNN accuracy missing at evaluation epoch(s) [1]")


@pytest.mark.parametrize("damage", ["truncate", "flip", "rewrite"])
def test_damaged_embeddings(run, damage):
    store, cfg, _ = run
    f = store.path(cfg) / "embeddings" / "epoch_0002.npz"
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        b = bytearray(data)
        b[len(b) // 3] ^= 0x01
        f.write_bytes(bytes(b))
    else:  # a valid archive with other values: only the checksum tells
        arrays = dict(np.load(f))
        arrays["test/z_norm"] = arrays["test/z_norm"] * 2
        np.savez(f, **arrays)
        assert np.load(f)["test/z_norm"].shape == arrays["test/z_norm"].shape  # it reads fine
    _one_problem(store, cfg, "epoch_0002.npz", "checksum mismatch")
    with pytest.raises(DamagedRunError, match="epoch_0002.npz.*checksum mismatch.*retrain"):
        store.embeddings(cfg)


def test_missing_embeddings_checksum(run):
    store, cfg, _ = run
    (store.path(cfg) / "embeddings" / "epoch_0002.npz.sha256").unlink()
    _one_problem(store, cfg, "epoch_0002.npz", "no checksum recorded")


def test_metrics_shorter_than_checkpoint_resumes_from_a_consistent_point(run):
    store, cfg, ref = run
    ref[ref.epoch <= 1].to_csv(store.path(cfg) / "metrics.csv", index=False)  # latest.pt is at epoch 2
    store.set_status(cfg, "running", "simulated interruption", epoch=2)
    assert train(cfg, store, progress=False).state == "done"
    log = (store.path(cfg) / "train.log").read_text()
    assert "skipped checkpoint latest.pt (epoch 2): it is ahead of metrics.csv" in log
    assert "resumed from epoch_0001.pt" in log
    _same_metrics(ref, store.metrics(cfg))  # epoch 2 and its kNN are back, bit-identical
    assert store.verify(cfg) == []


def test_foreign_checkpoint_is_refused(run):
    store, cfg, ref = run
    other = tiny(1)
    ck, ck_other = store.path(cfg) / "checkpoints", store.path(other) / "checkpoints"
    for f in ck.glob("epoch_*"):  # only the foreign checkpoint is left to resume from
        f.unlink()
    for suffix in (".pt", ".sha256"):  # another run's checkpoint with its matching checksum
        shutil.copy(ck_other / f"latest{suffix}", ck / f"latest{suffix}")
    store.set_status(cfg, "running", "simulated interruption", epoch=2)
    assert train(cfg, store, progress=False).state == "done"
    log = (store.path(cfg) / "train.log").read_text()
    assert f"belongs to another run (config hash {other.hash()}, this run {cfg.hash()})" in log
    assert "resumed from" not in log  # retrained from scratch
    _same_metrics(ref, store.metrics(cfg))
