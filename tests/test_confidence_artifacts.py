"""Artifacts fig4_norm_confidence and fig_seen_vs_unseen on fabricated run stores.

No model is trained: each run the artifact declares gets a ``done`` status and an embeddings
file whose norms, labels and neighbourhoods are built so that the claim checks must come out a
known way (e.g. larger norms for points that sit clearly inside their class -> positive Spearman
rho of kNN accuracy against the norm bucket).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from embedding_norms.config import RunConfig
from embedding_norms.report import write_result
from embedding_norms.runs import RunStore
from reproduce.common import OutputDirs, Plan, timed_build
from reproduce.fig4_norm_confidence import ARTIFACT as FIG4
from reproduce.fig_seen_vs_unseen import ARTIFACT as SEEN


# ----------------------------------------------------------------------------- fabrication
def _split(rng, labels: np.ndarray, clarity: np.ndarray, indices: np.ndarray, norm: np.ndarray,
           dim: int = 16) -> dict[str, np.ndarray]:
    """Embeddings of one split: direction = (clarity) * own-class axis + (1 - clarity) * another
    class's axis (+ noise), scaled to ``norm``. Low clarity -> the point sits with another class."""
    n = len(labels)
    c = int(labels.max()) + 1
    axes = np.eye(dim)[:c]
    other = (labels + 1 + rng.integers(0, c - 1, n)) % c
    d = clarity[:, None] * axes[labels] + (1 - clarity[:, None]) * axes[other] + 0.05 * rng.normal(size=(n, dim))
    emb = d / np.linalg.norm(d, axis=1, keepdims=True) * norm[:, None]
    emb16 = emb.astype(np.float16)
    norm16 = np.linalg.norm(emb16.astype(np.float32), axis=1).astype(np.float32)
    # projector output z = the loss embedding here (as for SimCLR); the predictor case is tested below
    return {"emb": emb16, "emb_norm": norm16, "z": emb16, "z_norm": norm16, "h_norm": norm.astype(np.float32),
            "labels": labels.astype(np.int64), "indices": indices.astype(np.int64)}


def _fabricate(store: RunStore, cfg: RunConfig, splits: dict[str, dict[str, np.ndarray]]) -> None:
    store.ensure(cfg)
    d = store.path(cfg) / "embeddings"
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / f"epoch_{cfg.train.epochs:04d}.npz",
             **{f"{s}/{k}": v for s, fields in splits.items() for k, v in fields.items()})
    store.set_status(cfg, "done", epoch=cfg.train.epochs)


