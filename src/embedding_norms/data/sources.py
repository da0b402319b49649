"""Image datasets as uint8 tensors held in memory.

This module says where each dataset is found and checks its files; :mod:`.loaders` decodes them
(:func:`~.loaders.load_split`). Every loader returns an :class:`ImageSet` whose ``images`` are
``(N, 3, H, W)`` uint8 and whose ``indices`` are the positions of the images in the dataset's *original* split order
(the order of the official CIFAR pickles / torchvision), so that human labels (CIFAR-10N,
CIFAR-100N, CIFAR-10H) can be aligned with any subset.

Where the images come from, in order of preference:

1. the offline data folder (``--data-dir`` or ``$EMBEDDING_NORMS_DATA``):
   ``cifar10_jpeg.npz`` (format of ``shared/data/README.md``; checksum verified),
   ``cifar100_jpeg.npz`` (same format), or torchvision's own layout
   (``cifar-10-batches-py/``, ``cifar-100-python/``, ``flowers-102/``, ``stanford_cars/``),
   or ``imagenet100/{train,val}/<class>/*`` image folders;
2. torchvision's download (``download=True``) into the data folder, or into
   ``~/.cache/embedding_norms/data`` when no folder is given.

A missing dataset raises :class:`DataError` naming the folder that was searched and both
fixes (the download flag and the offline variable), before any compute.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..facts import SPECS, DatasetSpec  # noqa: F401 (re-exported)
from ..io import sha256_file

DATA_ENV = "EMBEDDING_NORMS_DATA"
DOWNLOAD_ENV = "EMBEDDING_NORMS_DOWNLOAD"
CACHE_ENV = "EMBEDDING_NORMS_CACHE"

#: sha256 of the offline files of ``shared/data`` (see its README).
KNOWN_SHA256 = {
    "cifar10_jpeg.npz": "d27084a1ba2c42fbed431e01afd6e8fff42ef04aa75e19bbd9c91a06813820c3",
    "cifar10h-probs.npy": "436ae98620e00073f9d08585ac870573b588853e7af9f54eb1647408114af77d",
    "cifar10h-counts.npy": "9b36b4550349af56c79083356312eb4af856cc5fd3caf1f669d40b9d0bbb69ff",
    "cifar10n_labels.npz": "be0540029bef4278fb52f58861a17d2a78068f9b4329d6f126b354c01dfab2cf",
    "cifar100n_labels.npz": "fa0fbf6a20eb8f0a2a28ae1bbb2f19a51af46b853d9cfd3ecff0b75537753526",
    "CIFAR-10_human.pt": "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310",
    "CIFAR-100_human.pt": "bd2d80409754d420292d622e15e25248ba21e37d27429efac49c8da723f44394",
    "cifar10_test_set_original_labels.npy": "8fba587d5b11011df52b2a20eb4a272eeaf20c2d162554059f714d4b78d23aed",
}


class DataError(RuntimeError):
    """A dataset or label file is missing or invalid; the message says how to fix it."""


@dataclass
class ImageSet:
    """Images of one split in memory.

    Attributes:
        images: ``(N, 3, H, W)`` uint8 tensor.
        labels: ``(N,)`` int64 tensor of class ids ``0..num_classes-1``.
        indices: ``(N,)`` int64 numpy array: position of each image in the original split.
        num_classes: number of classes of the labelling (after any class remapping).
        name: e.g. ``"cifar10/train"``.
        standin: True when the images are a generated stand-in, not the real dataset.
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: np.ndarray
    num_classes: int
    name: str
    standin: bool = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray, name: Optional[str] = None) -> "ImageSet":
        """The images at positions ``idx`` (positions in this set, not original indices)."""
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return ImageSet(self.images[idx_t], self.labels[idx_t], self.indices[np.asarray(idx, dtype=np.int64)],
                        self.num_classes, name or self.name, self.standin)


# --------------------------------------------------------------------------- locations
def resolve_data_dir(data_dir: Optional[str | os.PathLike] = None) -> Optional[Path]:
    """The offline data folder: the argument, else ``$EMBEDDING_NORMS_DATA``, else None."""
    value = data_dir if data_dir not in (None, "") else os.environ.get(DATA_ENV) or None
    return Path(value).expanduser().resolve() if value else None


def download_allowed(download: Optional[bool] = None) -> bool:
    """The download flag: the argument, else ``$EMBEDDING_NORMS_DOWNLOAD`` in {1,true,yes}."""
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV, "").lower() in ("1", "true", "yes")


def cache_dir() -> Path:
    """User cache folder (``$EMBEDDING_NORMS_CACHE`` or ``~/.cache/embedding_norms``)."""
    base = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "embedding_norms")
    return Path(base).expanduser()


#: Datasets that torchvision can download (ImageNet-100 and Stanford Cars cannot be downloaded).
DOWNLOADABLE = ("cifar10", "cifar100", "flowers102")


def missing_dataset_error(dataset: str, data_dir: Optional[Path], looked_for: list[str]) -> DataError:
    """The error for a dataset found nowhere: the folder searched, the files looked for, both fixes."""
    where = f"in the data folder {data_dir}" if data_dir else "(no data folder given)"
    offline = f"point to an offline folder holding it (--data-dir DIR, or {DATA_ENV}=DIR; see README 'Data')"
    if dataset in DOWNLOADABLE:
        fix = f"either allow torchvision to download it (--download, or {DOWNLOAD_ENV}=1), or {offline}"
    else:
        fix = f"{offline}; it cannot be downloaded automatically"
    return DataError(f"{dataset} not found {where}; looked for: {', '.join(looked_for)}.\nFix: {fix}.")


