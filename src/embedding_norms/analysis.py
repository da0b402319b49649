"""Analyses of trained embeddings: norm buckets, kNN accuracy per bucket, human-label agreement
and entropy per bucket, and norm-based novelty scores (PAPER.md claim 5, Figure 4 of the paper
and its seen-vs-unseen analysis).

Library code only: every function returns arrays or data frames; the artifact scripts
(``reproduce/fig4_norm_confidence.py``, ``reproduce/fig_seen_vs_unseen.py``) plot them.

Conventions used throughout:

* *norm* is the L2 norm of the analysed vector (``z_norm`` or ``p_norm`` in the run store);
* a *bucket* is one of ``n_buckets`` equal-width intervals of the norm after min-max
  normalisation to [0, 1] over the data set: bucket ``b`` holds ``b/n <= x < (b+1)/n``, the
  last bucket also holds ``x = 1`` (the maximum);
* percentages are in percent (0-100), entropies in bits.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from .data.human_labels import HumanLabelError, check_alignment

__all__ = [
    "normalize_norms", "norm_buckets", "bucket_statistics", "bucket_trend", "image_spearman", "partial_spearman",
    "knn_loo_correct", "knn_self_vote_correct",
    "human_label_entropy", "align_human_labels", "novelty_auroc", "class_paired_novelty",
]


# --------------------------------------------------------------------------- buckets
def normalize_norms(norms: np.ndarray) -> np.ndarray:
    """Min-max normalise norms to [0, 1]: ``(n - min) / (max - min)`` (Figure 4, x-axis).

    Args:
        norms: ``(N,)`` embedding norms (any positive unit).

    Returns:
        ``(N,)`` float64 in [0, 1]; the smallest norm maps to 0 and the largest to 1.

    Raises:
        ValueError: empty input, non-finite values, or all norms equal (no range to normalise).
    """
    n = np.asarray(norms, dtype=np.float64).ravel()
    if n.size == 0:
        raise ValueError("normalize_norms: no norms given")
    if not np.isfinite(n).all():
        raise ValueError(f"normalize_norms: {int((~np.isfinite(n)).sum())} non-finite norms (diverged run?)")
    lo, hi = n.min(), n.max()
    if hi <= lo:
        raise ValueError(f"normalize_norms: all {n.size} norms equal {lo:.6g}; the buckets are undefined")
    return (n - lo) / (hi - lo)


def norm_buckets(norms: np.ndarray, n_buckets: int = 20) -> np.ndarray:
    """Bucket index of every sample after min-max normalisation of the norms (Figure 4).

    With ``x = (n - min)/(max - min)``, sample ``i`` goes to bucket ``floor(x_i * n_buckets)``,
    except ``x = 1`` (the largest norm), which goes to the last bucket ``n_buckets - 1``.
    With the paper's 20 buckets each has width 0.05.

    Args:
        norms: ``(N,)`` embedding norms.
        n_buckets: number of equal-width buckets (>= 1).

    Returns:
        ``(N,)`` int64 bucket indices in ``0 .. n_buckets - 1``.

    Raises:
        ValueError: ``n_buckets < 1`` or norms that :func:`normalize_norms` rejects.
    """
    if n_buckets < 1:
        raise ValueError(f"norm_buckets: n_buckets must be >= 1, got {n_buckets}")
    x = normalize_norms(norms)
    return np.minimum(np.floor(x * n_buckets).astype(np.int64), n_buckets - 1)


def bucket_statistics(norms: np.ndarray, values: Mapping[str, np.ndarray], n_buckets: int = 20,
                      min_count: int = 1) -> pd.DataFrame:
    """Per-bucket means of per-sample values (Figure 4: kNN accuracy, human agreement, entropy).

    Args:
        norms: ``(N,)`` embedding norms (bucketed with :func:`norm_buckets`).
        values: name -> ``(N,)`` per-sample values (e.g. 0/100 for kNN correct, entropy in bits);
            each column of the result is the mean of that value over the bucket.
        n_buckets: number of buckets (20 in the paper).
        min_count: buckets with fewer samples are dropped (the paper draws buckets with
            >= 10 samples for kNN accuracy and >= 50 for human agreement).

    Returns:
        DataFrame sorted by bucket with columns ``bucket`` (int), ``lo``, ``hi`` (the bucket's
        interval of normalised norm), ``mid`` (its centre), ``count`` (samples) and one column
        per entry of ``values``. Empty buckets never appear.

    Raises:
        ValueError: a value array whose length differs from ``norms``; see also :func:`norm_buckets`.
    """
    norms = np.asarray(norms).ravel()
    b = norm_buckets(norms, n_buckets)
    frame = pd.DataFrame({"bucket": b})
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.shape != norms.shape:
            raise ValueError(f"bucket_statistics: values[{name!r}] has {v.size} entries for {norms.size} norms")
        frame[name] = v
    grouped = frame.groupby("bucket", sort=True)
    out = grouped.mean()
    out.insert(0, "count", grouped.size())
    out = out.reset_index()
    width = 1.0 / n_buckets
    out.insert(1, "lo", out["bucket"] * width)
    out.insert(2, "hi", (out["bucket"] + 1) * width)
    out.insert(3, "mid", (out["bucket"] + 0.5) * width)
    out["count"] = out["count"].astype(np.int64)
    return out[out["count"] >= min_count].reset_index(drop=True)


def bucket_trend(table: pd.DataFrame, column: str) -> dict[str, float]:
    """Spearman rank correlation between bucket position and a per-bucket statistic.

    Args:
        table: output of :func:`bucket_statistics` (one row per drawn bucket).
        column: the statistic (e.g. ``knn_accuracy``).

    Returns:
        dict with ``rho`` (Spearman correlation of ``bucket`` and ``column``; NaN with fewer
        than 3 buckets or a constant column), ``p`` (two-sided p-value, NaN likewise),
        ``n_buckets`` and ``monotone`` (1.0 if the statistic never decreases from bucket to
        bucket, -1.0 if it never increases, 0.0 otherwise; NaN with fewer than 2 buckets).
    """
    t = table.sort_values("bucket")
    y = t[column].to_numpy(dtype=np.float64)
    n = len(t)
    rho = p = float("nan")
    if n >= 3 and np.ptp(y) > 0:
        res = stats.spearmanr(t["bucket"].to_numpy(), y)
        rho, p = float(res.statistic), float(res.pvalue)
    mono = float("nan")
    if n >= 2:
        d = np.diff(y)
        mono = 1.0 if (d >= 0).all() else (-1.0 if (d <= 0).all() else 0.0)
    return {"rho": rho, "p": p, "n_buckets": float(n), "monotone": mono}


# --------------------------------------------------------------------------- per-image statistics
def _image_vectors(name: str, **arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays as float64 vectors of one length, all finite (else ValueError naming ``name``)."""
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays.values()]
    if len({a.size for a in out}) != 1:
        raise ValueError(f"{name}: " + ", ".join(f"{k} has {a.size}" for k, a in zip(arrays, out))
                         + " entries; need one per image")
    for k, a in zip(arrays, out):
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: {int((~np.isfinite(a)).sum())} non-finite value(s) in {k}")
    return out


