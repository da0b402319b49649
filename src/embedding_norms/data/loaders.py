"""Loading a split into memory (:func:`load_split`): decoding the stored image formats into uint8
tensors (JPEG archives, torchvision's CIFAR pickles, image folders, Flowers-102, Stanford Cars),
and generated stand-ins of a dataset. Where each dataset is found is :mod:`.sources`."""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..facts import SPECS
from .sources import (DOWNLOADABLE, DataError, ImageSet, cache_dir, download_allowed, locate_source, looked_for,
                      missing_dataset_error, resolve_data_dir, verify_file)

#: Which torchvision Flowers-102 split plays our ``train`` / ``test`` role (as released).
FLOWERS_SPLITS = {"train": "test", "test": "val"}


def _decode_jpegs(buf: np.ndarray, offsets: np.ndarray) -> torch.Tensor:
    """Decode concatenated JPEG files to ``(N, 3, H, W)`` uint8 (torchvision.io, 2 threads)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tb = torch.from_numpy(buf)
    blobs = [tb[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    chunks = [blobs[i:i + 2000] for i in range(0, len(blobs), 2000)]
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (pinned here; see README)
        warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            parts = list(pool.map(lambda c: torch.stack(decode_jpeg(c, mode=ImageReadMode.RGB)), chunks))
    return torch.cat(parts)


def _load_jpeg_npz(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    verify_file(path)
    try:
        z = np.load(path, allow_pickle=False)
        buf, off, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a valid JPEG archive ({exc}); expected keys {split}_jpeg, "
                        f"{split}_offsets, {split}_labels (format in shared/data/README.md)") from exc
    if off.ndim != 1 or len(off) != len(labels) + 1 or off[-1] != len(buf):
        raise DataError(f"{path}: {split}_offsets has shape {off.shape}, expected ({len(labels) + 1},) ending at {len(buf)}")
    images = _decode_jpegs(buf, off)
    return images, torch.from_numpy(labels.astype(np.int64))


def _load_torchvision_cifar(dataset: str, root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if dataset == "cifar10" else CIFAR100
    try:
        ds = cls(root=str(root), train=(split == "train"), download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataError(f"{root}: torchvision could not load {dataset}: {exc}. Re-download it (--download) "
                        f"or fix the folder") from exc
    # ds.data is an HWC view of the CHW rows of the pickles: transposing back is free (no copy)
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


def _decode_resize(paths: list[str], size: int) -> torch.Tensor:
    """Read image files and resize them to ``size x size`` (bicubic, as the released code)."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as F

    def one(p: str) -> torch.Tensor:
        img = decode_image(p, mode=ImageReadMode.RGB)
        return F.resize(img, [size, size], interpolation=F.InterpolationMode.BICUBIC, antialias=True)

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        return torch.stack(list(pool.map(one, paths)))


def _cached_decode(key: str, paths: list[str], size: int) -> torch.Tensor:
    """Decode + resize once and keep the result in the user cache (large folder datasets)."""
    stat = "".join(f"{p}:{os.path.getsize(p)}" for p in paths)
    digest = hashlib.sha256(f"{key}|{size}|{stat}".encode()).hexdigest()[:16]
    cfile = cache_dir() / f"{key}-{size}px-{digest}.npy"
    if cfile.is_file():
        return torch.from_numpy(np.load(cfile))
    images = _decode_resize(paths, size)
    cfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfile.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, images.numpy())
    os.replace(tmp, cfile)
    return images


