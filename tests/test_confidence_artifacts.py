"""Artifacts fig4_norm_confidence and fig_seen_vs_unseen on hand-made runs (new artifact shape).

No model is trained: each run handle serves embeddings whose norms, labels and neighbourhoods
are built so that the claim checks must come out a known way (e.g. larger norms for points that
sit clearly inside their class -> positive Spearman rho of kNN accuracy against the norm bucket).
Arrays use the names of issue 11 (``<split>/z``, ``z_norm``, ``p``, ``p_norm``, ``h_norm``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import reproduce.fig4_norm_confidence as fig4
import reproduce.fig_seen_vs_unseen as seen
from embedding_norms.config import RunConfig
from embedding_norms.runs import RunStore
from reproduce.artifact import Artifact, Plan, plan_artifact
from reproduce.context import OutputDirs, build


# ----------------------------------------------------------------------------- fabrication
def _split(rng, labels, clarity, indices, norm, dim: int = 16, p_norm=None) -> dict[str, np.ndarray]:
    """One split: direction = clarity * own-class axis + (1 - clarity) * another class's axis
    (+ noise), scaled to ``norm`` (z); with ``p_norm`` also a predictor output p (same directions)."""
    n, c = len(labels), int(labels.max()) + 1
    axes = np.eye(dim)[:c]
    other = (labels + 1 + rng.integers(0, c - 1, n)) % c
    d = clarity[:, None] * axes[labels] + (1 - clarity[:, None]) * axes[other] + 0.05 * rng.normal(size=(n, dim))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    out = {"labels": labels.astype(np.int64), "indices": indices.astype(np.int64), "h_norm": norm.astype(np.float32)}
    for name, nv in (("z", norm), ("p", p_norm)):
        if nv is not None:
            v = (d * nv[:, None]).astype(np.float16)
            out[name], out[f"{name}_norm"] = v, np.linalg.norm(v.astype(np.float32), axis=1).astype(np.float32)
    return out


def _flat(splits: dict) -> dict[str, np.ndarray]:
    return {f"{s}/{k}": v for s, f in splits.items() for k, v in f.items()}


class FakeRun:
    """A finished run handle serving hand-made embeddings per epoch; its kNN accuracy rises from 20 %
    at epoch 0 to ``20 + gain`` at the end (the learning gate reads it)."""

    def __init__(self, spec, by_epoch: dict[int, dict], usable: bool = True, gain: float = 20.0):
        self.spec, self.cfg, self.by_epoch, self.usable, self.label = spec, spec.cfg, by_epoch, usable, spec.label
        self.gain = gain

    def metrics(self):
        return pd.DataFrame({"epoch": [0, self.cfg.train.epochs], "knn_acc": [20.0, 20.0 + self.gain]})

    def embeddings(self, epoch=None):
        if not self.by_epoch or (epoch is not None and epoch not in self.by_epoch):
            raise FileNotFoundError(f"no embeddings at epoch {epoch}")
        return self.by_epoch[max(self.by_epoch) if epoch is None else epoch]

    def metrics(self):
        """kNN 20 % at epoch 0 and ``20 + gain`` at the last epoch (``gain`` 10 unless set)."""
        last = self.cfg.train.epochs
        return pd.DataFrame({"epoch": [0, last], "knn_acc": [20.0, 20.0 + getattr(self, "gain", 10.0)]})


def _plan(profile: str, seeds: int, data_dir=None) -> Plan:
    return Plan(profile, data_dir=data_dir, n_seeds=seeds)


def _knn_splits(rng, n: int, sign: float, predictor: bool = False, views=("train", "train_aug", "test")):
    """Splits where the norm of z rises (sign=+1) or falls (sign=-1) with clarity; p has 1/|z|."""
    labels = np.repeat(np.arange(4), n // 4)
    out = {}
    for s in views:
        clarity = rng.uniform(0.2, 1.0, len(labels))
        norm = 5 + sign * 4 * (clarity - 0.6) + 0.1 * rng.normal(size=len(labels))
        out[s] = _split(rng, labels, clarity, np.arange(len(labels)), norm, p_norm=1 / norm if predictor else None)
    return out


def _fig4_frames(plan, p, make, by_epoch=None):
    """frames of fig4 with a FakeRun per declared key; ``make(key) -> splits`` at the last epoch (2)
    only, or ``by_epoch(key, epoch) -> splits`` at every epoch the run saves."""
    specs = fig4.runs(plan, p)
    if by_epoch is None:
        return fig4.frames({k: FakeRun(s, {2: _flat(make(k))}) for k, s in specs.items()}, p)
    return fig4.frames({k: FakeRun(s, {e: _flat(by_epoch(k, e)) for e in s.cfg.train.save_embeddings_epochs})
                        for k, s in specs.items()}, p)


# ----------------------------------------------------------------------------- library pieces
def test_knn_self_vote_differs_from_leave_one_out_on_four_points():
    from embedding_norms.analysis import knn_loo_correct, knn_self_vote_correct

    # angles 0, 10, -12, 30 degrees; labels 0, 0, 1, 1; norms differ (the released variant normalises)
    ang = np.deg2rad([0.0, 10.0, -12.0, 30.0])
    norms = np.array([1.0, 5.0, 0.2, 3.0])
    x = np.c_[np.cos(ang), np.sin(ang)] * norms[:, None]
    y = np.array([0, 0, 1, 1])
    # by hand, k = 3. Self-vote: point 0 -> {0: self, 1, 2} = 0,0,1 -> 0 (right); point 1 -> {1, 0, 3} -> 0 (right);
    # point 2 -> {2, 0, 1} = 1,0,0 -> 0 (wrong); point 3 -> {3, 1, 0} = 1,0,0 -> 0 (wrong).
    assert knn_self_vote_correct(x, y, 3).tolist() == [True, True, False, False]
    # leave-one-out: point 0 -> {1, 2, 3} = 0,1,1 -> 1 (wrong); point 1 -> {0, 3, 2} -> 1 (wrong); 2, 3 -> 0 (wrong)
    assert knn_loo_correct(x, y, 3).tolist() == [False, False, False, False]
    with pytest.raises(ValueError, match="norm 0"):
        knn_self_vote_correct(np.r_[x, [[0.0, 0.0]]], np.r_[y, 0], 3)
    with pytest.raises(ValueError, match="k < N"):
        knn_self_vote_correct(x, y, 4)


def test_novelty_auroc_bootstrap_se_matches_hanley_mcneil():
    from embedding_norms.analysis import novelty_auroc

    rng = np.random.default_rng(0)
    s, u = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 300)
    r = novelty_auroc(s, u, n_boot=2000, seed=1)
    a = np.mean(u[:, None] < s[None, :])                        # P(norm_unseen < norm_seen), no ties
    assert r["auroc"] == pytest.approx(a)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)                    # Hanley & McNeil (1982)
    se_hm = math.sqrt((a * (1 - a) + (300 - 1) * (q1 - a * a) + (400 - 1) * (q2 - a * a)) / (300 * 400))
    assert r["se"] == pytest.approx(se_hm, rel=0.2)
    assert math.isnan(novelty_auroc(s, u, n_boot=0)["se"])


def test_embedding_of_reads_vectors_by_name():
    from embedding_norms.runs import embedding_of

    z = np.array([[3.0, 4.0], [0.0, 2.0]], np.float16)        # projector output, norms 5, 2
    p = np.array([[1.0, 0.0], [0.0, 1.0]], np.float16)        # predictor output, norms 1, 1
    with_pred = {"train/z": z, "train/z_norm": np.array([5, 2], np.float32), "train/p": p,
                 "train/p_norm": np.array([1, 1], np.float32)}
    v, n = embedding_of(with_pred, "train")                   # default: projector output z
    assert v is z and n.tolist() == [5, 2]
    v, n = embedding_of(with_pred, "train", "p")
    assert v is p and n.tolist() == [1, 1]
    simclr = {"train/z": z, "train/z_norm": np.array([5, 2], np.float32)}
    with pytest.raises(ValueError, match="no predictor"):
        embedding_of(simclr, "train", "p")
    assert embedding_of({"train/z_norm": np.array([5, 2], np.float32)}, "train", vectors=False)[1].tolist() == [5, 2]
    with pytest.raises(KeyError, match="only the norms"):
        embedding_of({"train/z_norm": np.array([5, 2], np.float32)}, "train")
    with pytest.raises(KeyError, match="old names"):
        embedding_of({"train/emb": p, "train/emb_norm": np.array([1, 1], np.float32)}, "train")
    with pytest.raises(KeyError, match="no test embeddings"):
        embedding_of(with_pred, "test")
    with pytest.raises(ValueError, match="unknown vector"):
        embedding_of(with_pred, "train", "h")


# ----------------------------------------------------------------------------- fig4
def test_fig4_runs_are_the_shared_base_runs_and_params_validate(data_dir):
    plan = _plan("smoke", 2, str(data_dir))
    specs = fig4.runs(plan, fig4.Params())
    assert set(specs) == {fig4.Key("cifar10", m, s) for m in ("simclr", "simsiam", "byol") for s in (0, 1)}
    for k, s in specs.items():      # the method's base run with only the seed changed, exactly
        # (plus the data source found here, which is part of every run's identity, and the norms of
        # every test image at epoch 0 and the last epoch, 2 in smoke)
        assert s.cfg.hash() == RunConfig.load(k.method, "smoke", {"train": {"seed": k.seed, "full_test_norms_epochs": [0, 2]},
                                                                  "data": {"source": s.cfg.data.source}}).hash()
    assert fig4.Params().views("imagenet100") == ["unaugmented", "augmented"]      # as released
    assert fig4.Params().views("cifar10") == ["augmented", "unaugmented"]
    assert fig4.Params(both_views=False, train_view="unaugmented").views("cifar10") == ["unaugmented"]
    assert fig4.Params().min_count_entropy == 10 and fig4.Params().min_count_agreement == 50
    with pytest.raises(ValueError, match="SimCLR has none"):
        fig4.Params(vector="p")
    with pytest.raises(ValueError, match="knn_variants"):
        fig4.Params(knn_variants=("cosine",))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_fig4_knn_trend_over_seeds_follows_fabricated_norms(sign, monkeypatch):
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan, p = _plan("smoke", 3), fig4.Params()      # no data: stand-in runs, human panels not run
    rng = np.random.default_rng(0)
    fr = _fig4_frames(plan, p, lambda k: _knn_splits(rng, 600, sign))
    checks = fig4.checks(fr, p)
    knn = [c for c in checks if c.claim == "norm-knn" and "given" not in c.test]
    assert len(knn) == 12                              # 3 methods x 2 kNN variants x 2 train views
    assert all(c.n_seeds == 3 and len(c.per_seed) == 3 for c in knn)
    assert all(c.verdict == ("holds" if sign > 0 else "contradicted") for c in knn), [(c.test, c.per_seed) for c in knn]
    assert all(min(c.per_seed) > 0.3 if sign > 0 else max(c.per_seed) < -0.3 for c in knn)
    # the control given the epoch-0 norm: these runs save no epoch 0 -> not run, per method (shown view)
    control = [c for c in checks if c.claim == "norm-knn" and "given" in c.test]
    assert len(control) == 3 and all(c.verdict == "not run" for c in control)
    human = [c for c in checks if c.claim == "norm-human"]
    assert len(human) == 15 and all(c.verdict == "not run" and "stand-in" in c.detail for c in human)
    assert set(fr["buckets"].variant) == {"self", "loo"} and fr["buckets"]["drawn"].any()
    assert any("stand-in" in n for n in fig4.notes(fr, p))
    figs = fig4.figures(fr, p)
    assert set(figs) == {"", "loo", "unaugmented"}


def test_fig4_trend_at_every_saved_epoch_and_checks_at_the_last(monkeypatch):
    """Runs whose norms fall with clarity at epoch 0 and rise at epoch 2 (the smoke runs save both):
    the per-epoch table shows a negative trend at 0 and a positive one at 2, and the checks, made at
    the last epoch, hold; an epoch whose embeddings are missing is skipped, not fatal."""
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan, p = _plan("smoke", 3), fig4.Params(methods=("simclr",), knn_variants=("loo",), both_views=False)
    assert all(tuple(s.cfg.train.save_embeddings_epochs) == (0, 2) for s in fig4.runs(plan, p).values())
    rng = np.random.default_rng(3)
    fr = _fig4_frames(plan, p, None, by_epoch=lambda k, e: _knn_splits(rng, 600, 1.0 if e == 2 else -1.0))
    be = fr["by_epoch"].query("panel == 'knn'").set_index("epoch")
    assert be.loc[0, "ci_high"] < -0.2 and be.loc[2, "ci_low"] > 0.2 and (be.seeds == 3).all()
    knn = [c for c in fig4.checks(fr, p) if c.claim == "norm-knn" and "given" not in c.test]
    assert len(knn) == 1 and knn[0].verdict == "holds" and "epoch [2]" in knn[0].detail
    assert fr[""].rho.iloc[0] == pytest.approx(be.loc[2, "rho"])
    assert "effect" in fig4.figures(fr, p)
    assert any(n.startswith("kNN accuracy (%), SimCLR") and "ep 0 -" in n for n in fig4.notes(fr, p))
    # epoch 0 missing everywhere: skipped with its reason; the last-epoch checks are unchanged
    fr2 = _fig4_frames(plan, p, lambda k: _knn_splits(np.random.default_rng(3), 600, 1.0))
    sk = fr2["_skipped"]
    assert set(fr2["by_epoch"].epoch) == {2} and set(sk[sk.panel == "all"].epoch) == {0}
    assert sk[sk.panel == "all"].reason.str.contains("no embeddings at epoch 0").all()
    assert [c.verdict for c in fig4.checks(fr2, p) if c.claim == "norm-knn" and "given" not in c.test] == ["holds"]
    # the last epoch (2) missing: the check is not run (never decided on epoch 0), and says why
    specs = fig4.runs(plan, p)
    fr3 = fig4.frames({k: FakeRun(s, {0: _flat(_knn_splits(rng, 600, 1.0))}) for k, s in specs.items()}, p)
    knn3 = [c for c in fig4.checks(fr3, p) if c.claim == "norm-knn" and "given" not in c.test]
    assert [c.verdict for c in knn3] == ["not run"] and "no embeddings at epoch 2" in knn3[0].detail
    assert set(fr3["by_epoch"].epoch) == {0} and not len(fr3[""])
    assert any(n.startswith("Not drawn") and "epoch 2" in n for n in fig4.notes(fr3, p))
    # a run that saves no embeddings at all: not run, with the reason
    bare = {k: FakeRun(s.__class__(s.label, s.cfg.replace({"train": {"save_embeddings_epochs": []}})), {})
            for k, s in specs.items()}
    knn4 = [c for c in fig4.checks(fig4.frames(bare, p), p) if c.claim == "norm-knn" and "given" not in c.test]
    assert [c.verdict for c in knn4] == ["not run"] and "saves no embeddings at the end of training" in knn4[0].detail
    # a run saving epoch 0 only: the untrained network is never counted as the end of training
    early = {k: FakeRun(s.__class__(s.label, s.cfg.replace({"train": {"save_embeddings_epochs": [0]}})),
                        {0: _flat(_knn_splits(rng, 600, 1.0))}) for k, s in specs.items()}
    fr5 = fig4.frames(early, p)
    assert [c.verdict for c in fig4.checks(fr5, p) if c.claim == "norm-knn" and "given" not in c.test] == ["not run"]
    assert set(fr5["by_epoch"].epoch) == {0}


def _aligned_epochs(rng, n: int, epoch0_sign: float, growth: float):
    """Epoch 0 and 2 of one run on the same images and directions: at epoch 0 the norm follows
    clarity with ``epoch0_sign`` (0 = unrelated); at epoch 2 it is the epoch-0 norm plus ``growth`` x
    clarity plus noise."""
    labels = np.repeat(np.arange(4), n // 4)
    clarity = rng.uniform(0.2, 1.0, len(labels))
    n0 = 5 + epoch0_sign * 4 * (clarity - 0.6) + rng.normal(size=len(labels)) * (1.0 if epoch0_sign == 0 else 0.1)
    n2 = n0 + growth * 4 * (clarity - 0.6) + 0.6 * rng.normal(size=len(labels))
    seed = int(rng.integers(1 << 30))
    make = lambda norm: {s: _split(np.random.default_rng(seed), labels, clarity, np.arange(len(labels)), norm)  # noqa: E731
                         for s in ("train", "train_aug", "test")}
    return {0: _flat(make(n0)), 2: _flat(make(n2))}


def test_fig4_control_given_epoch0_norm_and_learning_gate(monkeypatch):
    """Runs whose epoch-0 norm already ranks the images and whose training adds only noise: the plain
    rho holds, the partial rho given the epoch-0 norm does not; runs whose norm only training aligned
    with clarity: both hold. A base run that gained < 5 kNN points makes every check not testable."""
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan, p = _plan("smoke", 3), fig4.Params(methods=("simclr",), knn_variants=("loo",), both_views=False)
    specs = fig4.runs(plan, p)

    def verdicts(epoch0_sign, growth, gain=20.0):
        rng = np.random.default_rng(7)
        fr = fig4.frames({k: FakeRun(s, _aligned_epochs(rng, 600, epoch0_sign, growth), gain=gain)
                          for k, s in specs.items()}, p)
        cs = [c for c in fig4.checks(fr, p) if c.claim == "norm-knn"]
        return {("given" in c.test): c for c in cs}

    untrained = verdicts(1.0, 0.0)           # the ranking is the untrained network's
    assert untrained[False].verdict == "holds" and untrained[True].verdict != "holds"
    assert abs(untrained[True].effect) < 0.15 < untrained[False].effect, (untrained[True].per_seed, untrained[False].per_seed)
    learned = verdicts(0.0, 1.0)             # training put clarity into the norm
    assert learned[False].verdict == "holds" and learned[True].verdict == "holds"
    gated = verdicts(0.0, 1.0, gain=2.0)
    assert {c.verdict for c in gated.values()} == {"not testable"} and "+2.0" in gated[False].detail


def test_fig4_vector_p_is_the_predictor_output(monkeypatch):
    """SimSiam runs where z's norm rises with clarity and p's norm (same directions) falls:
    vector z sees the rise, vector p the fall. Three seeds: with two, the Fisher-z interval of rho
    (t quantile 12.7) cannot decide even rho = -0.8, -0.9."""
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    plan = _plan("smoke", 3)
    for vector, verdict in (("z", "holds"), ("p", "contradicted")):
        p = fig4.Params(methods=("simsiam",), vector=vector, knn_variants=("loo",), both_views=False)
        rng = np.random.default_rng(1)
        knn = [c for c in fig4.checks(_fig4_frames(plan, p, lambda k: _knn_splits(rng, 600, 1.0, True)), p)
               if c.claim == "norm-knn" and "given" not in c.test]
        assert len(knn) == 1 and knn[0].verdict == verdict, (vector, knn[0].per_seed)


def test_fig4_released_train_view_is_per_dataset(monkeypatch, data_dir):
    """ImageNet-100 shows the un-augmented embeddings first: norms rise with clarity there and fall
    in the augmented view, so its first-view check holds and the other is contradicted."""
    monkeypatch.setenv("EMBEDDING_NORMS_DATA", str(data_dir))
    p = fig4.Params(datasets=("imagenet100",), knn_variants=("self",))
    plan = _plan("smoke", 3, str(data_dir))
    rng = np.random.default_rng(2)

    def make(k):
        up, down = _knn_splits(rng, 400, 1.0), _knn_splits(rng, 400, -1.0)
        return {"train": up["train"], "train_aug": down["train_aug"], "test": up["test"]}

    fr = _fig4_frames(plan, p, make)
    by_view = {c.test.split(", ")[1].split(":")[0]: c.verdict for c in fig4.checks(fr, p) if c.claim == "norm-knn"
               and c.test.startswith("SimCLR") and "given" not in c.test}
    assert by_view == {"unaugmented": "holds", "augmented": "contradicted"}
    assert p.views("imagenet100")[0] == "unaugmented"


def test_fig4_human_panels_on_real_labels(monkeypatch, data_dir):
    monkeypatch.setenv("EMBEDDING_NORMS_DATA", str(data_dir))
    plan, p = _plan("smoke", 2, str(data_dir)), fig4.Params(knn_variants=("self",), min_count_agreement=5)
    n10 = np.load(data_dir / "cifar10n_labels.npz")
    clean, aggre = n10["clean_label"], n10["aggre_label"]
    probs = np.load(data_dir / "cifar10h-probs.npy")
    test_labels = np.load(data_dir / "cifar10_test_set_original_labels.npy").astype(np.int64)
    made = {}

    def make(k):
        rng = np.random.default_rng(k.seed)
        # train: 300 images where the human label is wrong get small norms, 300 where it is right large ones
        idx = np.sort(np.r_[rng.choice(np.flatnonzero(aggre != clean), 300, replace=False),
                            rng.choice(np.flatnonzero(aggre == clean), 300, replace=False)])
        x = np.where(aggre[idx] == clean[idx], rng.uniform(0.35, 1.0, 600), rng.uniform(0.0, 0.65, 600))
        train = _split(rng, clean[idx], 0.3 + 0.7 * x, idx, 1 + 9 * x)
        # test: the norm falls with the CIFAR-10H entropy
        tidx = np.sort(rng.choice(10000, 500, replace=False))
        ent = sps.entropy(probs[tidx], base=2, axis=1)
        test = _split(rng, test_labels[tidx], np.full(500, 0.9), tidx, 10 - 8 * ent / ent.max() + 0.2 * rng.normal(size=500))
        made[k] = (idx, train, test, ent)
        if k.method == "simclr":        # norms only, no vectors: kNN cannot run, the human panels still can
            train = {f: v for f, v in train.items() if f != "z"}
        return {"train": train, "train_aug": train, "test": test}

    fr = _fig4_frames(plan, p, make)
    human = [c for c in fig4.checks(fr, p) if c.claim == "norm-human" and "given" not in c.test]
    agreement, entropy = [c for c in human if "agreement" in c.test], [c for c in human if "entropy" in c.test]
    assert len(agreement) == 6 and len(entropy) == 3
    # per-image rho: about 0.6 for 0/1 agreement split at norm 0.5 with overlap, entropy rho about -0.9
    assert all(c.n_seeds == 2 and min(c.per_seed) > 0.4 for c in agreement), [c.per_seed for c in agreement]
    assert all(c.n_seeds == 2 and max(c.per_seed) < -0.5 for c in entropy), [c.per_seed for c in entropy]
    knn = {c.test.split(",")[0]: c for c in fig4.checks(fr, p) if c.claim == "norm-knn" and "given" not in c.test}
    assert knn["SimCLR CIFAR-10 z"].verdict == "not run" and "only the norms" in knn["SimCLR CIFAR-10 z"].detail
    assert knn["SimSiam CIFAR-10 z"].n_seeds == 2
    b = fr["buckets"]
    # independent recomputation: the lowest agreement bucket of SimCLR seed 0, and the drawn entropy buckets
    idx, train, test, ent = made[fig4.Key("cifar10", "simclr", 0)]
    xn = (train["z_norm"] - train["z_norm"].min()) / np.ptp(train["z_norm"])
    row = b[(b.panel == "agreement") & (b.method == "simclr") & (b.seed == 0) & (b.view == "augmented")].iloc[0]
    assert row["count"] == (xn < 0.05).sum()
    assert row["value"] == pytest.approx(100 * (aggre[idx][xn < 0.05] == clean[idx][xn < 0.05]).mean())
    tn = (test["z_norm"] - test["z_norm"].min()) / np.ptp(test["z_norm"])
    counts = np.bincount(np.minimum((tn * 20).astype(int), 19), minlength=20)
    drawn = b[(b.panel == "entropy") & (b.method == "simclr") & (b.seed == 0) & b.drawn]
    assert drawn.bucket.tolist() == np.flatnonzero(counts >= 10).tolist()      # released minimum 10, not 50
    assert ((drawn["count"] >= 10) & (drawn["count"] < 50)).any()


def test_fig4_bad_human_files_are_not_run_with_reason(tmp_path, monkeypatch, data_dir):
    bad = tmp_path / "data"
    bad.mkdir()
    os.symlink(data_dir / "cifar10_jpeg.npz", bad / "cifar10_jpeg.npz")     # images present
    np.save(bad / "cifar10h-probs.npy", np.full((9999, 10), 0.1))              # wrong length; CIFAR-10N missing
    monkeypatch.setenv("EMBEDDING_NORMS_DATA", str(bad))
    plan, p = _plan("smoke", 1, str(bad)), fig4.Params()
    rng = np.random.default_rng(1)
    fr = _fig4_frames(plan, p, lambda k: _knn_splits(rng, 400, 1.0))
    checks = fig4.checks(fr, p)
    human = [c for c in checks if c.claim == "norm-human"]
    assert all(c.verdict == "not run" for c in human)
    assert any("cifar10h-probs.npy" in c.detail and "(10000, 10)" in c.detail for c in human)
    assert any("cifar10n_labels.npz" in c.detail and "(50000,)" in c.detail for c in human)
    assert set(fr["buckets"].panel) == {"knn"}            # nothing drawn on unusable labels


def test_fig4_build_from_store_writes_outputs_and_skips_missing_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    planned = plan_artifact(Artifact.from_module(fig4), Plan("smoke"))
    store = RunStore(tmp_path / "runs")
    key = fig4.Key("cifar10", "simclr", 0)
    cfg = planned.specs[key].cfg
    store.ensure(cfg)
    (store.path(cfg) / "embeddings").mkdir(parents=True, exist_ok=True)
    np.savez(store.path(cfg) / "embeddings" / "epoch_0002.npz", **_flat(_knn_splits(np.random.default_rng(0), 400, 1.0)))
    pd.DataFrame({"epoch": [0, 2], "knn_acc": [20.0, 40.0]}).to_csv(store.path(cfg) / "metrics.csv", index=False)
    store.set_status(cfg, "done", epoch=2)
    res = build(planned, store, OutputDirs(tmp_path / "out"))
    assert res.error == "" and res.status == "partial", res.error      # SimSiam run pending
    assert any("simsiam" in s["part"] and "pending" in s["reason"] for s in res.skipped)
    for f in ("fig4_norm_confidence.png", "fig4_norm_confidence_loo.png", "fig4_norm_confidence_unaugmented.png"):
        assert (tmp_path / "out" / "figures" / f).is_file()
    main = pd.read_csv(tmp_path / "out" / "tables" / "fig4_norm_confidence.csv")
    assert set(main.method) == {"simclr"} and (main.seeds == 1).all()
    simclr_knn = [c for c in res.checks if c.claim == "norm-knn" and c.test.startswith("SimCLR") and "given" not in c.test]
    assert simclr_knn and all(c.verdict == "descriptive (1 seed)" and c.n_seeds == 1 for c in simclr_knn)  # one seed decides nothing
    assert all(c.verdict == "not run" for c in res.checks if c.test.startswith("SimSiam"))


# ----------------------------------------------------------------------------- seen vs unseen
def test_seen_holdout_runs_rotate_classes_and_follow_the_design(data_dir):
    p = seen.Params()
    specs = seen.runs(_plan("quick", 5, str(data_dir)), p)
    assert set(specs) == {seen.Key(m, s) for m in ("simclr", "simsiam") for s in range(5)}
    held = [(5, 6, 7, 8, 9), (0, 1, 2, 3, 4), (0, 2, 4, 6, 8), (1, 3, 5, 7, 9), (5, 6, 7, 8, 9)]
    for (m, s), spec in specs.items():
        c = spec.cfg
        assert set(c.data.classes) == set(range(10)) - set(held[s]) and c.eval.novel == "heldout"
        assert c.data.train_size == 512 and c.train.epochs == 90 and c.train.seed == s
        assert tuple(c.train.save_embeddings_epochs) == (15, 30, 60, 90) and tuple(c.train.eval_epochs) == (0, 90)
        # the scale rule's horizon (README "Deviations"): SimSiam's cosine spans 4 runs, SimCLR's one
        assert c.optim.schedule_epochs is None and c.optim.horizon(90) == 90 * (4 if m == "simsiam" else 1)
        assert c.optim.warmup_epochs == pytest.approx(c.optim.horizon(90) * 10 / 512)
        assert (c.optim.batch_size, c.optim.accumulation_steps) == ((128, 1) if m == "simclr" else (64, 2))
        # every training image once per epoch: the set is a whole number of optimizer steps
        assert c.data.train_size % (c.optim.batch_size * c.optim.accumulation_steps) == 0
    assert len(seen.runs(_plan("quick", 5, str(data_dir)), seen.Params(seeds=2))) == 4   # the artifact's own seeds
    smoke = seen.runs(_plan("smoke", 1, str(data_dir)), seen.Params(n_train=64, epochs=2, saved_epochs=(1, 2),
                                                                     batch_size=16))
    assert all(s.cfg.data.train_size == 64 and s.cfg.train.epochs == 2 for s in smoke.values())
    with pytest.raises(ValueError, match="include epochs"):
        seen.Params(saved_epochs=(15, 30))
    with pytest.raises(ValueError, match="holdouts"):
        seen.Params(holdouts=((0, 0, 1),))
    with pytest.raises(ValueError, match="n_train"):
        seen.Params(n_train=100)
    with pytest.raises(ValueError, match="multiple of batch_size"):   # 500 // 128 = 3 steps saw 384 of 500 images
        seen.Params(n_train=500)
    with pytest.raises(ValueError, match="pairs"):
        seen.Params(holdouts=((0, 1), (2, 3), (4, 5)))
    with pytest.raises(ValueError, match="a seed pair"):
        seen.Params(holdouts=((0, 1, 2), (0, 1)))                     # no class goes from novel to seen


def test_class_paired_novelty_cancels_class_identity_by_hand():
    """m(c) = a_r + b_c + d novel_rc with class levels b, run scales a_a = 0.7, a_b = -0.2, d = -0.25.
    Complementary held-out sets (a: 5-9, b: 0-4): the per-run seen-minus-novel contrasts of class means
    are mean(b[0:5]) - mean(b[5:]) - d = 0.5 + 0.2 + 0.25 = 0.95 in run a and -0.2 - 0.5 + 0.25 = -0.45 in
    run b (class identity); the class-paired effect is -d = 0.25, the scale a_a - a_b = 0.9."""
    from embedding_norms.analysis import class_paired_novelty

    b = np.array([3, -1, 0.5, 2, -2, 1, 0, -0.5, 1.5, -3])
    d = -0.25

    def run(scale, held):
        return {c: (c in held, scale + b[c] + d * (c in held)) for c in range(10)}

    ra, rb = run(0.7, {5, 6, 7, 8, 9}), run(-0.2, {0, 1, 2, 3, 4})
    naive = [np.mean([r[c][1] for c in range(10) if not r[c][0]]) - np.mean([r[c][1] for c in range(10) if r[c][0]])
             for r in (ra, rb)]
    assert naive == pytest.approx([0.95, -0.45])
    e = class_paired_novelty(ra, rb)
    assert e["effect"] == pytest.approx(0.25) and e["scale"] == pytest.approx(0.9)
    assert (e["n_seen_novel"], e["n_novel_seen"]) == (5, 5)
    # held-out sets that overlap (a: 5-9, evens): classes 1, 3 (seen in both) and 6, 8 (novel in both) do not
    # enter; SN = {0, 2, 4}, NS = {5, 7, 9}; the effect is still -d
    e = class_paired_novelty(ra, run(-0.2, {0, 2, 4, 6, 8}))
    assert e["effect"] == pytest.approx(0.25) and (e["n_seen_novel"], e["n_novel_seen"]) == (3, 3)
    with pytest.raises(ValueError, match="swap"):
        class_paired_novelty(ra, run(0.1, {5, 6, 7, 8, 9}))


def test_seen_class_paired_checks_on_runs_with_known_class_levels(monkeypatch):
    """Four holdout runs (held out 5-9, 0-4, evens, odds) whose every image of class c has log norm
    a_s + b_c - 0.25 [novel] + 0.1 [training image], with class levels b_c = 0.3 c (large: classes 5-9
    sit 1.5 above 0-4) and run scales a_s = 0.2 s. Class-paired over the pairs (0, 1) and (2, 3):
    novel vs test = 0.25 and novel vs train = 0.35 exactly in both pairs (holds, interval a point), while
    the per-run novel-vs-test AUROC follows which classes are held out (seed 0: novel classes are the
    large ones, AUROC - 0.5 < 0; seed 1: > 0) and is descriptive. One SimSiam run gains 3 kNN points:
    SimSiam's checks are not testable."""
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    p = seen.Params(n_train=64, epochs=2, saved_epochs=(1, 2), batch_size=16, n_boot=50)
    plan = _plan("smoke", 4)
    runs = {}
    for k, spec in seen.runs(plan, p).items():
        held = p.holdout(k.seed)
        seen_ids = [c for c in range(10) if c not in held]
        splits = {}
        for split, ids, extra in (("train", seen_ids, 0.1), ("test", seen_ids, 0.0), ("novel", list(held), -0.25)):
            lab = np.repeat(np.arange(5), 6)
            norm = np.exp(0.2 * k.seed + 0.3 * np.asarray(ids)[lab] + extra)
            splits[split] = _split(np.random.default_rng(0), lab, np.full(30, 0.8), np.arange(30), norm)
        runs[k] = FakeRun(spec, {2: _flat(splits)})
        if k.method == "simsiam" and k.seed == 3:
            runs[k].gain = 3.0
    fr = seen.frames(runs, p)
    pr = fr["paired"]
    for comp, want in (("novel vs test", 0.25), ("novel vs train", 0.35)):
        g = pr[(pr.method == "simclr") & (pr.comparison == comp)].sort_values("pair")
        assert g.seeds.tolist() == ["0,1", "2,3"] and g.classes.tolist() == [10, 10]
        assert g.effect.tolist() == pytest.approx([want, want], abs=2e-3)    # z is stored in float16
    checks = seen.checks(fr, p)
    by_test = {c.test: c for c in checks}
    c = by_test["SimCLR: small norm => unseen, novel vs test, class-paired"]
    assert c.verdict == "holds" and c.n_seeds == 2 and not c.descriptive
    naive = by_test["SimCLR: small norm => unseen, novel vs test (per run, across classes)"]
    assert naive.descriptive and naive.per_seed[0] < 0 < naive.per_seed[1]
    assert {c.verdict for c in checks if c.test.startswith("SimSiam") and not c.descriptive} == {"not testable"}
    assert {c.verdict for c in checks if c.test.startswith("SimCLR") and not c.descriptive} == {"holds"}
    assert len(checks) == 10 and set(seen.figures(fr, p)) == {""}


