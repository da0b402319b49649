"""Static facts about the datasets, in one table read by config validation, data loading and
cost estimates (issue 11): classes, split sizes and stored image size."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset: classes, split sizes, stored image size (pixels)."""

    name: str
    num_classes: int
    image_size: int
    sizes: dict = field(default_factory=dict)  # split -> number of images (None = varies)


SPECS = {
    "cifar10": DatasetSpec("cifar10", 10, 32, {"train": 50000, "test": 10000}),
    "cifar100": DatasetSpec("cifar100", 100, 32, {"train": 50000, "test": 10000}),
    "imagenet100": DatasetSpec("imagenet100", 100, 128, {}),
    "flowers102": DatasetSpec("flowers102", 102, 128, {}),
    "stanford_cars": DatasetSpec("stanford_cars", 196, 128, {}),
}


#: Dataset names, in the order of :data:`SPECS`.
DATASETS = tuple(SPECS)
#: Number of classes of each dataset.
NUM_CLASSES = {name: spec.num_classes for name, spec in SPECS.items()}


def per_class(dataset: str, split: str) -> int | None:
    """Images per class of a balanced split with known size (CIFAR), else None."""
    spec = SPECS[dataset]
    n = spec.sizes.get(split)
    return None if n is None else n // spec.num_classes