def _load_image_folder(folder: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import ImageFolder

    if not folder.is_dir():
        raise DataError(f"{folder} does not exist; ImageNet-100 needs imagenet100/train/<class>/ and imagenet100/val/<class>/")
    try:
        ds = ImageFolder(str(folder), loader=lambda p: p)  # only the file list and labels
    except FileNotFoundError as exc:  # no class folders, or a class folder without images
        raise DataError(f"{folder}: not a valid ImageNet-100 folder ({exc}); expected 100 class folders "
                        f"<class>/*.jpg, each holding at least one image") from exc
    if len(ds.classes) != SPECS["imagenet100"].num_classes:
        raise DataError(f"{folder}: found {len(ds.classes)} class folders, expected 100 (ImageNet-100)")
    paths = [p for p, _ in ds.samples]
    images = _cached_decode(f"imagenet100-{folder.name}", paths, size)
    return images, torch.as_tensor([t for _, t in ds.samples], dtype=torch.int64)


def _load_flowers(root: Path, split: str, size: int, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import Flowers102

    try:
        # released code: SSL training on torchvision's "test" split (the large, imbalanced one),
        # evaluation on "val" (issue 12)
        ds = Flowers102(str(root), split=FLOWERS_SPLITS[split], download=download)
    except RuntimeError as exc:
        raise DataError(f"{root}: torchvision could not load Flowers-102: {exc}") from exc
    images = _cached_decode(f"flowers102-{split}", [str(p) for p in ds._image_files], size)
    return images, torch.as_tensor(ds._labels, dtype=torch.int64)


def _load_cars(root: Path, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import StanfordCars

    try:
        ds = StanfordCars(str(root), split="train" if split == "train" else "test", download=False)
    except RuntimeError as exc:
        raise DataError(f"{root}: torchvision could not load Stanford Cars: {exc} (its download is broken "
                        f"upstream; place the files in {root}/stanford_cars as torchvision expects)") from exc
    images = _cached_decode(f"stanford_cars-{split}", [p for p, _ in ds._samples], size)
    return images, torch.as_tensor([t for _, t in ds._samples], dtype=torch.int64)


# --------------------------------------------------------------------------- stand-ins
def standin_per_class(dataset: str, split: str) -> int:
    """Images per class of :func:`make_standin`'s default stand-in (40 train / 10 test, 8 / 4 at 128 px)."""
    if SPECS[dataset].image_size <= 32:
        return 40 if split == "train" else 10
    return 8 if split == "train" else 4


def make_standin(dataset: str, split: str, per_class: Optional[int] = None, seed: int = 0) -> ImageSet:
    """A generated stand-in for a dataset that is not available (wiring tests only).

    Each class has a fixed random low-frequency colour pattern; each image is that pattern,
    randomly shifted, plus pixel noise, so a network can learn something. The number of
    classes and the image size are the dataset's own (``SPECS``).

    Args:
        dataset: dataset name whose shape is imitated.
        split: ``train`` or ``test`` (different images).
        per_class: images per class (default 40 train / 10 test, fewer at 128 px).

    Returns:
        ImageSet with ``standin=True``.
    """
    spec = SPECS[dataset]
    if per_class is None:
        per_class = standin_per_class(dataset, split)
    g = torch.Generator().manual_seed(zlib.crc32(dataset.encode()) + seed)  # same classes for train and test
    s = spec.image_size
    coarse = torch.rand(spec.num_classes, 3, 4, 4, generator=g)
    patterns = torch.nn.functional.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)
    g2 = torch.Generator().manual_seed(seed * 31 + (0 if split == "train" else 1))
    labels = torch.arange(spec.num_classes).repeat_interleave(per_class)
    shifts = torch.randint(-s // 8, s // 8 + 1, (len(labels), 2), generator=g2)
    base = patterns[labels]
    # torch.roll of every image by its shift, as one gather (out[i] = in[(i - shift) mod s])
    ar = torch.arange(s)
    rows = ((ar[None, :] - shifts[:, :1]) % s)[:, None, :, None].expand(-1, 3, s, s)
    cols = ((ar[None, :] - shifts[:, 1:]) % s)[:, None, None, :].expand(-1, 3, s, s)
    imgs = base.gather(2, rows).gather(3, cols)
    imgs = (imgs + 0.15 * torch.randn(imgs.shape, generator=g2)).clamp(0, 1)
    images = (imgs * 255).round().to(torch.uint8)
    return ImageSet(images, labels.to(torch.int64), np.arange(len(labels)), spec.num_classes,
                    f"{dataset}-standin/{split}", standin=True)


# --------------------------------------------------------------------------- one split
def load_split(dataset: str, split: str, data_dir: Optional[str | os.PathLike] = None,
               download: Optional[bool] = None) -> ImageSet:
    """Load one split of a dataset into memory (decoded once per process, then cached).

    Args:
        dataset: one of ``SPECS`` (cifar10, cifar100, imagenet100, flowers102, stanford_cars).
        split: ``"train"`` or ``"test"`` (ImageNet-100's ``val``, Flowers' ``test``).
        data_dir: offline folder; default ``$EMBEDDING_NORMS_DATA``.
        download: allow torchvision to download (default ``$EMBEDDING_NORMS_DOWNLOAD``).

    Returns:
        ImageSet with images ``(N, 3, H, W)`` uint8 in original order.

    Raises:
        DataError: unknown dataset, missing files, wrong checksum or shape.
    """
    if dataset not in SPECS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(SPECS)}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    root = resolve_data_dir(data_dir)
    return _load_cached(dataset, split, str(root) if root else None, download_allowed(download))


@functools.lru_cache(maxsize=8)
def _load_cached(dataset: str, split: str, root_s: Optional[str], download: bool) -> ImageSet:
    root = Path(root_s) if root_s else None
    found = locate_source(dataset, root)
    if found is None:
        if not download or dataset not in DOWNLOADABLE:
            raise missing_dataset_error(dataset, root, looked_for(dataset))
        target = root or (cache_dir() / "data")
        target.mkdir(parents=True, exist_ok=True)
        found = ("download", target)
    kind, path = found
    spec = SPECS[dataset]
    if kind == "npz":
        images, labels = _load_jpeg_npz(path, split)
    elif kind in ("torchvision", "download") and dataset in ("cifar10", "cifar100"):
        images, labels = _load_torchvision_cifar(dataset, path, split, download=(kind == "download"))
    elif dataset == "imagenet100":
        images, labels = _load_image_folder(path / ("train" if split == "train" else "val"), spec.image_size)
    elif dataset == "flowers102":
        images, labels = _load_flowers(path, split, spec.image_size, download=(kind == "download"))
    else:
        images, labels = _load_cars(path, split, spec.image_size)
    expected = spec.sizes.get(split)
    if expected is not None and len(labels) != expected:
        raise DataError(f"{path}: {dataset}/{split} has {len(labels)} images, expected {expected}; "
                        f"the folder is incomplete or holds another dataset")
    if labels.min() < 0 or labels.max() >= spec.num_classes:
        raise DataError(f"{path}: {dataset}/{split} labels outside 0..{spec.num_classes - 1}")
    images.requires_grad_(False)
    return ImageSet(images, labels, np.arange(len(labels)), spec.num_classes, f"{dataset}/{split}")