def image_spearman(norms: np.ndarray, values: np.ndarray) -> float:
    """Spearman rank correlation over images between the norm and a per-image quantity (issue 20).

    Figure 4's claims decided per image instead of per bucket: e.g. ``values`` = kNN correctness
    (0/1), agreement of the CIFAR-10N label with the clean label (0/1), or CIFAR-10H label entropy
    (bits). Ties (binary quantities) get average ranks, so with a 0/1 quantity this is the rank
    point-biserial correlation.

    Args:
        norms: ``(N,)`` embedding norms.
        values: ``(N,)`` per-image quantity.

    Returns:
        rho in [-1, 1]; NaN with fewer than 3 images or a constant input (no ranking).

    Raises:
        ValueError: lengths differ or non-finite values.
    """
    x, y = _image_vectors("image_spearman", norms=norms, values=values)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def partial_spearman(norms: np.ndarray, values: np.ndarray, control: np.ndarray) -> float:
    """Partial Spearman correlation of norm and quantity over images given a control (issue 20).

    With ``r_xy``, ``r_xc``, ``r_yc`` the Spearman correlations of norms ``x``, values ``y`` and the
    control ``c`` (e.g. the same images' norms in the BatchNorm-recalibrated untrained network,
    epoch 0): ``(r_xy - r_xc r_yc) / sqrt((1 - r_xc^2)(1 - r_yc^2))``, the correlation of the ranks
    of ``x`` and ``y`` after each is linearly regressed on the ranks of ``c``. Positive when images
    the trained network ranks higher by norm than their untrained norm predicts also rank higher
    in the quantity: the part of the relation that training put into the norm.

    Args:
        norms, values, control: ``(N,)`` per image, aligned.

    Returns:
        the partial rho in [-1, 1]; NaN when a correlation is undefined (fewer than 3 images, a
        constant input) or the control ranks ``x`` or ``y`` perfectly (nothing left to correlate).

    Raises:
        ValueError: lengths differ or non-finite values.
    """
    x, y, c = _image_vectors("partial_spearman", norms=norms, values=values, control=control)
    if x.size < 3 or min(np.ptp(x), np.ptp(y), np.ptp(c)) == 0:
        return float("nan")
    r = stats.spearmanr(np.column_stack([x, y, c])).statistic
    rxy, rxc, ryc = r[0, 1], r[0, 2], r[1, 2]
    den = (1 - rxc ** 2) * (1 - ryc ** 2)
    if den <= 1e-12:
        return float("nan")
    return float(np.clip((rxy - rxc * ryc) / np.sqrt(den), -1.0, 1.0))


