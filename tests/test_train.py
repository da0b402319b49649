"""Training core: schedule, records, resume after SIGKILL, corrupt checkpoints, divergence,
kNN and linear probe, run-store locking."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from embedding_norms.config import OptimConfig, RunConfig
from embedding_norms.evaluate import knn_predict, linear_probe
from embedding_norms.models import SSLModel
from embedding_norms.runs import RunLock, RunLocked, RunStore
from embedding_norms.train import learning_rate, load_checkpoint, schedule_value, train

TINY = {"model": {"backbone": "resnet18_narrow", "width": 4, "projector_hidden_dim": 16, "projector_out_dim": 16},
        "data": {"standin": True, "train_size": 256, "test_size": 100},
        "optim": {"batch_size": 32},
        "train": {"epochs": 3, "eval_epochs": [0, 3], "save_embeddings_epochs": [3], "probe_size": 50}}


def tiny(method="simclr", **sections):
    ov = {k: dict(v) for k, v in TINY.items()}
    if method != "simclr":
        ov["model"]["predictor_hidden_dim"] = 8
    for k, v in sections.items():
        ov.setdefault(k, {}).update(v)
    return RunConfig.load(method, "smoke", ov)


# ----------------------------------------------------------------- schedule
def test_released_schedule_values_by_hand():
    o = OptimConfig(lr=0.6, warmup_epochs=10, schedule_epochs=512, final_lr=1e-3)
    spe = 100
    assert schedule_value(0, spe, o, 512) == 0.0
    assert schedule_value(500, spe, o, 512) == pytest.approx(0.6 * 500 / 1000)
    step = 20_000  # after warm-up: cosine evaluated from step 0 over 512 * 100 steps
    expected = 1e-3 + (0.6 - 1e-3) * 0.5 * (1 + math.cos(math.pi * step / 51_200))
    assert schedule_value(step, spe, o, 512) == pytest.approx(expected)
    # released quirk: the value multiplies lr -> peak lr**2
    assert learning_rate(1000, spe, o, 512) == pytest.approx(0.6 * 0.6 * 1000 / 1000 * (1000 / 1000))
    assert learning_rate(1000, spe, OptimConfig(lr=0.6, lr_schedule="intended"), 512) == pytest.approx(0.6)


def test_accumulation_quirk_stretches_schedule():
    o = OptimConfig(lr=0.2, warmup_epochs=10, accumulation_steps=8, accumulation="released", lr_schedule="intended")
    # 80 micro-batches per epoch -> the released schedule counts 80 steps per epoch, but only
    # 10 optimizer steps happen per epoch: after 10 epochs (100 optimizer steps) warm-up is 1/8 done.
    assert learning_rate(100, 80, o, 512) == pytest.approx(0.2 * 100 / 800)
    o2 = OptimConfig(lr=0.2, warmup_epochs=10, accumulation_steps=8, accumulation="intended", lr_schedule="intended")
    assert learning_rate(100, 80, o2, 512) == pytest.approx(0.2)


# ----------------------------------------------------------------- kNN / linear probe
def test_weighted_knn_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(60, 5, generator=g)
    labels = torch.randint(0, 4, (60,), generator=g)
    query = torch.randn(15, 5, generator=g)
    k, t = 7, 0.1
    pred = knn_predict(query, bank, labels, 4, k=k, temperature=t)
    for i in range(15):
        sims = [float(F.cosine_similarity(query[i], bank[j], dim=0)) for j in range(60)]
        top = sorted(range(60), key=lambda j: -sims[j])[:k]
        votes = [0.0] * 4
        for j in top:
            votes[int(labels[j])] += math.exp(sims[j] / t)
        assert int(pred[i]) == int(np.argmax(votes))


def test_linear_probe_leaves_backbone_untouched():
    torch.manual_seed(0)
    model = SSLModel(tiny())
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    imgs = (torch.rand(40, 3, 32, 32) * 255).to(torch.uint8)
    labels = torch.arange(40) % 2
    res = linear_probe(model, imgs, labels, imgs, labels, torch.device("cpu"), max_iter=20)
    assert 0 <= res["test_acc"] <= 100
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k  # weights and BatchNorm running statistics unchanged
    assert model.training  # mode restored


# ----------------------------------------------------------------- training runs
def test_smoke_run_on_real_cifar10_records_norm_growth(data_dir, tmp_path):
    cfg = RunConfig.load("simclr", "smoke", {"train": {"epochs": 2, "eval_epochs": [0, 2], "save_embeddings_epochs": [2]}})
    store = RunStore(tmp_path / "runs")
    st = train(cfg, store, data_dir=str(data_dir), progress=False)
    assert st.state == "done", st.reason
    m = store.metrics(cfg)
    assert list(m.epoch) == [0, 1, 2]
    for col in ["loss", "lr", "knn_acc", "z_norm_mean", "z_norm_median", "z_norm_q10", "z_norm_q90", "h_norm_mean"]:
        assert col in m.columns
    assert not any(c.startswith("p_norm") or c.startswith("emb") for c in m.columns)  # SimCLR has no predictor
    assert m.z_norm_mean.iloc[-1] > m.z_norm_mean.iloc[0]
    assert not math.isnan(m.knn_acc.iloc[-1]) and not math.isnan(m.knn_acc.iloc[0])
    cn = store.class_norms(cfg)
    assert set(cn["class"]) == set(range(10)) and set(cn.epoch) == {0, 1, 2}
    emb = store.embeddings(cfg)
    for split in ("train", "train_aug", "test"):
        assert emb[f"{split}/z"].shape[0] == emb[f"{split}/labels"].shape[0]
        assert np.allclose(np.linalg.norm(emb[f"{split}/z"].astype(np.float32), axis=1), emb[f"{split}/z_norm"],
                           rtol=2e-3)
    d = store.path(cfg)
    assert (d / "checkpoints" / "epoch_0001.pt").exists() and (d / "checkpoints" / "epoch_0002.pt").exists()
    assert (d / "config.yaml").exists()
    # a second call trains nothing
    t0 = time.time()
    assert train(cfg, store, data_dir=str(data_dir), progress=False).state == "done"
    assert time.time() - t0 < 2


def test_lock_prevents_second_trainer(tmp_path):
    cfg = tiny()
    store = RunStore(tmp_path / "runs")
    d = store.ensure(cfg)
    with RunLock(d):
        with pytest.raises(RunLocked):
            train(cfg, store, progress=False)
        assert store.status(cfg).locked


def _train_cmd(cfg_path: Path, runs: Path) -> list[str]:
    code = ("import sys, yaml, torch; torch.set_num_threads(1);"
            "from embedding_norms.config import from_dict; from embedding_norms.runs import RunStore;"
            "from embedding_norms.train import train;"
            f"cfg = from_dict(yaml.safe_load(open({str(cfg_path)!r}))); "
            f"st = train(cfg, RunStore({str(runs)!r}), progress=False); print(st.state)")
    return [sys.executable, "-c", code]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    import yaml

    cfg = tiny(train={"epochs": 4, "eval_epochs": [0, 4], "save_embeddings_epochs": [4]})
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict()))
    ref_runs, cut_runs = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(_train_cmd(cfg_path, ref_runs), check=True, capture_output=True)

    proc = subprocess.Popen(_train_cmd(cfg_path, cut_runs), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = RunStore(cut_runs).path(cfg) / "checkpoints" / "epoch_0002.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # now inside epoch 3
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = RunStore(cut_runs)
    assert store.status(cfg).state == "pending"  # 'running' with a free lock = interrupted
    assert store.metrics(cfg).epoch.max() < 4
    kept_seconds = load_checkpoint(ckpt)["train_seconds"]  # time of the first segment up to epoch 2
    out = subprocess.run(_train_cmd(cfg_path, cut_runs), check=True, capture_output=True, text=True)
    assert out.stdout.strip().endswith("done")
    a, b = RunStore(ref_runs).metrics(cfg), store.metrics(cfg)
    cols = [c for c in a.columns if c != "epoch_seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    # the run's training time counts the kept epochs of both segments, not only the last one
    resumed_epochs = float(b[b.epoch > 2].epoch_seconds.sum())
    assert kept_seconds > 0 and store.status(cfg).train_seconds >= kept_seconds + resumed_epochs - 0.05


def test_saving_embeddings_does_not_change_training(tmp_path):
    """Runs that differ only in the epochs that save embeddings (eval mode, own generator) train
    the same weights: equal metrics, and equal saved embeddings at the epoch both save."""
    a = tiny(train={"epochs": 2, "eval_epochs": [0, 1, 2], "save_embeddings_epochs": [0, 1, 2]})
    b = tiny(train={"epochs": 2, "eval_epochs": [0, 1, 2], "save_embeddings_epochs": [2]})
    assert a.hash() != b.hash()
    store = RunStore(tmp_path)
    assert train(a, store, progress=False).state == train(b, store, progress=False).state == "done"
    ma, mb = store.metrics(a), store.metrics(b)
    cols = [c for c in ma.columns if c != "epoch_seconds"]
    pd.testing.assert_frame_equal(ma[cols], mb[cols])
    ea, eb = store.embeddings(a, 2), store.embeddings(b, 2)
    assert set(ea) == set(eb) and all(np.array_equal(ea[k], eb[k]) for k in ea)
    assert sorted(int(f.stem.split("_")[1]) for f in (store.path(a) / "embeddings").glob("epoch_*.npz")) == [0, 1, 2]


def test_failed_run_is_not_final_and_is_retried(tmp_path):
    from embedding_norms.runs import RunStatus

    assert not RunStatus("failed").finished and RunStatus("done").finished and RunStatus("diverged").finished
    cfg = tiny(train={"epochs": 1, "eval_epochs": [1], "save_embeddings_epochs": [1]})
    store = RunStore(tmp_path / "runs")
    store.ensure(cfg)
    store.set_status(cfg, "failed", "DataError: simulated (fixed since)")
    st = train(cfg, store, progress=False)
    assert st.state == "done" and store.metrics(cfg).epoch.tolist() == [0, 1]


def test_device_is_checked_before_anything(monkeypatch):
    from embedding_norms.config import ConfigError
    from embedding_norms.train import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None).type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="no CUDA device is visible"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path):
    cfg = tiny(train={"epochs": 2, "eval_epochs": [0, 2], "save_embeddings_epochs": [2]})
    store = RunStore(tmp_path / "runs")
    assert train(cfg, store, progress=False).state == "done"
    reference = store.metrics(cfg)
    ck = store.path(cfg) / "checkpoints"
    for name in ("latest.pt", "epoch_0002.pt"):  # corrupt the two newest checkpoints
        data = bytearray((ck / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (ck / name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(ck / "latest.pt")
    store.set_status(cfg, "running", "simulated interruption", epoch=2)
    st = train(cfg, store, progress=False)
    assert st.state == "done"
    log = (store.path(cfg) / "train.log").read_text()
    assert "epoch_0002.pt" in log and "resumed from epoch_0001.pt" in log
    cols = [c for c in reference.columns if c != "epoch_seconds"]
    pd.testing.assert_frame_equal(reference[cols], store.metrics(cfg)[cols])


def test_nan_loss_marks_run_diverged(tmp_path):
    cfg = tiny(optim={"lr": 1e30, "lr_schedule": "intended", "warmup_epochs": 0}, norm={"gradscale_power": 1.0})
    store = RunStore(tmp_path / "runs")
    st = train(cfg, store, progress=False)
    assert st.state == "diverged"
    assert "loss became" in st.reason and "epoch" in st.reason
    assert len(store.metrics(cfg)) >= 1  # what was recorded before stays readable


def test_too_small_training_set_fails_the_run_before_training(tmp_path):
    cfg = tiny(optim={"batch_size": 128}, data={"imbalance": "exponential"})  # 256 -> ~70 images after imbalance
    store = RunStore(tmp_path / "runs")
    st = train(cfg, store, progress=False)
    assert st.state == "failed" and "ConfigError" in st.reason and "optim.batch_size" in st.reason
    assert store.metrics(cfg).empty  # nothing was trained
