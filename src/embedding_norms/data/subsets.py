"""Subsets of a dataset: stratified subsets, the released code's class imbalance, class holdout."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

#: Base of the exponential class imbalance in the released code (``CIFAR*_Unbalanced``).
IMBALANCE_BASE = {"cifar10": 1.5, "cifar100": 1.03365}


def exponential_counts(n_per_class: int, num_classes: int, base: float) -> list[int]:
    """Images kept per class: ``int(n * exp(-i * log(base)))`` for class ``i``.

    This is the released code's formula (``CIFAR10_Unbalanced.throw_away_samples``); with
    ``n = 5000, base = 1.5`` it gives 5000, 3333, 2222, 1481, 987, 658, 438, 292, 195, 130.

    Raises:
        ValueError: ``n_per_class < 1`` or ``base <= 1``.
    """
    if n_per_class < 1 or base <= 1:
        raise ValueError(f"need n_per_class >= 1 and base > 1, got {n_per_class}, {base}")
    return [int(n_per_class * np.exp(-i * np.log(base))) for i in range(num_classes)]


def imbalance_ranks(num_classes: int, seed: int = 0, shift_per_seed: int = 0) -> np.ndarray:
    """Size rank of every class (0 = largest) under the rotation of issue 20.

    Class ``c`` gets rank ``(c - seed * shift_per_seed) mod num_classes``: ``shift_per_seed = 0``
    is the released order (rank ``c``); with ``gcd(shift_per_seed, num_classes) = 1`` the first
    ``num_classes`` seeds give every class every rank once (a Latin square), so a class's own norm
    level or growth is not tied to its size across seeds. E.g. 10 classes, shift 3, seeds 0..3:
    class 0 gets ranks 0, 7, 4, 1 (sizes 1.5^0, 1.5^-7, 1.5^-4, 1.5^-1 of the largest).

    Returns:
        ``(num_classes,)`` int64 ranks, a permutation of ``0 .. num_classes - 1``.

    Raises:
        ValueError: ``num_classes < 1``, a negative seed or shift.
    """
    if num_classes < 1 or seed < 0 or shift_per_seed < 0:
        raise ValueError(f"need num_classes >= 1, seed >= 0 and shift_per_seed >= 0, got {num_classes}, {seed}, "
                         f"{shift_per_seed}")
    return (np.arange(num_classes) - seed * shift_per_seed) % num_classes


def imbalanced_indices(labels: np.ndarray, num_classes: int, base: float, ranks: Optional[Sequence[int]] = None) -> np.ndarray:
    """Positions kept by the exponential imbalance: the first ``counts[ranks[c]]`` images of class ``c``.

    ``n_per_class`` is the size of the smallest class of ``labels`` (so a balanced subset of
    500 per class gives 500, 333, 222, ...). ``ranks`` (:func:`imbalance_ranks`) says which size
    each class gets; None = the released order (class ``i`` keeps ``counts[i]``). Positions are
    returned in ascending order.

    Raises:
        ValueError: a class is missing from ``labels``, or ``ranks`` is not a permutation of the classes.
    """
    labels = np.asarray(labels)
    per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    if min(len(p) for p in per_class) == 0:
        raise ValueError("every class must be present to build the imbalanced subset")
    ranks = np.arange(num_classes) if ranks is None else np.asarray(ranks)
    if sorted(ranks.tolist()) != list(range(num_classes)):
        raise ValueError(f"ranks must be a permutation of 0..{num_classes - 1}, got {ranks.tolist()}")
    counts = exponential_counts(min(len(p) for p in per_class), num_classes, base)
    keep = np.concatenate([p[: max(1, counts[r])] for p, r in zip(per_class, ranks)])
    return np.sort(keep)


def stratified_subset(labels: np.ndarray, size: Optional[int], seed: int) -> np.ndarray:
    """Positions of a seeded, class-stratified subset with ``size`` images (sorted).

    ``size=None`` or ``size >= len(labels)`` returns all positions. Uses scikit-learn's
    ``train_test_split(stratify=labels)``, so class proportions are kept. scikit-learn cannot
    stratify a class with a single image (e.g. the rarest classes of an imbalanced subset);
    then each class gets ``floor(size * n_c / n)`` images plus one for the classes with the
    largest remainders (ties broken at random), drawn at random within the class.

    Raises:
        ValueError: ``size`` smaller than the number of classes.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if size is None or size >= n:
        return np.arange(n)
    classes, counts = np.unique(labels, return_counts=True)
    n_classes = len(classes)
    if size < n_classes:
        raise ValueError(f"a stratified subset of {size} images cannot hold all {n_classes} classes")
    if counts.min() >= 2:
        keep, _ = train_test_split(np.arange(n), train_size=size, stratify=labels, random_state=seed)
        return np.sort(keep)
    rng = np.random.default_rng(seed)
    exact = size * counts / n
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((rng.permutation(n_classes), -(exact - quota)))  # largest remainder first
    quota[order[: size - quota.sum()]] += 1
    keep = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(keep))


def class_positions(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Positions whose label is in ``classes`` (ascending)."""
    return np.flatnonzero(np.isin(np.asarray(labels), np.asarray(list(classes))))


def remap_labels(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Map class ``classes[k]`` to ``k`` (labels must all be in ``classes``)."""
    lut = np.full(int(max(max(classes), np.max(labels))) + 1, -1, dtype=np.int64)
    lut[np.asarray(list(classes))] = np.arange(len(classes))
    out = lut[np.asarray(labels)]
    if (out < 0).any():
        raise ValueError("labels outside the selected classes")
    return out