def _seen_runs(plan, p, means_by_epoch, rng):
    """FakeRuns whose split norms are normal with the given means per saved epoch."""
    out = {}
    for k, spec in seen.runs(plan, p).items():
        by_epoch = {}
        for epoch, means in means_by_epoch.items():
            splits = {}
            for name, n in (("train", 200), ("test", 150), ("novel", 150)):
                lab = np.repeat(np.arange(5), n // 5)
                splits[name] = _split(rng, lab, np.full(n, 0.8), np.arange(n), np.abs(rng.normal(means[name], 1.0, n)))
            by_epoch[epoch] = _flat(splits)
        out[k] = FakeRun(spec, by_epoch)
    return out


@pytest.mark.parametrize("order", ["paper", "reversed"])
def test_seen_checks_and_effect_by_epoch_follow_fabricated_norms(order, monkeypatch):
    monkeypatch.delenv("EMBEDDING_NORMS_DATA", raising=False)
    p = seen.Params(n_train=64, epochs=2, saved_epochs=(1, 2), batch_size=16, n_boot=300)
    plan = _plan("smoke", 3)
    last = {"train": 10.0, "test": 9.0, "novel": 7.5} if order == "paper" else {"train": 7.5, "test": 9.0, "novel": 10.0}
    runs = _seen_runs(plan, p, {1: {"train": 9.0, "test": 9.0, "novel": 9.0}, 2: last}, np.random.default_rng(2))
    fr = seen.frames(runs, p)
    checks = seen.checks(fr, p)
    per_run = [c for c in checks if "class-paired" not in c.test]        # test vs train, and novel per run
    assert len(checks) == 10 and len(per_run) == 6 and all(c.n_seeds == 3 for c in per_run)
    assert all(c.verdict == ("holds" if order == "paper" else "contradicted") for c in per_run), [c.per_seed for c in per_run]
    # class-paired: seeds 0 and 1 form the one pair of 3 seeds; one pair gives no interval
    assert all(c.n_seeds == 1 and c.verdict == "descriptive (1 seed)" for c in checks if "class-paired" in c.test)
    a = fr["auroc"]
    # independent AUROC of one seed: P(norm_unseen < norm_seen) by pairwise comparison
    emb = runs[seen.Key("simclr", 1)].embeddings(2)
    pair = np.mean(emb["test/z_norm"][:, None] < emb["train/z_norm"][None, :])
    row = a[(a.method == "simclr") & (a.seed == 1) & (a.epoch == 2) & (a.comparison == "test vs train")].iloc[0]
    assert row["auroc"] == pytest.approx(pair) and row["effect"] == pytest.approx(pair - 0.5)
    # holdout rotates the images with the seed: the interval is the t-interval over seeds,
    # mean +- t_{0.975, 2} s / sqrt(3) (the image noise is already inside the seed spread)
    g = a[(a.method == "simsiam") & (a.epoch == 2) & (a.comparison == "novel vs test")].sort_values("seed")
    half = sps.t.ppf(0.975, 2) * math.sqrt(g.effect.var(ddof=1) / 3)
    c = next(c for c in checks if c.test.startswith("SimSiam") and "novel vs test" in c.test)
    assert (c.ci_low, c.ci_high) == pytest.approx((g.effect.mean() - half, g.effect.mean() + half))
    # effect by epoch: nothing at epoch 1 (same distributions), the fabricated effect at epoch 2
    t = fr[""]
    assert set(t.epoch) == {1, 2} and len(t) == 12
    e1 = t[t.epoch == 1]
    assert ((e1.ci_low < 0) & (e1.ci_high > 0)).all(), e1
    assert set(fr["auroc"].held_out) == {"5-6-7-8-9", "0-1-2-3-4", "0-2-4-6-8"}      # rotation with the seed
    assert set(seen.figures(fr, p)) == {""}
    assert any("rotate with the seed" in n for n in seen.notes(fr, p))


def test_seen_paper_design_declares_cifar100_novel(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("EMBEDDING_NORMS_DATA", str(data_dir))
    plan = Plan("paper", data_dir=str(data_dir))
    planned = plan_artifact(Artifact.from_module(seen), plan)
    assert planned.params.design == "cifar100"
    for k, s in planned.specs.items():           # CIFAR-100 is not available offline: skipped with the reason
        assert s.label == f"{k.method}/novel-cifar100/seed={k.seed}" and s.cfg is None and "cifar100" in s.skipped
    res = build(planned, RunStore(tmp_path / "runs"), OutputDirs(tmp_path / "out"))
    assert res.error == "" and res.status == "partial", res.error
    assert res.checks and all(c.verdict == "not run" for c in res.checks)
    assert all("cifar100" in s["reason"] for s in res.skipped)