def _knn_splits(rng, n: int, sign: float) -> dict[str, dict[str, np.ndarray]]:
    """Train/test splits where the norm rises (sign=+1) or falls (sign=-1) with clarity."""
    labels = np.repeat(np.arange(4), n // 4)
    out = {}
    for s in ("train", "train_aug", "test"):
        clarity = rng.uniform(0.2, 1.0, len(labels))
        norm = 5 + sign * 4 * (clarity - 0.6) + 0.1 * rng.normal(size=len(labels))
        out[s] = _split(rng, labels, clarity, np.arange(len(labels)), norm)
    return out


def _checks(result, claim: str) -> list:
    return [c for c in result.checks if c.claim == claim]


# ----------------------------------------------------------------------------- fig4
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_fig4_standin_knn_trend_follows_fabricated_norms(tmp_path, sign, monkeypatch):
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan = Plan("smoke", data_dir=None)        # no data: smoke runs are stand-ins, human panels skipped
    store = RunStore(tmp_path / "runs")
    specs = FIG4.runs(plan)
    assert [s.label for s in specs] == ["simclr", "simsiam"] and all(s.cfg.data.standin for s in specs)
    rng = np.random.default_rng(0)
    for s in specs:
        _fabricate(store, s.cfg, _knn_splits(rng, 600, sign))
    res = timed_build(FIG4, plan, store, OutputDirs(tmp_path / "out"))
    assert res.error == "", res.error
    assert res.status == "partial"                     # human-label panels skipped
    knn = _checks(res, "norm-knn")
    assert len(knn) == 4                               # 2 methods x 2 train views
    assert all(c.holds is (sign > 0) for c in knn), [(c.test, c.value) for c in knn]
    assert all((c.value > 0.5) if sign > 0 else (c.value < -0.5) for c in knn)
    human = _checks(res, "norm-human")
    assert human and all(c.holds is None for c in human)
    assert any("stand-in" in s["reason"] for s in res.skipped)
    out = tmp_path / "out"
    for f in ("fig4_norm_confidence.png", "fig4_norm_confidence.pdf", "fig4_norm_confidence_unaugmented.png"):
        assert (out / "figures" / f).is_file()
    buckets = pd.read_csv(out / "tables" / "fig4_norm_confidence_buckets.csv")
    assert set(buckets.panel) == {"knn"} and (buckets["count"] >= 10).all()
    assert set(buckets.view) == {"augmented", "unaugmented"}
    write_result(res, out / "results")
    data = json.loads((out / "results" / "fig4_norm_confidence.json").read_text())
    assert data["numbers"]["train_view_shown"] == "augmented"


def test_fig4_uses_the_projector_embedding_not_the_predictor_output(tmp_path, monkeypatch):
    """SimSiam store where the projector norms rise with clarity but the predictor output p (same
    directions) has the reciprocal norms: the default (PAPER.md) must see the rise."""
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan = Plan("smoke", data_dir=None)
    store = RunStore(tmp_path / "runs")
    rng = np.random.default_rng(1)
    for s in FIG4.runs(plan):
        splits = _knn_splits(rng, 600, +1.0)
        if s.label == "simsiam":
            for f in splits.values():
                z = f["z"].astype(np.float32)
                p = z / (np.linalg.norm(z, axis=1, keepdims=True) ** 2)      # norm 1/|z|: reversed trend
                f["emb"] = p.astype(np.float16)
                f["emb_norm"] = np.linalg.norm(f["emb"].astype(np.float32), axis=1).astype(np.float32)
        _fabricate(store, s.cfg, splits)
    res = timed_build(FIG4, plan, store, OutputDirs(tmp_path / "out"))
    assert res.error == "", res.error
    siam = [c for c in _checks(res, "norm-knn") if c.test.startswith("SimSiam")]
    assert len(siam) == 2 and all(c.holds is True and c.value > 0.5 for c in siam), [(c.test, c.value) for c in siam]


def test_fig4_human_panels_on_real_labels(tmp_path, data_dir):
    plan = Plan("smoke", data_dir=str(data_dir))
    store = RunStore(tmp_path / "runs")
    specs = FIG4.runs(plan)
    for s in specs:  # the shared default runs, exactly
        assert not s.cfg.data.standin and s.cfg.hash() == RunConfig.load(s.label, "smoke", {}).hash()
    n10 = np.load(data_dir / "cifar10n_labels.npz")
    clean, aggre = n10["clean_label"], n10["aggre_label"]
    probs = np.load(data_dir / "cifar10h-probs.npy")
    test_labels = np.load(data_dir / "cifar10_test_set_original_labels.npy").astype(np.int64)
    rng = np.random.default_rng(0)
    # train: 300 images where the human label is wrong get small norms, 300 where it is right large ones
    idx = np.sort(np.r_[rng.choice(np.flatnonzero(aggre != clean), 300, replace=False),
                        rng.choice(np.flatnonzero(aggre == clean), 300, replace=False)])
    x = np.where(aggre[idx] == clean[idx], rng.uniform(0.35, 1.0, 600), rng.uniform(0.0, 0.65, 600))
    train = _split(rng, clean[idx], 0.3 + 0.7 * x, idx, 1 + 9 * x)
    # test: norm falls with the CIFAR-10H entropy
    tidx = np.sort(rng.choice(10000, 500, replace=False))
    ent = -(probs[tidx] * np.log2(np.where(probs[tidx] > 0, probs[tidx], 1))).sum(1)
    tnorm = 10 - 8 * ent / ent.max() + 0.2 * rng.normal(size=500)
    test = _split(rng, test_labels[tidx], np.full(500, 0.9), tidx, tnorm)
    for s in specs:
        _fabricate(store, s.cfg, {"train": train, "train_aug": train, "test": test})
    res = timed_build(FIG4, plan, store, OutputDirs(tmp_path / "out"))
    assert res.error == "", res.error
    assert res.status == "built" and not res.skipped
    human = _checks(res, "norm-human")
    agreement = [c for c in human if "agreement" in c.test]
    entropy = [c for c in human if "entropy" in c.test]
    assert len(agreement) == 4 and len(entropy) == 2
    assert all(c.holds and c.value > 0.5 for c in agreement), [(c.test, c.value) for c in agreement]
    assert all(c.holds and c.value < -0.5 for c in entropy), [(c.test, c.value) for c in entropy]
    buckets = pd.read_csv(tmp_path / "out" / "tables" / "fig4_norm_confidence_buckets.csv")
    assert set(buckets.panel) == {"knn", "agreement", "entropy"}
    agree_rows = buckets[(buckets.panel == "agreement") & (buckets.method == "simclr") & (buckets.view == "augmented")]
    # independent recomputation of one bucket: the lowest normalised-norm bucket
    xn = (train["emb_norm"] - train["emb_norm"].min()) / (train["emb_norm"].max() - train["emb_norm"].min())
    first = xn < 0.05
    assert agree_rows.iloc[0]["count"] == first.sum()
    assert agree_rows.iloc[0]["value"] == pytest.approx(100 * (aggre[idx][first] == clean[idx][first]).mean())


def test_fig4_bad_human_files_skip_panels_with_reason(tmp_path, data_dir):
    bad = tmp_path / "data"
    bad.mkdir()
    os.symlink(data_dir / "cifar10_jpeg.npz", bad / "cifar10_jpeg.npz")     # images present
    np.save(bad / "cifar10h-probs.npy", np.full((9999, 10), 0.1))              # wrong length
    # CIFAR-10N missing altogether
    plan = Plan("smoke", data_dir=str(bad))
    store = RunStore(tmp_path / "runs")
    specs = FIG4.runs(plan)
    assert not any(s.cfg.data.standin for s in specs)
    rng = np.random.default_rng(1)
    for s in specs:
        _fabricate(store, s.cfg, _knn_splits(rng, 400, 1.0))
    res = timed_build(FIG4, plan, store, OutputDirs(tmp_path / "out"))
    assert res.error == "", res.error
    assert res.status == "partial"
    reasons = {s["part"]: s["reason"] for s in res.skipped}
    r10h = next(r for p, r in reasons.items() if "cifar10h" in p)
    assert "cifar10h-probs.npy" in r10h and "(10000, 10)" in r10h
    r10n = next(r for p, r in reasons.items() if "cifar10n" in p)
    assert "cifar10n_labels.npz" in r10n and "(50000,)" in r10n
    assert all(c.holds is None for c in _checks(res, "norm-human"))
    assert all(c.holds for c in _checks(res, "norm-knn"))
    buckets = pd.read_csv(tmp_path / "out" / "tables" / "fig4_norm_confidence_buckets.csv")
    assert set(buckets.panel) == {"knn"}                 # nothing drawn on unusable labels


def test_fig4_missing_run_is_skipped(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    res = timed_build(FIG4, Plan("smoke"), RunStore(tmp_path / "runs"), OutputDirs(tmp_path / "out"))
    assert res.error == "" and res.status == "partial"
    assert any("pending" in s["reason"] for s in res.skipped)
    assert not res.checks or all(c.holds is None for c in res.checks)


# ----------------------------------------------------------------------------- seen vs unseen
@pytest.mark.parametrize("order", ["paper", "reversed"])
def test_seen_vs_unseen_checks_follow_fabricated_norms(tmp_path, order, monkeypatch):
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan = Plan("smoke", data_dir=None)
    store = RunStore(tmp_path / "runs")
    specs = SEEN.runs(plan)
    assert [s.label for s in specs] == ["simclr-holdout", "simsiam-holdout"]
    for s in specs:
        assert s.cfg.data.classes == (0, 1, 2, 3, 4) and s.cfg.eval.novel == "heldout"
    rng = np.random.default_rng(2)
    means = {"train": 10.0, "test": 9.0, "novel": 7.5}
    if order == "reversed":
        means = {"train": 7.5, "test": 9.0, "novel": 10.0}
    for s in specs:
        splits = {}
        for name, n in (("train", 400), ("train_aug", 400), ("test", 200), ("novel", 200)):
            lab = np.repeat(np.arange(5), n // 5)
            norm = np.abs(rng.normal(means.get(name, means["train"]), 1.0, n))
            splits[name] = _split(rng, lab, np.full(n, 0.8), np.arange(n), norm)
        _fabricate(store, s.cfg, splits)
    res = timed_build(SEEN, plan, store, OutputDirs(tmp_path / "out"))
    assert res.error == "", res.error
    assert res.status == "built"
    checks = _checks(res, "seen-unseen")
    assert len(checks) == 8                               # 2 methods x (2 mean orders + 2 AUROCs)
    assert all(c.holds is (order == "paper") for c in checks), [(c.test, c.value) for c in checks]
    auroc = pd.read_csv(tmp_path / "out" / "tables" / "fig_seen_vs_unseen.csv")
    assert set(auroc.comparison) == {"test vs train", "novel vs test", "novel vs train"}
    assert ((auroc.ci_low <= auroc.auroc) & (auroc.auroc <= auroc.ci_high)).all()
    if order == "paper":
        assert (auroc.auroc > 0.5).all()
    assert (tmp_path / "out" / "figures" / "fig_seen_vs_unseen.png").is_file()
    norms = pd.read_csv(tmp_path / "out" / "tables" / "fig_seen_vs_unseen_norms.csv")
    assert len(norms) == 6


def test_seen_vs_unseen_paper_design_declares_cifar100_novel(tmp_path, data_dir):
    specs = SEEN.runs(Plan("paper", data_dir=str(data_dir)))
    assert [s.label for s in specs] == ["simclr-novel-cifar100", "simsiam-novel-cifar100"]
    # CIFAR-100 images are not available offline: the runs are skipped with the reason, and the build says so
    for s in specs:
        assert s.cfg is None and "cifar100" in s.skipped
    res = timed_build(SEEN, Plan("paper", data_dir=str(data_dir)), RunStore(tmp_path / "runs"),
                      OutputDirs(tmp_path / "out"))
    assert res.error == "" and res.status == "partial" and not res.checks
    assert all("cifar100" in s["reason"] for s in res.skipped)


# ----------------------------------------------------------------------------- which embedding
def test_embedding_of_picks_projector_or_loss_embedding():
    from embedding_norms.runs import embedding_of

    z = np.array([[3.0, 4.0], [0.0, 2.0]], np.float16)        # projector output, norms 5, 2
    p = np.array([[1.0, 0.0], [0.0, 1.0]], np.float16)        # predictor output, norms 1, 1
    with_pred = {"train/emb": p, "train/emb_norm": np.array([1, 1], np.float32), "train/z": z,
                 "train/z_norm": np.array([5, 2], np.float32)}
    v, n = embedding_of(with_pred, "train")                   # default: projector (PAPER.md)
    assert v is z and n.tolist() == [5, 2]
    v, n = embedding_of(with_pred, "train", "loss")
    assert v is p and n.tolist() == [1, 1]
    no_pred = {"train/emb": z, "train/emb_norm": np.array([5, 2], np.float32),
               "train/z_norm": np.array([5, 2], np.float32)}  # SimCLR: the loss embedding is z
    v, n = embedding_of(no_pred, "train")
    assert v is z and n.tolist() == [5, 2]
    old = {"train/emb": p, "train/emb_norm": np.array([1, 1], np.float32),
           "train/z_norm": np.array([5, 2], np.float32)}      # predictor run saved without z vectors
    with pytest.raises(KeyError, match="retrains it"):
        embedding_of(old, "train")
    assert embedding_of(old, "train", vectors=False)[1].tolist() == [5, 2]   # norms of z are always saved
    with pytest.raises(KeyError, match="no test embeddings"):
        embedding_of(with_pred, "test")
    with pytest.raises(ValueError, match="unknown embedding"):
        embedding_of(with_pred, "train", "backbone")
