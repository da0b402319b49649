"""Data layer: offline CIFAR-10, torchvision layouts (small generated stand-ins), errors,
imbalanced counts, stratified subsets and the class-holdout split.

Expectations are independent of the code: hand lists and exact rational arithmetic for the
imbalanced counts, Pillow as a second JPEG decoder, the published first CIFAR-10 labels and a
ciFAIR duplicate pair for the order, torchvision's own dataset classes reading folders written
here, and solid-colour stand-in images whose colour encodes their class.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import shutil
from decimal import Decimal, getcontext
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

from embedding_norms.config import ConfigError, DataConfig, EvalConfig
from embedding_norms.data import prepare as prepare_mod
from embedding_norms.data.prepare import prepare_data
from embedding_norms.data.sources import (
    DATA_ENV,
    DOWNLOAD_ENV,
    SPECS,
    DataError,
    DatasetSpec,
    dataset_available,
)
from embedding_norms.data import loaders
from embedding_norms.data.loaders import FLOWERS_SPLITS, load_split, make_standin
from embedding_norms.data.subsets import (
    imbalance_ranks,
    IMBALANCE_BASE,
    exponential_counts,
    imbalanced_indices,
    stratified_subset,
)

#: torchvision 0.29 deprecates its JPEG decoders (in favour of TorchCodec) on every call; the
#: loaders still use them, so the warning is silenced here rather than printed ~2000 times.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

#: Well-known first CIFAR-10 labels (shared/data/README.md, "Known images").
FIRST_TRAIN = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # frog truck truck deer car car bird horse ship cat
FIRST_TEST = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]   # cat ship ship airplane frog frog car frog cat car
#: PAPER.md: imbalanced CIFAR-10 keeps these many training images of class i.
CIFAR10_IMBALANCED = [5000, 3333, 2222, 1481, 987, 658, 438, 292, 195, 130]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small tensors: one intra-op thread avoids OpenMP spin-waiting on a busy 2-core machine
    (10-30x slower otherwise when other processes load the CPUs); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def cifar(data_dir):
    """CIFAR-10 train/test decoded once per session from the offline folder, plus the raw npz labels."""
    z = np.load(data_dir / "cifar10_jpeg.npz", allow_pickle=False)
    return {
        "train": load_split("cifar10", "train", data_dir),
        "test": load_split("cifar10", "test", data_dir),
        "train_labels": np.asarray(z["train_labels"]),
        "test_labels": np.asarray(z["test_labels"]),
    }


@pytest.fixture
def uncached(monkeypatch):
    """Load without the in-process cache, so folders written by a test do not evict the real CIFAR-10."""
    monkeypatch.setattr(loaders, "_load_cached", loaders._load_cached.__wrapped__)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _colour(c: int) -> tuple[int, int, int]:
    """A distinct solid colour per class (L-inf distance >= 40 between classes, up to 343 classes)."""
    return (c % 7) * 40 + 5, ((c // 7) % 7) * 40 + 5, (c // 49) * 40 + 5


def _write_image(path: Path, c: int, size: tuple[int, int], gray: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gray:
        Image.new("L", size, _colour(c)[0]).save(path, quality=95)
    else:
        Image.new("RGB", size, _colour(c)).save(path, quality=95)


def _check_colours(images: torch.Tensor, labels, gray_first: bool = False) -> None:
    """Each image is (close to) the solid colour of its class: image and label belong together."""
    mean = images.float().mean(dim=(2, 3)).numpy()
    expected = np.array([_colour(int(c)) for c in labels], dtype=np.float64)
    if gray_first:
        expected[0] = expected[0, 0]
    assert np.abs(mean - expected).max() <= 4


# --------------------------------------------------------------------------- offline CIFAR-10
def test_offline_cifar10_shapes_labels_and_order(cifar, data_dir):
    tr, te = cifar["train"], cifar["test"]
    assert tr.images.shape == (50000, 3, 32, 32) and te.images.shape == (10000, 3, 32, 32)
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.num_classes == 10 and tr.name == "cifar10/train" and not tr.standin
    np.testing.assert_array_equal(tr.indices, np.arange(50000))
    np.testing.assert_array_equal(tr.labels.numpy(), cifar["train_labels"])
    np.testing.assert_array_equal(te.labels.numpy(), cifar["test_labels"])
    assert tr.labels[:10].tolist() == FIRST_TRAIN and te.labels[:10].tolist() == FIRST_TEST
    assert np.bincount(tr.labels.numpy()).tolist() == [5000] * 10
    assert np.bincount(te.labels.numpy()).tolist() == [1000] * 10
    # the cleanlab list of original test labels (a separate file) agrees exactly
    np.testing.assert_array_equal(te.labels.numpy(), np.load(data_dir / "cifar10_test_set_original_labels.npy"))


def test_offline_decode_matches_pillow_and_readme_stats(cifar, data_dir):
    """A second decoder (Pillow) gives the same pixels (README: at most a level or two apart)."""
    z = np.load(data_dir / "cifar10_jpeg.npz", allow_pickle=False)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        buf, off = z[f"{split}_jpeg"], z[f"{split}_offsets"]
        n = len(off) - 1
        for i in np.concatenate([[0, n - 1], rng.choice(n, 30, replace=False)]):
            ref = np.asarray(Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())).convert("RGB"))
            got = cifar[split].images[i].permute(1, 2, 0).numpy()
            assert np.abs(ref.astype(int) - got.astype(int)).max() <= 2, (split, i)
    # README: decoded train pixels have per-channel mean (0.4912, 0.4821, 0.4465)
    sums = torch.zeros(3, dtype=torch.float64)
    for chunk in torch.split(cifar["train"].images, 10000):
        sums += chunk.float().sum(dim=(0, 2, 3)).double()
    mean = (sums / (50000 * 32 * 32 * 255)).numpy()
    np.testing.assert_allclose(mean, [0.4912, 0.4821, 0.4465], atol=3e-4)


def test_offline_order_cifair_duplicate(cifar):
    """ciFAIR lists (test 6611, train 49007) as near-duplicates (original indices): train[49007] must be
    the nearest training image of test[6611] (cosine on per-image mean-centred pixels)."""
    q = cifar["test"].images[6611].reshape(-1).float()
    q = (q - q.mean()) / (q - q.mean()).norm()
    sims = []
    for chunk in torch.split(cifar["train"].images.reshape(50000, -1), 10000):
        x = chunk.float()
        x -= x.mean(1, keepdim=True)
        sims.append((x @ q) / x.norm(dim=1))
    top = torch.cat(sims).topk(2)
    assert top.indices[0].item() == 49007
    assert top.values[0].item() > 0.85 and top.values[1].item() < 0.7


def _write_cifar10_pickles(root: Path, train_x: np.ndarray, train_y, test_x: np.ndarray, test_y) -> None:
    """The official python layout: 5 train batches of 10 000 + test_batch + batches.meta.
    ``data`` rows are the CHW-flattened pixels (1024 R, 1024 G, 1024 B), as in the official files."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    per = len(train_y) // 5
    for b in range(5):
        sl = slice(b * per, (b + 1) * per)
        with open(d / f"data_batch_{b + 1}", "wb") as fh:
            pickle.dump({"batch_label": f"training batch {b + 1} of 5", "labels": [int(v) for v in train_y[sl]],
                         "data": train_x[sl].reshape(-1, 3072)}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    with open(d / "test_batch", "wb") as fh:
        pickle.dump({"batch_label": "testing batch 1 of 1", "labels": [int(v) for v in test_y],
                     "data": test_x.reshape(-1, 3072)}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_cases_per_batch": per, "num_vis": 3072}, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _trust_cifar_md5(monkeypatch, cls, root: Path) -> None:
    """torchvision checks the md5 of every file against the official ones: use the md5 of the files written here."""
    d = root / cls.base_folder
    monkeypatch.setattr(cls, "train_list", [[n, _md5(d / n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, _md5(d / n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(d / cls.meta["filename"])})


def test_torchvision_layout_gives_same_labels_and_pixels(cifar, tmp_path, monkeypatch, uncached):
    """Offline npz and torchvision's CIFAR10 reader (official pickle layout) agree image for image."""
    from torchvision.datasets import CIFAR10

    _write_cifar10_pickles(tmp_path, cifar["train"].images.numpy(), cifar["train_labels"],
                           cifar["test"].images.numpy(), cifar["test_labels"])
    _trust_cifar_md5(monkeypatch, CIFAR10, tmp_path)
    for split in ("train", "test"):
        tv = load_split("cifar10", split, tmp_path)
        assert tv.images.shape == cifar[split].images.shape and tv.images.dtype == torch.uint8
        np.testing.assert_array_equal(tv.labels.numpy(), cifar[f"{split}_labels"])
        assert torch.equal(tv.images, cifar[split].images)
    # torchvision's own HWC view of one image equals our CHW image
    ds = CIFAR10(str(tmp_path), train=True)
    assert np.array_equal(ds.data[4], cifar["train"].images[4].permute(1, 2, 0).numpy()) and ds.targets[4] == 1


def test_torchvision_cifar100_layout(tmp_path, monkeypatch, uncached):
    """CIFAR-100's python layout (``fine_labels``), on a small stand-in with the expected sizes patched."""
    from torchvision.datasets import CIFAR100

    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    data = {}
    for split, n in (("train", 300), ("test", 200)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 100, n)
        data[split] = (x, y)
        with open(d / split, "wb") as fh:
            pickle.dump({"fine_labels": y.tolist(), "coarse_labels": (y // 5).tolist(), "data": x.reshape(n, -1)}, fh)
    with open(d / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, fh)
    _trust_cifar_md5(monkeypatch, CIFAR100, tmp_path)
    monkeypatch.setitem(SPECS, "cifar100", DatasetSpec("cifar100", 100, 32, {"train": 300, "test": 200}))
    for split in ("train", "test"):
        s = load_split("cifar100", split, tmp_path)
        assert s.num_classes == 100
        np.testing.assert_array_equal(s.labels.numpy(), data[split][1])
        np.testing.assert_array_equal(s.images.numpy(), data[split][0])


def _write_jpeg_npz(path: Path, splits: dict) -> None:
    """The offline JPEG-archive format of shared/data/README.md, written with Pillow."""
    arrays = {}
    for split, (images, labels) in splits.items():
        blobs = []
        for img in images:
            b = io.BytesIO()
            Image.fromarray(img).save(b, format="JPEG", quality=95)
            blobs.append(np.frombuffer(b.getvalue(), dtype=np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    np.savez_compressed(path, **arrays)


def test_cifar100_jpeg_npz_layout(tmp_path, monkeypatch, uncached):
    """A ``cifar100_jpeg.npz`` in the offline format is read in order (sizes patched to the stand-in's)."""
    splits = {}
    for split, n in (("train", 120), ("test", 60)):
        labels = (np.arange(n) * 7) % 100
        images = np.stack([np.full((32, 32, 3), _colour(int(c)), dtype=np.uint8) for c in labels])
        splits[split] = (images, labels)
    _write_jpeg_npz(tmp_path / "cifar100_jpeg.npz", splits)
    monkeypatch.setitem(SPECS, "cifar100", DatasetSpec("cifar100", 100, 32, {"train": 120, "test": 60}))
    for split, (images, labels) in splits.items():
        s = load_split("cifar100", split, tmp_path)
        assert s.images.shape == (len(labels), 3, 32, 32)
        np.testing.assert_array_equal(s.labels.numpy(), labels)
        _check_colours(s.images, labels)


# --------------------------------------------------------------------------- 128 px folder datasets
def test_imagenet100_image_folders(tmp_path, uncached):
    rng = np.random.default_rng(2)
    names = [f"n{v:08d}" for v in rng.choice(10**8, 100, replace=False)]  # created in random (unsorted) order
    expected = {}
    for split, per in (("train", 2), ("val", 1)):
        rows = []
        for k, name in enumerate(names):
            for j in range(per):
                _write_image(tmp_path / "imagenet100" / split / name / f"{name}_{j}.JPEG", k,
                             (40 + 8 * j, 56 - 8 * j), gray=(k == 0 and j == 0))
                rows.append((name, k))
        # torchvision ImageFolder convention: class index = rank of the folder name in sorted order
        rank = {n: i for i, n in enumerate(sorted(names))}
        rows.sort(key=lambda r: rank[r[0]])
        expected[split] = rows
    assert dataset_available("imagenet100", tmp_path) == (True, "")
    for split, folder in (("train", "train"), ("test", "val")):
        s = load_split("imagenet100", split, tmp_path)
        rows = expected[folder]
        assert s.images.shape == (len(rows), 3, 128, 128) and s.images.dtype == torch.uint8
        assert s.num_classes == 100
        rank = {n: i for i, n in enumerate(sorted(names))}
        assert s.labels.tolist() == [rank[n] for n, _ in rows]
        colour_class = [k for _, k in rows]
        gray_at = [i for i, (n, k) in enumerate(rows) if k == 0]
        images = s.images.clone()
        if split == "train":  # the first image of class-colour 0 was written as a grayscale JPEG
            g = gray_at[0]
            assert torch.equal(images[g, 0], images[g, 1]) and torch.equal(images[g, 1], images[g, 2])
            images = torch.cat([images[g:g + 1], images[:g], images[g + 1:]])
            colour_class = [colour_class[g]] + colour_class[:g] + colour_class[g + 1:]
        _check_colours(images, colour_class, gray_first=(split == "train"))


def test_imagenet100_bad_folders(tmp_path, uncached):
    for k in range(99):
        _write_image(tmp_path / "imagenet100" / "train" / f"c{k:03d}" / "a.jpg", k, (16, 16))
    with pytest.raises(DataError, match=r"found 99 class folders, expected 100"):
        load_split("imagenet100", "train", tmp_path)
    (tmp_path / "imagenet100" / "train" / "c099").mkdir()  # a class folder without images
    with pytest.raises(DataError, match=r"c099"):
        load_split("imagenet100", "train", tmp_path)
    with pytest.raises(DataError, match=r"imagenet100/val.*does not exist|does not exist.*imagenet100"):
        load_split("imagenet100", "test", tmp_path)


def test_flowers102_torchvision_layout(tmp_path, monkeypatch, uncached):
    """``flowers-102/``: jpg/image_%05d.jpg, imagelabels.mat (1-based labels), setid.mat (1-based ids)."""
    from torchvision.datasets import Flowers102

    rng = np.random.default_rng(3)
    base = tmp_path / "flowers-102"
    n = 102 * 3
    labels = np.tile(np.arange(1, 103), 3)  # image id i+1 has label labels[i] (1-based)
    for i in range(n):
        _write_image(base / "jpg" / f"image_{i + 1:05d}.jpg", int(labels[i]) - 1, (48, 36))
    ids = rng.permutation(np.arange(1, n + 1))
    setid = {"trnid": ids[:102], "valid": ids[102:204], "tstid": ids[204:]}
    sio.savemat(base / "imagelabels.mat", {"labels": labels.astype(np.uint8)[None]})
    sio.savemat(base / "setid.mat", {k: v.astype(np.uint16)[None] for k, v in setid.items()})
    monkeypatch.setattr(Flowers102, "_file_dict", {
        **Flowers102._file_dict,
        "label": ("imagelabels.mat", _md5(base / "imagelabels.mat")),
        "setid": ("setid.mat", _md5(base / "setid.mat")),
    })
    assert dataset_available("flowers102", tmp_path) == (True, "")
    # as released: our "train" is torchvision's "test" split (tstid), our "test" its "val" (valid)
    for split, key in (("train", "tstid"), ("test", "valid")):
        s = load_split("flowers102", split, tmp_path)
        want = labels[setid[key] - 1] - 1  # in setid order, 0-based
        assert s.images.shape == (102, 3, 128, 128) and s.images.dtype == torch.uint8 and s.num_classes == 102
        np.testing.assert_array_equal(s.labels.numpy(), want)
        _check_colours(s.images, want)


def _cars_annotations(fnames, classes) -> np.ndarray:
    """The struct array of Stanford Cars' annotation .mat files (1-based uint8 ``class``)."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    ann = np.zeros((1, len(fnames)), dtype=[(f, "O") for f in fields])
    for i, (f, c) in enumerate(zip(fnames, classes)):
        ann[0, i] = (np.array([[1]], np.uint16), np.array([[1]], np.uint16), np.array([[30]], np.uint16),
                     np.array([[20]], np.uint16), np.array([[c]], np.uint8), np.array([f]))
    return ann


def test_stanford_cars_torchvision_layout(tmp_path, uncached):
    """torchvision 0.29's StanfordCars layout: stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat,
    cars_train/, cars_test_annos_withlabels.mat, cars_test/}."""
    rng = np.random.default_rng(4)
    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [f"Make Model {i} 2012" for i in range(196)]
    sio.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    expected = {}
    for split, folder, mat in (("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
                               ("test", "cars_test", base / "cars_test_annos_withlabels.mat")):
        classes = rng.permutation(np.arange(1, 197))  # 1-based, one image per class, shuffled order
        fnames = [f"{i + 1:05d}.jpg" for i in range(196)]
        for f, c in zip(fnames, classes):
            _write_image(base / folder / f, int(c) - 1, (44, 30))
        sio.savemat(mat, {"annotations": _cars_annotations(fnames, classes)})
        expected[split] = classes - 1
    assert dataset_available("stanford_cars", tmp_path) == (True, "")
    for split in ("train", "test"):
        s = load_split("stanford_cars", split, tmp_path)
        assert s.images.shape == (196, 3, 128, 128) and s.images.dtype == torch.uint8 and s.num_classes == 196
        np.testing.assert_array_equal(s.labels.numpy(), expected[split])
        _check_colours(s.images, expected[split])
    shutil.rmtree(base / "devkit")
    with pytest.raises(DataError, match=r"Stanford Cars.*stanford_cars"):
        load_split("stanford_cars", "train", tmp_path)


# --------------------------------------------------------------------------- errors
def _assert_both_fixes(msg: str) -> None:
    assert "--download" in msg and f"{DOWNLOAD_ENV}=1" in msg
    assert "--data-dir" in msg and f"{DATA_ENV}=" in msg


def test_missing_folder_names_path_and_both_fixes(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(DataError) as err:
        load_split("cifar10", "train", missing)
    msg = str(err.value)
    assert str(missing) in msg and "cifar10_jpeg.npz" in msg
    _assert_both_fixes(msg)
    ok, why = dataset_available("cifar10", missing, download=False)
    assert not ok and str(missing) in why
    _assert_both_fixes(why)


def test_missing_file_in_existing_folder(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError) as err:
        load_split("cifar10", "test", tmp_path / "data")
    assert str(tmp_path / "data") in str(err.value) and "cifar-10-batches-py" in str(err.value)
    _assert_both_fixes(str(err.value))


def test_no_folder_given(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    with pytest.raises(DataError) as err:
        load_split("cifar10", "train")
    assert "no data folder given" in str(err.value)
    _assert_both_fixes(str(err.value))


def test_environment_variables_are_used(data_dir, monkeypatch, cifar):
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    assert dataset_available("cifar10") == (True, "")
    assert torch.equal(load_split("cifar10", "test").labels, cifar["test"].labels)
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setenv(DOWNLOAD_ENV, "1")
    assert dataset_available("cifar10")[0] is True           # torchvision can download it
    assert dataset_available("stanford_cars")[0] is False    # no download exists


def test_not_downloadable_datasets_do_not_suggest_download(tmp_path):
    for name in ("imagenet100", "stanford_cars"):
        with pytest.raises(DataError) as err:
            load_split(name, "train", tmp_path, download=True)
        msg = str(err.value)
        assert str(tmp_path) in msg and "--data-dir" in msg and DATA_ENV in msg
        assert "--download" not in msg


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset 'mnist'.*cifar10.*stanford_cars"):
        load_split("mnist", "train", tmp_path)
    with pytest.raises(DataError, match=r"unknown split 'val'.*'train' or 'test'"):
        load_split("cifar10", "val", tmp_path)
    assert dataset_available("svhn", tmp_path) == (False, "unknown dataset 'svhn'")


def test_wrong_checksum(data_dir, tmp_path, uncached):
    bad = tmp_path / "cifar10_jpeg.npz"
    raw = bytearray((data_dir / "cifar10_jpeg.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        load_split("cifar10", "test", tmp_path)
    msg = str(err.value)
    assert str(bad) in msg and "wrong checksum" in msg and "copy it again" in msg


def test_wrong_number_of_images(cifar, tmp_path, monkeypatch, uncached):
    """A torchvision folder holding 100 test images instead of 10 000: error naming the folder and the sizes."""
    from torchvision.datasets import CIFAR10

    _write_cifar10_pickles(tmp_path, cifar["train"].images[:500].numpy(), cifar["train_labels"][:500],
                           cifar["test"].images[:100].numpy(), cifar["test_labels"][:100])
    official = (CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta)
    _trust_cifar_md5(monkeypatch, CIFAR10, tmp_path)
    with pytest.raises(DataError, match=r"cifar10/test has 100 images, expected 10000"):
        load_split("cifar10", "test", tmp_path)
    # with the official md5s, torchvision's corruption check fails: a DataError naming the fix
    for attr, value in zip(("train_list", "test_list", "meta"), official):
        monkeypatch.setattr(CIFAR10, attr, value)
    with pytest.raises(DataError, match=r"torchvision could not load cifar10.*--download"):
        load_split("cifar10", "test", tmp_path, download=False)


def test_bad_jpeg_archive(tmp_path, monkeypatch, uncached):
    monkeypatch.setitem(SPECS, "cifar100", DatasetSpec("cifar100", 100, 32, {"train": 3, "test": 3}))
    np.savez(tmp_path / "cifar100_jpeg.npz", train_jpeg=np.zeros(10, np.uint8))
    with pytest.raises(DataError, match=r"cifar100_jpeg.npz: not a valid JPEG archive.*test_offsets"):
        load_split("cifar100", "test", tmp_path)
    np.savez(tmp_path / "cifar100_jpeg.npz", test_jpeg=np.zeros(10, np.uint8),
             test_offsets=np.array([0, 5, 10], np.int64), test_labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"test_offsets has shape \(3,\), expected \(4,\)"):
        load_split("cifar100", "test", tmp_path)


def test_config_errors_come_before_loading(tmp_path):
    """Class ids or imbalance invalid for the dataset: ConfigError, raised before any data is read
    (the data folder does not even exist)."""
    missing = tmp_path / "nothing_here"
    with pytest.raises(ConfigError, match=r"data.classes \[0, 10\] outside 0..9 for cifar10"):
        prepare_data(DataConfig(classes=(0, 10)), EvalConfig(), 0, 100, missing)
    with pytest.raises(ConfigError, match=r"data.imbalance='exponential' is defined for cifar10, cifar100 only"):
        prepare_data(DataConfig(dataset="flowers102", imbalance="exponential"), EvalConfig(), 0, 100, missing)
    with pytest.raises(DataError, match=str(missing)):
        prepare_data(DataConfig(), EvalConfig(), 0, 100, missing)


# --------------------------------------------------------------------------- stand-ins
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet100", "flowers102", "stanford_cars"])
def test_standin_shapes(dataset):
    classes = {"cifar10": 10, "cifar100": 100, "imagenet100": 100, "flowers102": 102, "stanford_cars": 196}[dataset]
    size = 32 if dataset.startswith("cifar") else 128
    s = make_standin(dataset, "test", per_class=1)
    assert s.standin and s.num_classes == classes and len(s) == classes
    assert s.images.shape == (classes, 3, size, size) and s.images.dtype == torch.uint8
    assert s.labels.tolist() == list(range(classes))
    again = make_standin(dataset, "test", per_class=1)
    assert torch.equal(s.images, again.images)
    assert not torch.equal(s.images, make_standin(dataset, "train", per_class=1).images)


# --------------------------------------------------------------------------- imbalance and subsets
def test_exponential_counts_cifar10_hand_list():
    assert IMBALANCE_BASE["cifar10"] == 1.5
    assert exponential_counts(5000, 10, 1.5) == CIFAR10_IMBALANCED
    exact = [math.floor(Fraction(5000) / Fraction(3, 2) ** i) for i in range(10)]  # exact rational arithmetic
    assert exact == CIFAR10_IMBALANCED


def test_exponential_counts_cifar100_exact_arithmetic():
    """floor(500 * 1.03365^(-i)) with 60-digit decimals (no floating point)."""
    getcontext().prec = 60
    base = Decimal("1.03365")
    want = [int((Decimal(500) / base ** i).to_integral_value(rounding="ROUND_FLOOR")) for i in range(100)]
    assert IMBALANCE_BASE["cifar100"] == 1.03365
    assert exponential_counts(500, 100, 1.03365) == want
    assert want[0] == 500 and want[1] == 483 and want[99] == 18  # 500/1.03365 = 483.7; 500*1.03365^-99 = 18.9


def test_exponential_counts_rejects_bad_arguments():
    with pytest.raises(ValueError):
        exponential_counts(0, 10, 1.5)
    with pytest.raises(ValueError):
        exponential_counts(100, 10, 1.0)


def test_imbalanced_indices_keep_first_images_of_each_class():
    rng = np.random.default_rng(5)
    labels = rng.permutation(np.repeat(np.arange(100), 500))
    keep = imbalanced_indices(labels, 100, 1.03365)
    getcontext().prec = 60
    want = [int((Decimal(500) / Decimal("1.03365") ** i).to_integral_value(rounding="ROUND_FLOOR")) for i in range(100)]
    assert np.bincount(labels[keep], minlength=100).tolist() == want
    assert np.all(np.diff(keep) > 0)
    for c in (0, 37, 99):
        np.testing.assert_array_equal(keep[labels[keep] == c], np.flatnonzero(labels == c)[:want[c]])
    with pytest.raises(ValueError, match="every class"):
        imbalanced_indices(labels[labels != 3], 100, 1.03365)


def test_imbalance_ranks_rotate_so_every_class_gets_several_sizes():
    """Issue 20: class c gets rank (c - 3 s) mod 10 in seed s. By hand: class 0 -> 0, 7, 4, 1 in seeds 0-3,
    class 4 -> 4, 1, 8, 5; the largest class (rank 0) of seed s is 3 s mod 10 = 0, 3, 6, 9."""
    ranks = np.array([imbalance_ranks(10, s, 3) for s in range(4)])      # (seed, class)
    assert ranks[:, 0].tolist() == [0, 7, 4, 1] and ranks[:, 4].tolist() == [4, 1, 8, 5]
    assert [int(np.argmin(r)) for r in ranks] == [0, 3, 6, 9]
    assert all(sorted(r.tolist()) == list(range(10)) for r in ranks)   # a permutation in every seed
    # over the 4 seeds of quick every class takes 4 different sizes, one of them among the 3 largest
    # and one among the 3 smallest (large in some seeds, small in others)
    for c in range(10):
        assert len(set(ranks[:, c])) == 4 and ranks[:, c].min() <= 2 and ranks[:, c].max() >= 7, (c, ranks[:, c])
    # over 10 seeds a Latin square: every class takes every size exactly once
    full = np.array([imbalance_ranks(10, s, 3) for s in range(10)])
    assert all(sorted(full[:, c].tolist()) == list(range(10)) for c in range(10))
    assert imbalance_ranks(10, 7, 0).tolist() == list(range(10))      # shift 0: the released order in every seed
    with pytest.raises(ValueError):
        imbalance_ranks(10, -1, 3)


def test_imbalanced_indices_follow_the_ranks():
    """5 classes of 8 images, base 2: sizes by rank 8, 4, 2, 1, 1 (max(1, int(8 / 2^4)) = max(1, 0) = 1);
    ranks (2, 0, 4, 1, 3): class 0 keeps 2, class 1 keeps 8, class 2 keeps 1, class 3 keeps 4, class 4 keeps 1,
    the first images of each class."""
    labels = np.tile(np.arange(5), 8)                                # class c at positions c, c + 5, ...
    keep = imbalanced_indices(labels, 5, 2.0, ranks=[2, 0, 4, 1, 3])
    assert np.bincount(labels[keep], minlength=5).tolist() == [2, 8, 1, 4, 1]
    np.testing.assert_array_equal(keep[labels[keep] == 3], [3, 8, 13, 18])
    assert np.bincount(labels[imbalanced_indices(labels, 5, 2.0)], minlength=5).tolist() == [8, 4, 2, 1, 1]
    with pytest.raises(ValueError, match="permutation"):
        imbalanced_indices(labels, 5, 2.0, ranks=[0, 0, 1, 2, 3])


def test_rotated_imbalance_config_is_validated_and_hashed():
    from embedding_norms.config import RunConfig

    base = RunConfig.load("simclr", "smoke", {"data": {"imbalance": "exponential"}})
    assert "imbalance_shift_per_seed" not in base.to_dict()["data"]           # 0: hashes as before the field
    rot = base.replace({"data": {"imbalance_shift_per_seed": 3}})
    assert rot.to_dict()["data"]["imbalance_shift_per_seed"] == 3 and rot.hash() != base.hash()
    for bad in ({"imbalance_shift_per_seed": 5}, {"imbalance_shift_per_seed": -3},
                {"imbalance": "none", "imbalance_shift_per_seed": 3}):
        with pytest.raises(ConfigError, match="imbalance_shift_per_seed"):
            base.replace({"data": bad})


def test_stratified_subset_seeded_and_proportional():
    rng = np.random.default_rng(6)
    labels = rng.permutation(np.repeat([0, 1, 2], [600, 300, 100]))
    a = stratified_subset(labels, 100, seed=1)
    assert len(a) == 100 and len(np.unique(a)) == 100 and np.all(np.diff(a) > 0)
    assert np.bincount(labels[a]).tolist() == [60, 30, 10]
    np.testing.assert_array_equal(a, stratified_subset(labels, 100, seed=1))
    assert not np.array_equal(a, stratified_subset(labels, 100, seed=2))
    np.testing.assert_array_equal(stratified_subset(labels, None, 0), np.arange(1000))
    np.testing.assert_array_equal(stratified_subset(labels, 5000, 0), np.arange(1000))
    with pytest.raises(ValueError, match="cannot hold all 3 classes"):
        stratified_subset(labels, 2, 0)


def test_stratified_subset_with_single_image_classes():
    """The rarest classes of an imbalanced set have one image (scikit-learn cannot stratify those):
    proportional quotas 26 * (50, 20, 5, 1, 1) / 77 = (16.9, 6.8, 1.7, 0.3, 0.3) -> (17, 7, 2, 0, 0)
    by largest remainder."""
    labels = np.random.default_rng(7).permutation(np.repeat(np.arange(5), [50, 20, 5, 1, 1]))
    for seed in (0, 1):
        a = stratified_subset(labels, 26, seed)
        assert len(np.unique(a)) == 26 and np.all(np.diff(a) > 0)
        assert np.bincount(labels[a], minlength=5).tolist() == [17, 7, 2, 0, 0]
        np.testing.assert_array_equal(a, stratified_subset(labels, 26, seed))
    assert not np.array_equal(stratified_subset(labels, 26, 0), stratified_subset(labels, 26, 1))
    # other sizes: always exactly `size` images
    for size in (5, 30, 76):
        assert len(stratified_subset(labels, size, 0)) == size


# --------------------------------------------------------------------------- prepare_data on real CIFAR-10
def test_prepare_imbalanced_cifar10(cifar, data_dir):
    rd = prepare_data(DataConfig(imbalance="exponential"), EvalConfig(), seed=0, probe_size=1000, data_dir=data_dir)
    assert np.bincount(rd.train.labels.numpy()).tolist() == CIFAR10_IMBALANCED
    assert np.bincount(rd.test.labels.numpy()).tolist() == [1000] * 10  # the test set stays balanced
    y = cifar["train_labels"]
    for c in range(10):  # the released code keeps the first images of each class
        np.testing.assert_array_equal(rd.train.indices[rd.train.labels.numpy() == c],
                                      np.flatnonzero(y == c)[:CIFAR10_IMBALANCED[c]])
    np.testing.assert_array_equal(y[rd.train.indices], rd.train.labels.numpy())
    assert torch.equal(rd.train.images, cifar["train"].images[torch.as_tensor(rd.train.indices)])
    assert len(rd.probe) == 1000 and set(rd.probe.indices) <= set(rd.train.indices)
    assert rd.novel is None


def test_prepare_stratified_subsets_are_seeded(cifar, data_dir):
    cfg = DataConfig(train_size=1000, test_size=200, subset_seed=3)
    a = prepare_data(cfg, EvalConfig(), seed=3, probe_size=100, data_dir=data_dir)
    b = prepare_data(cfg, EvalConfig(), seed=9, probe_size=100, data_dir=data_dir)  # another training seed
    c = prepare_data(DataConfig(train_size=1000, test_size=200, subset_seed=4), EvalConfig(), seed=3, probe_size=100,
                     data_dir=data_dir)
    assert np.bincount(a.train.labels.numpy()).tolist() == [100] * 10
    assert np.bincount(a.test.labels.numpy()).tolist() == [20] * 10
    assert np.bincount(a.probe.labels.numpy()).tolist() == [10] * 10
    # the images depend on data.subset_seed only: the seeds of one comparison see the same images
    np.testing.assert_array_equal(a.train.indices, b.train.indices)
    np.testing.assert_array_equal(a.test.indices, b.test.indices)
    np.testing.assert_array_equal(a.probe.indices, b.probe.indices)
    assert not np.array_equal(a.train.indices, c.train.indices)
    np.testing.assert_array_equal(cifar["train_labels"][a.train.indices], a.train.labels.numpy())
    np.testing.assert_array_equal(cifar["test_labels"][a.test.indices], a.test.labels.numpy())
    # subset then imbalance: 100 per class -> floor(100 * 1.5^-i)
    imb = prepare_data(DataConfig(train_size=1000, imbalance="exponential"), EvalConfig(), 3, 100, data_dir)
    assert np.bincount(imb.train.labels.numpy()).tolist() == [math.floor(Fraction(100) / Fraction(3, 2) ** i)
                                                              for i in range(10)]


def test_prepare_rotated_imbalance_uses_the_training_seed(cifar, data_dir):
    """Shift 3, training seed 1: class c keeps floor(100 * 1.5^-((c - 3) mod 10)) of a 100-per-class subset,
    so class 3 is the largest and class 2 the smallest; the same config with seed 0 is the released order."""
    cfg = DataConfig(train_size=1000, imbalance="exponential", imbalance_shift_per_seed=3)
    sizes = [math.floor(Fraction(100) / Fraction(3, 2) ** i) for i in range(10)]
    rd = prepare_data(cfg, EvalConfig(), 1, 10, data_dir)
    assert np.bincount(rd.train.labels.numpy()).tolist() == [sizes[(c - 3) % 10] for c in range(10)]
    assert np.bincount(prepare_data(cfg, EvalConfig(), 0, 10, data_dir).train.labels.numpy()).tolist() == sizes


def test_prepare_class_holdout(cifar, data_dir):
    """Train on classes 0-4; the "novel" set is the test images of classes 5-9."""
    rd = prepare_data(DataConfig(classes=(0, 1, 2, 3, 4)), EvalConfig(novel="heldout"), 0, 500, data_dir)
    ytr, yte = cifar["train_labels"], cifar["test_labels"]
    assert rd.num_classes == 5 and rd.train.num_classes == 5 and rd.novel.num_classes == 5
    np.testing.assert_array_equal(rd.train.indices, np.flatnonzero(ytr < 5))
    np.testing.assert_array_equal(rd.test.indices, np.flatnonzero(yte < 5))
    np.testing.assert_array_equal(rd.novel.indices, np.flatnonzero(yte >= 5))
    np.testing.assert_array_equal(rd.train.labels.numpy(), ytr[ytr < 5])
    np.testing.assert_array_equal(rd.novel.labels.numpy(), yte[yte >= 5] - 5)  # remapped to 0..4
    assert torch.equal(rd.novel.images, cifar["test"].images[torch.as_tensor(np.flatnonzero(yte >= 5))])
    assert set(rd.probe.indices) <= set(rd.train.indices)


def test_prepare_holdout_remaps_unordered_classes(cifar, data_dir):
    classes = (9, 3, 5)
    rd = prepare_data(DataConfig(classes=classes, train_size=300, test_size=60), EvalConfig(novel="heldout"),
                      1, 30, data_dir)
    orig = np.array(classes)[rd.train.labels.numpy()]  # label k means original class classes[k]
    np.testing.assert_array_equal(cifar["train_labels"][rd.train.indices], orig)
    assert np.bincount(rd.train.labels.numpy()).tolist() == [100, 100, 100]
    assert np.bincount(rd.test.labels.numpy()).tolist() == [20, 20, 20]
    rest = np.array([0, 1, 2, 4, 6, 7, 8])
    np.testing.assert_array_equal(cifar["test_labels"][rd.novel.indices], rest[rd.novel.labels.numpy()])
    assert len(rd.novel) == 60 and rd.novel.num_classes == 7


def test_prepare_standin_cifar100_imbalance():
    """CIFAR-100 images are not available: the stand-in (40 per class) follows floor(40 * 1.03365^-i)."""
    rd = prepare_data(DataConfig(dataset="cifar100", imbalance="exponential", standin=True), EvalConfig(), 0, 200)
    getcontext().prec = 60
    want = [max(1, int((Decimal(40) / Decimal("1.03365") ** i).to_integral_value(rounding="ROUND_FLOOR")))
            for i in range(100)]
    assert rd.train.standin and np.bincount(rd.train.labels.numpy(), minlength=100).tolist() == want


def test_prepare_other_dataset_as_novel(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare_mod, "load_split", lambda *a, **k: pytest.fail("stand-in runs read no files"))
    rd = prepare_data(DataConfig(standin=True, test_size=200), EvalConfig(novel="cifar100"), 0, 20)
    assert rd.novel.name.startswith("cifar100-standin") and rd.novel.num_classes == 100
    assert np.bincount(rd.novel.labels.numpy()).tolist() == [2] * 100


def test_flowers_splits_are_the_released_ones():
    """Released SSL training on Flowers-102 uses torchvision's "test" split (the large, imbalanced
    one) and evaluates on "val" (issue 12, item 8)."""
    assert FLOWERS_SPLITS == {"train": "test", "test": "val"}
