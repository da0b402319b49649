"""Assemble the image sets one run needs from its :class:`~embedding_norms.config.DataConfig`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

from ..config import CIFAR_PER_CLASS, ConfigError, DataConfig, EvalConfig, RunConfig
from .loaders import load_split, make_standin, standin_per_class
from .sources import SPECS, ImageSet
from .subsets import (IMBALANCE_BASE, class_positions, exponential_counts, imbalance_ranks, imbalanced_indices,
                      remap_labels, stratified_subset)


@dataclass
class RunData:
    """Everything a run trains and evaluates on.

    Attributes:
        train: SSL training images (class filter -> stratified subset -> imbalance); also the
            kNN memory bank (un-augmented).
        test: evaluation images (same classes; stratified ``test_size`` subset).
        probe: fixed class-stratified subset of ``train`` whose norms are tracked every epoch.
        novel: images of unseen classes/datasets (class holdout or another dataset), or None.
        test_full: every test image of the selected classes, the set ``test`` is subsampled from
            (the same object as ``test`` without a ``test_size``); only its norms are saved, at
            ``train.full_test_norms_epochs`` (split ``test_all``).
    """

    train: ImageSet
    test: ImageSet
    probe: ImageSet
    novel: Optional[ImageSet]
    test_full: Optional[ImageSet] = None

    @property
    def num_classes(self) -> int:
        """Number of classes of the training set (after class selection)."""
        return self.train.num_classes


def _split(dataset: str, split: str, standin: bool, data_dir, download, seed: int) -> ImageSet:
    if standin:
        return make_standin(dataset, split, seed=0)
    return load_split(dataset, split, data_dir, download)


def _select_classes(s: ImageSet, classes: tuple[int, ...], name: str) -> ImageSet:
    pos = class_positions(s.labels.numpy(), classes)
    sub = s.subset(pos, name)
    sub.labels = torch.from_numpy(remap_labels(sub.labels.numpy(), classes))
    sub.num_classes = len(classes)
    return sub


def prepare_data(data: DataConfig, eval_cfg: EvalConfig, seed: int, probe_size: int,
                 data_dir: Optional[str | os.PathLike] = None, download: Optional[bool] = None) -> RunData:
    """Load and subset the images of a run (deterministic given ``data``).

    The subsets (training subset, test subset, probe set, novel set) and generated stand-ins
    depend on ``data.subset_seed`` only, not on the training seed ``seed``: runs that differ in
    their training seed see the same images (issue 15); the one exception is
    ``data.imbalance_shift_per_seed``, which rotates the class sizes with ``seed`` (issue 20).

    Raises:
        ConfigError: class ids outside the dataset, imbalance on a dataset without a
            released imbalance rule, ``probe_size`` or ``eval.knn_k`` larger than the training set.
        DataError: missing or invalid data files.
    """
    spec = SPECS[data.dataset]
    if data.imbalance != "none" and data.dataset not in IMBALANCE_BASE:
        raise ConfigError(f"data.imbalance={data.imbalance!r} is defined for {', '.join(IMBALANCE_BASE)} only, "
                          f"not {data.dataset}")
    if data.classes is not None and max(data.classes) >= spec.num_classes:
        raise ConfigError(f"data.classes {list(data.classes)} outside 0..{spec.num_classes - 1} for {data.dataset}")
    sub = data.subset_seed  # the images do not change with the training seed
    full_train = _split(data.dataset, "train", data.standin, data_dir, download, sub)
    full_test = _split(data.dataset, "test", data.standin, data_dir, download, sub)

    train, test = full_train, full_test
    if data.classes is not None:
        train = _select_classes(full_train, data.classes, f"{full_train.name}[classes]")
        test = _select_classes(full_test, data.classes, f"{full_test.name}[classes]")

    train = train.subset(stratified_subset(train.labels.numpy(), data.train_size, sub), train.name)
    if data.imbalance == "exponential":
        ranks = imbalance_ranks(train.num_classes, seed, data.imbalance_shift_per_seed)  # seed: train.seed
        keep = imbalanced_indices(train.labels.numpy(), train.num_classes, IMBALANCE_BASE[data.dataset], ranks)
        train = train.subset(keep, train.name + "[imbalanced]")
    test_full = test
    test = test.subset(stratified_subset(test.labels.numpy(), data.test_size, sub + 1), test.name)
    _check_sizes_against(len(train), probe_size, eval_cfg.knn_k, data)
    probe = train.subset(stratified_subset(train.labels.numpy(), probe_size, sub + 2), train.name + "[probe]")

    novel = None
    if eval_cfg.novel == "heldout":
        rest = tuple(c for c in range(spec.num_classes) if c not in data.classes)
        novel = _select_classes(full_test, rest, f"{full_test.name}[heldout classes]")
        novel = novel.subset(stratified_subset(novel.labels.numpy(), data.test_size, sub + 3), novel.name)
    elif eval_cfg.novel is not None:
        other = _split(eval_cfg.novel, "test", data.standin, data_dir, download, sub)
        novel = other.subset(stratified_subset(other.labels.numpy(), data.test_size, sub + 3), other.name)
    return RunData(train=train, test=test, probe=probe, novel=novel, test_full=test_full)


# --------------------------------------------------------------------------- sizes known before loading
def expected_train_size(data: DataConfig) -> Optional[int]:
    """Number of training images :func:`prepare_data` will return, from the dataset facts alone.

    Exact for CIFAR-10/100 and for stand-ins (their per-class counts are fixed): class selection,
    then the class-stratified ``train_size`` subset (each class gets ``floor`` or ``ceil`` of
    ``train_size / classes``), then the exponential imbalance (``max(1, int(n_min * base**-i))``
    images of class ``i``, ``n_min`` the smallest class). None where the dataset's size is only
    known once it is loaded (ImageNet-100, Flowers-102, Stanford Cars).
    """
    if data.standin:
        per_class = standin_per_class(data.dataset, "train")
    elif data.dataset in CIFAR_PER_CLASS:
        per_class = CIFAR_PER_CLASS[data.dataset]["train"]
    else:
        return None
    k = len(data.classes) if data.classes is not None else SPECS[data.dataset].num_classes
    n, smallest = per_class * k, per_class
    if data.train_size is not None and data.train_size < n:
        n, smallest = data.train_size, data.train_size // k
    if data.imbalance == "exponential" and data.dataset in IMBALANCE_BASE:
        n = sum(max(1, c) for c in exponential_counts(max(smallest, 1), k, IMBALANCE_BASE[data.dataset]))
    return n


def check_run_sizes(cfg: RunConfig) -> None:
    """Refuse a run whose sizes do not fit its training set, before any data are loaded.

    Checks (where :func:`expected_train_size` knows the size): at least one optimizer step
    (``optim.batch_size x optim.accumulation_steps`` images), ``train.probe_size`` and
    ``eval.knn_k`` (the kNN memory bank is the training set) at most the training set.

    Raises:
        ConfigError: naming the key, both sizes and the fix.
    """
    n = expected_train_size(cfg.data)
    if n is None:
        return
    o = cfg.optim
    step = o.batch_size * o.accumulation_steps
    if n < step:
        raise ConfigError(f"the training set has {n} images ({_describe(cfg.data)}), fewer than one optimizer step "
                          f"of optim.batch_size x optim.accumulation_steps = {step}; lower the batch size or "
                          f"enlarge data.train_size")
    _check_sizes_against(n, cfg.train.probe_size, cfg.eval.knn_k, cfg.data)


def _check_sizes_against(n: int, probe_size: int, knn_k: int, data: DataConfig) -> None:
    what = f"the training set has only {n} images ({_describe(data)})"
    if probe_size > n:
        raise ConfigError(f"train.probe_size is {probe_size}, but {what}; set train.probe_size <= {n} "
                          f"or enlarge data.train_size")
    if knn_k > n:
        raise ConfigError(f"eval.knn_k is {knn_k}, but the kNN memory bank is the training set and {what}; "
                          f"set eval.knn_k <= {n} or enlarge data.train_size")


def _describe(data: DataConfig) -> str:
    parts = [data.dataset + (" stand-in" if data.standin else ""), f"data.train_size={data.train_size}"]
    if data.classes is not None:
        parts.append(f"{len(data.classes)} classes")
    if data.imbalance != "none":
        parts.append(f"data.imbalance={data.imbalance}")
    return ", ".join(parts)
