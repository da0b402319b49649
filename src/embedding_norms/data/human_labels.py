"""Human labels aligned with the original CIFAR order: CIFAR-10N, CIFAR-100N (train), CIFAR-10H (test).

Files (``shared/data/README.md``): ``cifar10n_labels.npz`` / ``CIFAR-10_human.pt``,
``cifar100n_labels.npz`` / ``CIFAR-100_human.pt``, ``cifar10h-probs.npy``. Each loader checks
the checksum of the known files and the shape, and raises :class:`HumanLabelError` naming the
file and the expected shape. :func:`check_alignment` verifies the order against the dataset's
labels so that no figure is drawn on misaligned labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from .sources import DataError, resolve_data_dir, verify_file


class HumanLabelError(DataError):
    """A human-label file is missing, corrupt, of the wrong shape, or not aligned."""


def _find(data_dir: Optional[str | os.PathLike], names: list[str], what: str) -> Path:
    root = resolve_data_dir(data_dir)
    if root is not None:
        for n in names:
            if (root / n).is_file():
                return root / n
    where = f"in the data folder {root}" if root is not None else "(no data folder given)"
    raise HumanLabelError(f"{what} not found {where}: expected one of {', '.join(names)} "
                          f"(set --data-dir or EMBEDDING_NORMS_DATA to the folder holding it)")


def _load_noisy(path: Path) -> dict[str, np.ndarray]:
    verify_file(path)
    if path.suffix == ".npz":
        z = np.load(path, allow_pickle=False)
        return {k: np.asarray(z[k]) for k in z.files}
    import torch  # the .pt files are torch-pickled dicts of numpy arrays (known checksum above)

    d = torch.load(path, weights_only=False)
    return {k: np.asarray(v) for k, v in d.items()}


def load_cifar10n(data_dir: Optional[str | os.PathLike] = None) -> dict[str, np.ndarray]:
    """CIFAR-10N labels: keys ``clean_label``, ``aggre_label``, ``worse_label``, ``random_label1..3``.

    Returns:
        dict of int64 arrays of shape ``(50000,)`` in original CIFAR-10 train order.

    Raises:
        HumanLabelError: file missing, wrong checksum, missing key or wrong shape.
    """
    path = _find(data_dir, ["cifar10n_labels.npz", "CIFAR-10_human.pt"], "CIFAR-10N labels")
    d = _load_noisy(path)
    for key in ("clean_label", "aggre_label"):
        if key not in d or d[key].shape != (50000,):
            raise HumanLabelError(f"{path}: expected key {key!r} of shape (50000,), got "
                                  f"{d[key].shape if key in d else 'no such key'}")
    return {k: v.astype(np.int64) for k, v in d.items()}


def load_cifar100n(data_dir: Optional[str | os.PathLike] = None) -> dict[str, np.ndarray]:
    """CIFAR-100N labels: keys ``clean_label``, ``noisy_label`` (+ coarse), ``(50000,)`` int64.

    Raises:
        HumanLabelError: file missing, wrong checksum, missing key or wrong shape.
    """
    path = _find(data_dir, ["cifar100n_labels.npz", "CIFAR-100_human.pt"], "CIFAR-100N labels")
    d = _load_noisy(path)
    for key in ("clean_label", "noisy_label"):
        if key not in d or np.asarray(d[key]).shape != (50000,):
            raise HumanLabelError(f"{path}: expected key {key!r} of shape (50000,)")
    return {k: np.asarray(v).astype(np.int64) for k, v in d.items()}


def load_cifar10h(data_dir: Optional[str | os.PathLike] = None) -> np.ndarray:
    """CIFAR-10H human label distributions of the CIFAR-10 test set.

    Returns:
        float64 array ``(10000, 10)``, rows sum to 1, original test order.

    Raises:
        HumanLabelError: file missing, wrong checksum, wrong shape, rows not summing to 1.
    """
    path = _find(data_dir, ["cifar10h-probs.npy"], "CIFAR-10H probabilities")
    verify_file(path)
    probs = np.load(path, allow_pickle=False)
    if probs.shape != (10000, 10):
        raise HumanLabelError(f"{path}: expected shape (10000, 10), got {probs.shape}")
    if not np.allclose(probs.sum(1), 1.0, atol=1e-6):
        raise HumanLabelError(f"{path}: rows must sum to 1 (human label distributions)")
    return probs.astype(np.float64)


def check_alignment(human: np.ndarray, true_labels: np.ndarray, name: str, min_agreement: float) -> float:
    """Fraction of images whose human label (or argmax of a distribution) equals the true label.

    Args:
        human: ``(N,)`` labels or ``(N, C)`` distributions, in the same order as ``true_labels``.
        true_labels: ``(N,)`` dataset labels.
        min_agreement: below this the order is considered wrong.

    Raises:
        HumanLabelError: different lengths, or agreement below ``min_agreement`` (misaligned).
    """
    human = np.asarray(human)
    pred = human.argmax(1) if human.ndim == 2 else human
    if len(pred) != len(true_labels):
        raise HumanLabelError(f"{name}: {len(pred)} human labels for {len(true_labels)} images; "
                              f"expected one per image of the split in original order")
    agreement = float((pred == np.asarray(true_labels)).mean())
    if agreement < min_agreement:
        raise HumanLabelError(f"{name}: human labels agree with the dataset labels on only {agreement:.1%} "
                              f"(< {min_agreement:.0%}); the file is not in the dataset's original order")
    return agreement
