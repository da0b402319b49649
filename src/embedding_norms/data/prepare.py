"""Assemble the image sets one run needs from its :class:`~embedding_norms.config.DataConfig`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..config import ConfigError, DataConfig, EvalConfig
from .sources import SPECS, ImageSet, load_split, make_standin
from .subsets import IMBALANCE_BASE, class_positions, imbalanced_indices, remap_labels, stratified_subset


@dataclass
class RunData:
    """Everything a run trains and evaluates on.

    Attributes:
        train: SSL training images (class filter -> stratified subset -> imbalance); also the
            kNN memory bank (un-augmented).
        test: evaluation images (same classes; stratified ``test_size`` subset).
        probe: fixed class-stratified subset of ``train`` whose norms are tracked every epoch.
        novel: images of unseen classes/datasets (class holdout or another dataset), or None.
    """

    train: ImageSet
    test: ImageSet
    probe: ImageSet
    novel: Optional[ImageSet]

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
    their training seed see the same images (issue 15).

    Raises:
        ConfigError: class ids outside the dataset, imbalance on a dataset without a
            released imbalance rule.
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
        keep = imbalanced_indices(train.labels.numpy(), train.num_classes, IMBALANCE_BASE[data.dataset])
        train = train.subset(keep, train.name + "[imbalanced]")
    test = test.subset(stratified_subset(test.labels.numpy(), data.test_size, sub + 1), test.name)
    probe = train.subset(stratified_subset(train.labels.numpy(), min(probe_size, len(train)), sub + 2),
                         train.name + "[probe]")

    novel = None
    if eval_cfg.novel == "heldout":
        rest = tuple(c for c in range(spec.num_classes) if c not in data.classes)
        novel = _select_classes(full_test, rest, f"{full_test.name}[heldout classes]")
        novel = novel.subset(stratified_subset(novel.labels.numpy(), data.test_size, sub + 3), novel.name)
    elif eval_cfg.novel is not None:
        other = _split(eval_cfg.novel, "test", data.standin, data_dir, download, sub)
        novel = other.subset(stratified_subset(other.labels.numpy(), data.test_size, sub + 3), other.name)
    return RunData(train=train, test=test, probe=probe, novel=novel)