# --------------------------------------------------------------------------- kNN
def knn_loo_correct(emb: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Whether a leave-one-out k-nearest-neighbour vote (cosine) predicts each sample's label.

    Figure 4 (left): "a kNN classifier (k = 10, cosine) fit on all normalised embeddings". We
    fit on all samples and predict every sample from its ``k`` nearest *other* samples
    (leave-one-out: a sample is never its own neighbour, otherwise it would vote for its own
    label). The vote is unweighted majority; ties go to the smallest label (as scikit-learn's
    ``KNeighborsClassifier(weights="uniform")``). Cosine distance ignores the norm, so fitting
    on normalised or raw embeddings is the same.

    Args:
        emb: ``(N, d)`` embeddings (any float dtype; float16 is upcast).
        labels: ``(N,)`` integer class labels (>= 0).
        k: number of neighbours (10 in the paper).

    Returns:
        ``(N,)`` bool: True where the leave-one-out prediction equals the label.

    Raises:
        ValueError: shapes that do not match, ``k < 1``, ``N <= k``, or negative labels.
    """
    x, y = _knn_inputs(emb, labels, k, "knn_loo_correct")
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(x)
    ind = nn.kneighbors(return_distance=False)  # X=None: the query point is not its own neighbour
    votes = np.zeros((y.size, int(y.max()) + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(y.size), k), y[ind].ravel()), 1)
    return votes.argmax(axis=1) == y  # argmax takes the first (smallest) label on ties


def _knn_inputs(emb: np.ndarray, labels: np.ndarray, k: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(N, d)`` float32 embeddings and ``(N,)`` int64 labels for a kNN vote."""
    x = np.asarray(emb, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64).ravel()
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"{name}: emb {x.shape} and labels {y.shape} do not match (need (N, d) and (N,))")
    if k < 1 or x.shape[0] <= k:
        raise ValueError(f"{name}: need 1 <= k < N, got k={k}, N={x.shape[0]}")
    if y.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0")
    return x, y


