"""Tests of embedding_norms.analysis against hand-made examples, closed forms and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from embedding_norms.analysis import (align_human_labels, bucket_statistics, bucket_trend, human_label_entropy,
                                      knn_loo_correct, norm_buckets, normalize_norms, novelty_auroc)
from embedding_norms.data import HumanLabelError


# ----------------------------------------------------------------------------- buckets
def test_normalize_and_buckets_by_hand():
    # min 10, max 30: x = (n - 10) / 20
    norms = np.array([10.0, 10.5, 12.9, 20.3, 29.9, 30.0])
    np.testing.assert_allclose(normalize_norms(norms), [0, 0.025, 0.145, 0.515, 0.995, 1.0])
    # buckets of width 0.05: floor(x * 20), the maximum in the last bucket
    assert norm_buckets(norms).tolist() == [0, 0, 2, 10, 19, 19]
    assert norm_buckets(norms, n_buckets=4).tolist() == [0, 0, 0, 2, 3, 3]
    # invariant to a positive affine change of the norms
    assert norm_buckets(3 * norms + 7).tolist() == [0, 0, 2, 10, 19, 19]


def test_buckets_reject_degenerate_norms():
    with pytest.raises(ValueError, match="equal"):
        norm_buckets(np.ones(5))
    with pytest.raises(ValueError, match="non-finite"):
        norm_buckets(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="no norms"):
        normalize_norms(np.array([]))


def _hand_example():
    """Norms 0..100, so x = norm / 100: bucket 0 (4 samples), 5 (1), 10 (3), 19 (5)."""
    norms = np.array([0.0, 1, 2, 3,          # bucket 0
                      26,                    # bucket 5
                      51, 52, 53,            # bucket 10
                      96, 97, 98, 99, 100])  # bucket 19
    labels = np.array([0, 1, 2, 0, 1, 0, 1, 2, 0, 1, 2, 0, 1])
    preds = np.array([0, 2, 0, 1, 1, 0, 1, 0, 0, 1, 2, 0, 1])  # correct: 1,0,0,0 | 1 | 1,1,0 | 1,1,1,1,1
    return norms, labels, preds


def test_bucket_statistics_hand_example():
    norms, labels, preds = _hand_example()
    t = bucket_statistics(norms, {"acc": 100.0 * (preds == labels), "one": np.ones(13)}, n_buckets=20, min_count=2)
    assert t["bucket"].tolist() == [0, 10, 19]             # bucket 5 has one sample: not drawn
    assert t["count"].tolist() == [4, 3, 5]
    np.testing.assert_allclose(t["acc"], [25.0, 200 / 3, 100.0])
    np.testing.assert_allclose(t["one"], [1, 1, 1])
    np.testing.assert_allclose(t["lo"], [0.0, 0.5, 0.95])
    np.testing.assert_allclose(t["hi"], [0.05, 0.55, 1.0])
    np.testing.assert_allclose(t["mid"], [0.025, 0.525, 0.975])
    full = bucket_statistics(norms, {"acc": 100.0 * (preds == labels)}, n_buckets=20)
    assert full["bucket"].tolist() == [0, 5, 10, 19] and full.loc[1, "acc"] == 100.0


def test_bucket_trend_spearman_by_hand():
    norms, labels, preds = _hand_example()
    t = bucket_statistics(norms, {"acc": 100.0 * (preds == labels)}, min_count=2)
    tr = bucket_trend(t, "acc")
    assert tr["rho"] == pytest.approx(1.0) and tr["n_buckets"] == 3 and tr["monotone"] == 1.0
    t["acc"] = [3.0, 1.0, 2.0]   # ranks 3,1,2 against 1,2,3: rho = 1 - 6*(4+1+1)/(3*8) = -0.5
    tr = bucket_trend(t, "acc")
    assert tr["rho"] == pytest.approx(-0.5) and tr["monotone"] == 0.0
    t["acc"] = [3.0, 2.0, 1.0]
    assert bucket_trend(t, "acc")["monotone"] == -1.0
    assert math.isnan(bucket_trend(t.iloc[:2], "acc")["rho"])   # fewer than 3 buckets


def test_bucket_statistics_length_mismatch():
    with pytest.raises(ValueError, match="values\\['a'\\]"):
        bucket_statistics(np.arange(5.0), {"a": np.ones(4)})


# ----------------------------------------------------------------------------- kNN
def test_knn_leave_one_out_by_hand():
    # point 2 (class 1) is alone: its nearest *other* point is point 1 (class 0), so it is wrong;
    # were it its own neighbour, it would be right.
    x = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    assert knn_loo_correct(x, np.array([0, 0, 1]), k=1).tolist() == [True, True, False]
    # cosine: the norm does not matter
    assert knn_loo_correct(x * np.array([[5.0], [0.1], [3.0]]), np.array([0, 0, 1]), k=1).tolist() == [True, True, False]


@pytest.mark.parametrize("k", [3, 4])
def test_knn_leave_one_out_matches_sklearn(k):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5)) + np.repeat(np.eye(5)[:3] * 1.5, 20, axis=0)
    y = np.repeat(np.arange(3), 20)
    ours = knn_loo_correct(x.astype(np.float16), y, k=k)
    x16 = x.astype(np.float16).astype(np.float32)
    ref = []
    for i in range(len(y)):  # second implementation: refit without sample i, predict it
        keep = np.arange(len(y)) != i
        clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(x16[keep], y[keep])
        ref.append(clf.predict(x16[i:i + 1])[0] == y[i])
    assert ours.tolist() == ref
    assert 0.3 < ours.mean() < 1.0


def test_knn_errors():
    with pytest.raises(ValueError, match="k < N"):
        knn_loo_correct(np.ones((3, 2)), np.zeros(3, int), k=3)
    with pytest.raises(ValueError, match="do not match"):
        knn_loo_correct(np.ones((3, 2)), np.zeros(4, int), k=1)


# ----------------------------------------------------------------------------- entropy
def test_entropy_bits_closed_form():
    probs = np.array([
        [1.0, 0, 0, 0],          # unanimous: 0 bits
        [0.5, 0.5, 0, 0],        # 1 bit
        [0.25, 0.25, 0.25, 0.25],  # 2 bits
        [0.5, 0.25, 0.25, 0],    # 1.5 bits
    ])
    np.testing.assert_allclose(human_label_entropy(probs), [0.0, 1.0, 2.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(human_label_entropy(np.full((2, 10), 0.1)), [math.log2(10)] * 2)
    p = 0.9  # binary entropy h(0.9) = -0.9 log2 0.9 - 0.1 log2 0.1
    assert human_label_entropy(np.array([[p, 1 - p]]))[0] == pytest.approx(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))
    # vote counts are normalised: [2, 1, 1] -> [0.5, 0.25, 0.25]
    assert human_label_entropy(np.array([[2.0, 1, 1]]))[0] == pytest.approx(1.5)
    with pytest.raises(ValueError):
        human_label_entropy(np.array([0.5, 0.5]))


# ----------------------------------------------------------------------------- alignment
def test_align_human_labels():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 10, 1000)
    noisy = np.where(rng.random(1000) < 0.9, clean, (clean + 1) % 10)
    idx = np.sort(rng.choice(1000, 200, replace=False))
    out = align_human_labels(noisy, idx, clean[idx], "noisy.npz", 0.5, reference=clean)
    np.testing.assert_array_equal(out, noisy[idx])
    with pytest.raises(HumanLabelError, match="noisy.npz.*has 1000 rows"):
        align_human_labels(noisy, np.r_[idx, 1500], clean[np.r_[idx, 0]], "noisy.npz", 0.5)
    perm = rng.permutation(1000)  # a file in another order
    with pytest.raises(HumanLabelError, match="reference labels"):
        align_human_labels(noisy[perm], idx, clean[idx], "noisy.npz", 0.5, reference=clean[perm])
    with pytest.raises(HumanLabelError, match="not in the dataset's original order"):
        align_human_labels(noisy[perm], idx, clean[idx], "noisy.npz", 0.5)
    probs = np.eye(10)[clean]  # distributions: argmax checked
    np.testing.assert_array_equal(align_human_labels(probs, idx, clean[idx], "h.npy", 0.95), probs[idx])


# ----------------------------------------------------------------------------- AUROC
def test_auroc_by_hand_with_ties():
    # seen [3, 4], unseen [1, 2, 3]: pairs with unseen < seen: 3>1, 3>2, 4>1, 4>2, 4>3 = 5, tie 3=3 counts 1/2
    r = novelty_auroc([3.0, 4.0], [1.0, 2.0, 3.0], n_boot=0)
    assert r["auroc"] == pytest.approx(5.5 / 6)
    assert math.isnan(r["ci_low"]) and r["n_seen"] == 2 and r["n_unseen"] == 3
    assert novelty_auroc([1.0, 2.0], [3.0, 4.0], n_boot=0)["auroc"] == 0.0   # unseen larger: 0


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_matches_sklearn_and_pairs_on_random_data(seed):
    rng = np.random.default_rng(seed)
    seen = rng.normal(1.0, 1.0, 300)
    unseen = rng.normal(0.6, 1.2, 200)
    if seed == 1:  # integer norms: many ties
        seen, unseen = np.round(seen * 2), np.round(unseen * 2)
    r = novelty_auroc(seen, unseen, n_boot=0)
    y = np.r_[np.zeros(300), np.ones(200)]               # unseen = positive class, score = -norm
    assert r["auroc"] == pytest.approx(roc_auc_score(y, -np.r_[seen, unseen]))
    pairs = (seen[:, None] > unseen[None, :]).mean() + 0.5 * (seen[:, None] == unseen[None, :]).mean()
    assert r["auroc"] == pytest.approx(pairs)


def test_auroc_bootstrap_interval():
    rng = np.random.default_rng(3)
    seen, unseen = rng.normal(1.0, 1.0, 400), rng.normal(0.5, 1.0, 300)
    r = novelty_auroc(seen, unseen, n_boot=400, seed=0)
    assert r["ci_low"] < r["auroc"] < r["ci_high"]
    # Hanley & McNeil (1982) standard error of the AUROC as an independent scale of the width
    a, n1, n2 = r["auroc"], 300, 400
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))
    width = r["ci_high"] - r["ci_low"]
    assert 0.6 * 2 * 1.96 * se < width < 1.6 * 2 * 1.96 * se
    assert r["ci_low"] > 0.5
    same = novelty_auroc(rng.normal(size=300), rng.normal(size=300), n_boot=300, seed=1)
    assert same["ci_low"] < 0.5 < same["ci_high"]   # same distribution: chance inside the interval
    with pytest.raises(ValueError, match="both groups"):
        novelty_auroc([], [1.0])


def test_image_spearman_and_partial_spearman_by_hand():
    """Five images. rho(x, y) for y = (2, 1, 4, 3, 5): sum d^2 = 4 -> 1 - 6*4/(5*24) = 0.8. A 0/1
    quantity (0, 0, 1, 0, 1) has average ranks (2, 2, 4.5, 2, 4.5): rho = 5 / sqrt(10 * 7.5) = 1/sqrt(3).
    Partial given c = (1, 3, 2, 5, 4): r_xc = 0.8, r_yc = 1 - 6*14/120 = 0.3 ->
    (0.8 - 0.8*0.3) / sqrt((1 - 0.64)(1 - 0.09))."""
    from embedding_norms.analysis import image_spearman, partial_spearman

    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert image_spearman(x, [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert image_spearman(x, [0, 0, 1, 0, 1]) == pytest.approx(1 / np.sqrt(3))
    assert image_spearman(np.exp(x), -x ** 3) == pytest.approx(-1.0)        # any strictly anti-monotone relation
    assert np.isnan(image_spearman(x, np.ones(5)))
    assert partial_spearman(x, [2, 1, 4, 3, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.56 / np.sqrt(0.36 * 0.91))
    assert np.isnan(partial_spearman(x, [2, 1, 4, 3, 5], 2 * x))             # the control ranks x exactly
    with pytest.raises(ValueError, match="one per image"):
        image_spearman(x, [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        partial_spearman(x, x, [1, 2, np.nan, 4, 5])
