"""Data layer: datasets in memory, subsets, batched SSL augmentation, human labels."""

from .augment import SSLAugment, to_float
from .human_labels import HumanLabelError, check_alignment, load_cifar10h, load_cifar10n, load_cifar100n
from .prepare import RunData, check_run_sizes, expected_train_size, prepare_data
from .sources import (
    DATA_ENV,
    DOWNLOAD_ENV,
    SPECS,
    DataError,
    ImageSet,
    check_data_dir,
    dataset_available,
    resolve_data_dir,
)
from .loaders import load_split, make_standin
from .subsets import IMBALANCE_BASE, exponential_counts, imbalance_ranks, imbalanced_indices, stratified_subset

__all__ = [
    "SSLAugment", "to_float", "HumanLabelError", "check_alignment", "load_cifar10h", "load_cifar10n",
    "load_cifar100n", "RunData", "check_run_sizes", "expected_train_size", "prepare_data", "DATA_ENV", "DOWNLOAD_ENV", "SPECS", "DataError", "ImageSet",
    "check_data_dir", "dataset_available", "load_split", "make_standin", "resolve_data_dir", "IMBALANCE_BASE",
    "exponential_counts", "imbalance_ranks", "imbalanced_indices", "stratified_subset",
]