def verify_file(path: Path) -> None:
    """Check a known offline file's checksum.

    Raises:
        DataError: the file's SHA-256 differs from the one in ``KNOWN_SHA256``.
    """
    expected = KNOWN_SHA256.get(path.name)
    if expected is None:
        return
    got = sha256_file(path)
    if got != expected:
        raise DataError(f"{path}: wrong checksum (sha256 {got[:12]}..., expected {expected[:12]}...); "
                        f"the file is corrupt or a different version: copy it again from the original source")


@functools.lru_cache(maxsize=None)
def _verify_once(path: str, size: int, mtime_ns: int) -> None:
    """:func:`verify_file`, cached per file version (path, size, modification time)."""
    verify_file(Path(path))


def check_data_dir(data_dir: Optional[str | os.PathLike] = None, download: Optional[bool] = None) -> Optional[Path]:
    """The offline data folder (:func:`resolve_data_dir`), checked to exist.

    Returns:
        the folder, or None when none is given.

    Raises:
        DataError: a folder was given (argument or ``$EMBEDDING_NORMS_DATA``) but is not an
            existing directory, and downloads (which would create it) are not allowed: a typo
            must not silently turn into "dataset missing".
    """
    root = resolve_data_dir(data_dir)
    if root is not None and not root.is_dir() and not download_allowed(download):
        source = "--data-dir" if data_dir not in (None, "") else f"${DATA_ENV}"
        raise DataError(f"the data folder {root} (from {source}) does not exist. Fix the path, or unset it and "
                        f"allow downloads with --download / {DOWNLOAD_ENV}=1 (see README 'Data')")
    return root


# --------------------------------------------------------------------------- loading
def dataset_available(dataset: str, data_dir: Optional[str | os.PathLike] = None,
                      download: Optional[bool] = None) -> tuple[bool, str]:
    """Whether ``dataset`` can be loaded here, and if not, why (no decoding, no compute).

    A known offline file (``cifar10_jpeg.npz``) that is present is checksum-verified once per
    process, so that a corrupt copy stops the runner before any training.

    Raises:
        DataError: the dataset's offline file is present but corrupt (wrong checksum).
    """
    if dataset not in SPECS:
        return False, f"unknown dataset {dataset!r}"
    root = resolve_data_dir(data_dir)
    found = locate_source(dataset, root)
    if found is not None:
        if found[0] == "npz":
            st = found[1].stat()
            _verify_once(str(found[1]), st.st_size, st.st_mtime_ns)
        return True, ""
    if download_allowed(download) and dataset in DOWNLOADABLE:
        return True, "will be downloaded by torchvision"
    return False, str(missing_dataset_error(dataset, root, looked_for(dataset)))


def data_source(dataset: str, data_dir: Optional[str | os.PathLike] = None, download: Optional[bool] = None,
                standin: bool = False) -> Optional[str]:
    """Where :func:`load_split` would take ``dataset`` from: ``npz`` (offline JPEG copy),
    ``torchvision`` (original pickles / torchvision layout), ``folder`` (ImageNet-100 image
    folder), ``download`` (torchvision will download it), ``standin`` (``standin=True``), or None
    when it is not available. No decoding; used for a run's identity (``data.source``)."""
    if standin:
        return "standin"
    found = locate_source(dataset, resolve_data_dir(data_dir))
    if found is not None:
        return found[0]
    return "download" if download_allowed(download) and dataset in DOWNLOADABLE else None


def resolve_data_source(cfg, data_dir: Optional[str | os.PathLike] = None, download: Optional[bool] = None):
    """``cfg`` (a :class:`~embedding_norms.config.RunConfig`) with ``data.source`` set to the source
    found here (:func:`data_source`); unchanged when the dataset is not available (training then
    reports the missing data). Call it at planning time, before the run's name is used."""
    src = data_source(cfg.data.dataset, data_dir, download, cfg.data.standin)
    if src is None or cfg.data.source == src:
        return cfg
    return cfg.replace({"data": {"source": src}})


def looked_for(dataset: str) -> list[str]:
    """The files and folders that would hold ``dataset`` in a data folder (for error messages)."""
    return {
        "cifar10": ["cifar10_jpeg.npz", "cifar-10-batches-py/"],
        "cifar100": ["cifar100_jpeg.npz", "cifar-100-python/"],
        "imagenet100": ["imagenet100/train/<class>/*", "imagenet100/val/<class>/*"],
        "flowers102": ["flowers-102/ (torchvision layout)"],
        "stanford_cars": ["stanford_cars/ (torchvision layout)"],
    }[dataset]


def locate_source(dataset: str, root: Optional[Path]) -> Optional[tuple[str, Path]]:
    """(kind, path) of the first source of ``dataset`` found under ``root``."""
    roots = [r for r in (root, cache_dir() / "data") if r is not None]
    for r in roots:
        if dataset == "cifar10":
            if (r / "cifar10_jpeg.npz").is_file():
                return "npz", r / "cifar10_jpeg.npz"
            if (r / "cifar-10-batches-py").is_dir():
                return "torchvision", r
        elif dataset == "cifar100":
            if (r / "cifar100_jpeg.npz").is_file():
                return "npz", r / "cifar100_jpeg.npz"
            if (r / "cifar-100-python").is_dir():
                return "torchvision", r
        elif dataset == "imagenet100":
            if (r / "imagenet100" / "train").is_dir():
                return "folder", r / "imagenet100"
        elif dataset == "flowers102":
            if (r / "flowers-102").is_dir():
                return "torchvision", r
        elif dataset == "stanford_cars":
            if (r / "stanford_cars").is_dir():
                return "torchvision", r
    return None
