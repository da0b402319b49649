"""Human labels (CIFAR-10H, CIFAR-10N, CIFAR-100N) are aligned with the CIFAR original order.

Expected numbers come from shared/data/README.md (published noise rates, known first labels) and
from the CIFAR-10 labels of the offline JPEG archive, read here with numpy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedding_norms.data.human_labels import (
    HumanLabelError,
    check_alignment,
    load_cifar10h,
    load_cifar10n,
    load_cifar100n,
)
from embedding_norms.data.sources import DATA_ENV, KNOWN_SHA256, DataError


@pytest.fixture(scope="module")
def cifar_labels(data_dir):
    z = np.load(data_dir / "cifar10_jpeg.npz", allow_pickle=False)
    return np.asarray(z["train_labels"]), np.asarray(z["test_labels"])


def test_cifar10h_aligns_with_test_labels(data_dir, cifar_labels):
    probs = load_cifar10h(data_dir)
    assert probs.shape == (10000, 10) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    _, test_labels = cifar_labels
    agree = float((probs.argmax(1) == test_labels).mean())
    assert agree > 0.98 and abs(agree - 0.9921) < 5e-5  # README: 99.21 %
    assert check_alignment(probs, test_labels, "CIFAR-10H", 0.98) == pytest.approx(agree)
    # the vote counts (a separate file) normalise to the same distributions
    counts = np.load(data_dir / "cifar10h-counts.npy")
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), probs, atol=1e-12)


def test_cifar10n_aligns_with_train_labels(data_dir, cifar_labels):
    d = load_cifar10n(data_dir)
    train_labels, _ = cifar_labels
    assert set(d) == {"clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"}
    for v in d.values():
        assert v.shape == (50000,) and v.dtype == np.int64
    np.testing.assert_array_equal(d["clean_label"], train_labels)
    # README: published CIFAR-10N noise rates
    for key, rate in (("aggre_label", 0.0901), ("worse_label", 0.4021), ("random_label1", 0.1723),
                      ("random_label2", 0.1812), ("random_label3", 0.1764)):
        assert abs(float((d[key] != train_labels).mean()) - rate) < 6e-5, key
    assert check_alignment(d["aggre_label"], train_labels, "CIFAR-10N aggre", 0.8) == pytest.approx(1 - 0.0901, abs=6e-5)


def test_cifar100n_labels(data_dir):
    d = load_cifar100n(data_dir)
    assert d["clean_label"][:10].tolist() == [19, 29, 0, 11, 1, 86, 90, 28, 23, 31]  # README: original first labels
    assert abs(float((d["noisy_label"] != d["clean_label"]).mean()) - 0.402) < 5e-4
    fine_to_coarse = np.array(json.loads((data_dir / "class_names.json").read_text())["cifar100_fine_to_coarse"])
    np.testing.assert_array_equal(d["clean_coarse_label"], fine_to_coarse[d["clean_label"]])
    assert all(v.shape == (50000,) and v.dtype == np.int64 for v in d.values())


@pytest.mark.parametrize("loader, pt, npz", [(load_cifar10n, "CIFAR-10_human.pt", "cifar10n_labels.npz"),
                                             (load_cifar100n, "CIFAR-100_human.pt", "cifar100n_labels.npz")])
def test_torch_pickle_and_npz_agree(data_dir, tmp_path, loader, pt, npz):
    """The .pt originals (read when no .npz is there) hold the same labels as the .npz conversions."""
    (tmp_path / pt).symlink_to(data_dir / pt)
    from_pt = loader(tmp_path)
    from_npz = loader(data_dir)
    assert set(from_pt) == set(from_npz)
    for k in from_npz:
        np.testing.assert_array_equal(from_pt[k], from_npz[k])


def test_check_alignment_catches_misorder(cifar_labels, data_dir):
    _, test_labels = cifar_labels
    probs = load_cifar10h(data_dir)
    # rows in a wrong order (a permutation): agreement drops to chance (~10 %)
    rng = np.random.default_rng(0)
    shuffled = np.arange(10000)
    rng.shuffle(shuffled)
    with pytest.raises(HumanLabelError, match=r"CIFAR-10H: human labels agree .* on only .*not in the dataset's original order"):
        check_alignment(probs[shuffled], test_labels, "CIFAR-10H", 0.98)
    with pytest.raises(HumanLabelError, match=r"9999 human labels for 10000 images"):
        check_alignment(probs[:-1], test_labels, "CIFAR-10H", 0.98)


def test_missing_label_files_name_the_files_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    for loader, name in ((load_cifar10h, "cifar10h-probs.npy"), (load_cifar10n, "cifar10n_labels.npz"),
                         (load_cifar100n, "CIFAR-100_human.pt")):
        for where in (tmp_path, None):
            with pytest.raises(HumanLabelError) as err:
                loader(where)
            msg = str(err.value)
            assert name in msg and "--data-dir" in msg and DATA_ENV in msg
            assert (str(tmp_path) in msg) if where is not None else ("no data folder given" in msg)


def test_corrupt_label_file(data_dir, tmp_path):
    raw = bytearray((data_dir / "cifar10h-probs.npy").read_bytes())
    raw[-3] ^= 0x01
    (tmp_path / "cifar10h-probs.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"cifar10h-probs.npy: wrong checksum"):
        load_cifar10h(tmp_path)


def test_wrong_shapes_of_unknown_versions(tmp_path, monkeypatch):
    """Files that are not the known versions (checksum entry removed) are checked for shape."""
    for name in ("cifar10h-probs.npy", "cifar10n_labels.npz", "cifar100n_labels.npz"):
        monkeypatch.delitem(KNOWN_SHA256, name, raising=False)
    np.save(tmp_path / "cifar10h-probs.npy", np.full((100, 10), 0.1))
    with pytest.raises(HumanLabelError, match=r"expected shape \(10000, 10\), got \(100, 10\)"):
        load_cifar10h(tmp_path)
    np.save(tmp_path / "cifar10h-probs.npy", np.full((10000, 10), 0.2))
    with pytest.raises(HumanLabelError, match="rows must sum to 1"):
        load_cifar10h(tmp_path)
    np.savez(tmp_path / "cifar10n_labels.npz", clean_label=np.zeros(49999, np.int64), aggre_label=np.zeros(50000))
    with pytest.raises(HumanLabelError, match=r"'clean_label' of shape \(50000,\), got \(49999,\)"):
        load_cifar10n(tmp_path)
    np.savez(tmp_path / "cifar100n_labels.npz", clean_label=np.zeros(50000, np.int64))
    with pytest.raises(HumanLabelError, match=r"'noisy_label' of shape \(50000,\)"):
        load_cifar100n(tmp_path)
    assert issubclass(HumanLabelError, DataError)