def knn_self_vote_correct(emb: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Whether the released Figure-4 kNN classifier predicts each sample's label (self-vote included).

    The released notebook ("Norm as Accuracy.ipynb", cell 1) fits scikit-learn's
    ``KNeighborsClassifier(n_neighbors=10)`` (Euclidean, uniform weights) on the L2-normalised
    training embeddings and predicts *the same* normalised embeddings, so each sample is its own
    nearest neighbour (distance 0) and votes for its own label: 1 of the ``k`` votes. Euclidean
    distance between unit vectors is a monotone function of cosine distance, so the other
    ``k - 1`` neighbours are those of :func:`knn_loo_correct`. Ties go to the smallest label.

    Args:
        emb: ``(N, d)`` embeddings (any float dtype; each row is divided by its norm).
        labels: ``(N,)`` integer class labels (>= 0).
        k: number of neighbours including the sample itself (10 as released).

    Returns:
        ``(N,)`` bool: True where the prediction equals the label.

    Raises:
        ValueError: shapes that do not match, ``k < 1``, ``N <= k``, negative labels, or a row
            of norm 0 (it has no direction).
    """
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _knn_inputs(emb, labels, k, "knn_self_vote_correct")
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"knn_self_vote_correct: {int((norms == 0).sum())} embedding(s) of norm 0 cannot be normalised")
    xn = x / norms
    return KNeighborsClassifier(n_neighbors=k).fit(xn, y).predict(xn) == y


# --------------------------------------------------------------------------- human labels
def human_label_entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy, in bits, of each row of human label distributions (CIFAR-10H, Figure 4 right).

    Args:
        probs: ``(N, C)`` non-negative rows (normalised to sum 1 if they do not).

    Returns:
        ``(N,)`` float64 entropies in bits (0 for a unanimous row, ``log2 C`` for a uniform one).

    Raises:
        ValueError: not 2-D, negative entries, or an all-zero row.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"human_label_entropy: expected (N, C) distributions, got shape {p.shape}")
    if (p < 0).any() or (p.sum(axis=1) <= 0).any():
        raise ValueError("human_label_entropy: rows must be non-negative with a positive sum")
    return stats.entropy(p, base=2, axis=1)


def align_human_labels(human: np.ndarray, indices: np.ndarray, labels: np.ndarray, name: str,
                       min_agreement: float, reference: Optional[np.ndarray] = None) -> np.ndarray:
    """Select the human labels of a run's images and verify that they are aligned.

    Run-store splits hold a subset of a dataset split; ``indices`` are their positions in the
    original split order, which is the order of the human-label files. This returns
    ``human[indices]`` after two checks, so that no figure is drawn on misaligned labels.

    Args:
        human: ``(M,)`` labels or ``(M, C)`` label distributions of the whole split, original order.
        indices: ``(N,)`` int positions of the run's images in the original split.
        labels: ``(N,)`` the run's labels of those images.
        name: the file / key, named in error messages (include the expected shape).
        min_agreement: the fraction of images whose human label (argmax of a distribution)
            must equal the run's label; below it the order is taken to be wrong.
        reference: optional ``(M,)`` labels of the same file that must equal the run's labels
            (e.g. CIFAR-10N ``clean_label``), checked to >= 99.9 % agreement in addition to the
            ``min_agreement`` check of ``human`` (noisy labels alone are a weak order check).

    Returns:
        ``human[indices]``: ``(N,)`` or ``(N, C)``.

    Raises:
        HumanLabelError: indices outside the file (file too short for the split), different
            lengths, or agreement below the threshold (file not in the original order).
    """
    human = np.asarray(human)
    idx = np.asarray(indices, dtype=np.int64).ravel()
    labels = np.asarray(labels).ravel()
    if idx.size != labels.size:
        raise HumanLabelError(f"{name}: {idx.size} indices for {labels.size} labels")
    if idx.size and (idx.min() < 0 or idx.max() >= len(human)):
        raise HumanLabelError(f"{name}: has {len(human)} rows but the run's images have original indices up to "
                              f"{int(idx.max())}; expected one row per image of the whole split in original order")
    if reference is not None:
        reference = np.asarray(reference)
        if len(reference) != len(human):
            raise HumanLabelError(f"{name}: reference labels ({len(reference)}) and human labels ({len(human)}) "
                                  f"differ in length")
        check_alignment(reference[idx], labels, f"{name} (reference labels)", 0.999)
    sel = human[idx]
    check_alignment(sel, labels, name, min_agreement)
    return sel


# --------------------------------------------------------------------------- novelty
def novelty_auroc(seen_norms: np.ndarray, unseen_norms: np.ndarray, n_boot: int = 1000, ci: float = 0.95,
                  seed: int = 0) -> dict[str, float]:
    """AUROC of the rule "small norm => unseen", with a bootstrap confidence interval.

    Seen vs unseen (PAPER.md claim 5): the score of a sample is its negative norm and the
    positive class is *unseen*, so ``AUROC = P(norm_unseen < norm_seen) + P(tie)/2``; 0.5 is
    chance and 1 means every unseen sample has a smaller norm than every seen one. The point
    estimate is scikit-learn's ``roc_auc_score``. The interval is a percentile bootstrap that
    resamples the seen and the unseen group independently (group sizes fixed), via
    ``scipy.stats.bootstrap``; the statistic of a resample is the Mann-Whitney U of the seen
    group divided by ``n_seen * n_unseen``, which equals the AUROC.

    Args:
        seen_norms: ``(n_seen,)`` norms of seen samples (e.g. training images).
        unseen_norms: ``(n_unseen,)`` norms of unseen samples (test / novel images).
        n_boot: bootstrap resamples (0 = no interval: NaN bounds).
        ci: confidence level of the interval.
        seed: seed of the resampling.

    Returns:
        dict with ``auroc``, ``ci_low``, ``ci_high``, ``se`` (bootstrap standard error of the
        AUROC: standard deviation of the resampled AUROCs; NaN without resamples), ``n_seen``,
        ``n_unseen``.

    Raises:
        ValueError: an empty group or non-finite norms.
    """
    s = np.asarray(seen_norms, dtype=np.float64).ravel()
    u = np.asarray(unseen_norms, dtype=np.float64).ravel()
    if s.size == 0 or u.size == 0:
        raise ValueError(f"novelty_auroc: need samples in both groups, got {s.size} seen and {u.size} unseen")
    if not (np.isfinite(s).all() and np.isfinite(u).all()):
        raise ValueError("novelty_auroc: non-finite norms")
    y = np.r_[np.zeros(s.size), np.ones(u.size)]
    auroc = float(roc_auc_score(y, -np.r_[s, u]))
    lo = hi = se = float("nan")
    if n_boot > 0 and s.size > 1 and u.size > 1:
        def statistic(a, b, axis=-1):
            return stats.mannwhitneyu(a, b, axis=axis).statistic / (a.shape[axis] * b.shape[axis])

        res = stats.bootstrap((s, u), statistic, n_resamples=n_boot, confidence_level=ci, method="percentile",
                              paired=False, vectorized=True, batch=50, random_state=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        se = float(res.standard_error)
    return {"auroc": auroc, "ci_low": lo, "ci_high": hi, "se": se, "n_seen": float(s.size), "n_unseen": float(u.size)}


def class_paired_novelty(run_a: Mapping[int, tuple[bool, float]], run_b: Mapping[int, tuple[bool, float]]) -> dict[str, float]:
    """Seen-minus-novel difference of class mean log norms from two runs that hold out different
    classes, with class identity and each run's overall norm scale cancelled (issue 20).

    Model: the mean log norm of class ``c`` in run ``r`` is ``a_r + b_c + d * novel_rc`` (``a_r`` the
    run's scale, ``b_c`` the class's own level, ``novel_rc`` 1 when ``c`` was held out of run ``r``'s
    training). Per class in both runs, ``diff_c = m_a(c) - m_b(c) = a_a - a_b + d (novel_ac - novel_bc)``:
    ``b_c`` cancels. Over the classes *seen in a, novel in b* (SN) it is ``a_a - a_b - d``, over those
    *novel in a, seen in b* (NS) ``a_a - a_b + d``; so ``effect = (mean_SN diff - mean_NS diff) / 2 = -d``,
    the seen-minus-novel log-norm difference of like classes, and ``scale = (mean_SN + mean_NS) / 2 =
    a_a - a_b``. Classes with the same role in both runs do not enter. With complementary held-out sets
    (every class novel in exactly one run) this equals the mean over classes of ``log norm when seen -
    log norm when novel``, after removing the run scales.

    Args:
        run_a, run_b: per class id, ``(novel, mean log norm)``: whether the class was held out of the
            run's training, and the mean log norm of its images in the role compared (novel: held-out
            class images; seen: images of the class when it was trained on, e.g. its test or its
            training images).

    Returns:
        dict with ``effect`` (> 0: a class has smaller norms when novel), ``scale`` (``a_a - a_b``),
        ``n_seen_novel`` (|SN|), ``n_novel_seen`` (|NS|).

    Raises:
        ValueError: SN or NS empty (the two runs do not swap any class between seen and novel), or a
            non-finite mean.
    """
    common = sorted(set(run_a) & set(run_b))
    sn = [run_a[c][1] - run_b[c][1] for c in common if not run_a[c][0] and run_b[c][0]]
    ns = [run_a[c][1] - run_b[c][1] for c in common if run_a[c][0] and not run_b[c][0]]
    if not sn or not ns:
        raise ValueError(f"class_paired_novelty: the runs must swap classes both ways between seen and novel; got "
                         f"{len(sn)} seen->novel and {len(ns)} novel->seen classes")
    if not np.isfinite(sn + ns).all():
        raise ValueError("class_paired_novelty: non-finite class mean log norm")
    return {"effect": float((np.mean(sn) - np.mean(ns)) / 2), "scale": float((np.mean(sn) + np.mean(ns)) / 2),
            "n_seen_novel": float(len(sn)), "n_novel_seen": float(len(ns))}
