"""Batched SSL augmentation against torchvision's per-image functional ops and RandomResizedCrop.

The second implementation is ``torchvision.transforms.v2.functional`` (resized_crop, hflip,
adjust_brightness/contrast/saturation/hue, rgb_to_grayscale) applied image by image with the
same parameters, and ``torchvision.transforms.RandomResizedCrop.get_params`` for the crop boxes.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from embedding_norms.data import augment as A
from embedding_norms.data.augment import SSLAugment, sample_crop_boxes, to_float

BILINEAR = TF.InterpolationMode.BILINEAR


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small tensors: one intra-op thread avoids OpenMP spin-waiting on a busy 2-core machine
    (10-30x slower otherwise when other processes load the CPUs); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def real_images(data_dir) -> torch.Tensor:
    """64 real CIFAR-10 test images, decoded here with Pillow: uint8 (64, 3, 32, 32)."""
    z = np.load(data_dir / "cifar10_jpeg.npz", allow_pickle=False)
    buf, off = z["test_jpeg"], z["test_offsets"]
    imgs = [np.asarray(Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())).convert("RGB")) for i in range(64)]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def _random_images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _tie_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Float images with many equal channels (gray pixels, max shared by two channels): HSV edge cases."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (n, 3, size, size), generator=g).float() / 2


# --------------------------------------------------------------------------- single operations
@pytest.mark.parametrize("size, n", [(32, 200), (128, 12)])
def test_resized_crop_matches_torchvision(size, n):
    x = to_float(_random_images(n, size, 1))
    g = torch.Generator().manual_seed(2)
    boxes = sample_crop_boxes(n, size, size, (0.2, 1.0), (3 / 4, 4 / 3), g)
    hand = torch.tensor([[0, 0, size, size], [0, 0, 1, 1], [size - 1, size - 1, 1, 1], [3, 5, 7, size - 5],
                         [0, size // 2, size, size // 2], [size // 3, 0, size // 2, size]])
    boxes = torch.cat([hand, boxes])
    x = torch.cat([x[: len(hand)], x])
    out = A.resized_crop(x, boxes, size)
    assert out.shape == (len(boxes), 3, size, size)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(x[i], top, left, h, w, [size, size], interpolation=BILINEAR, antialias=True)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0, msg=f"box {(top, left, h, w)}")
    torch.testing.assert_close(out[0], x[0], atol=1e-5, rtol=0)  # the full box is the identity


@pytest.mark.parametrize("name, lo, hi", [("brightness", 0.0, 2.0), ("contrast", 0.0, 2.0), ("saturation", 0.0, 2.0)])
def test_blend_ops_match_torchvision(name, lo, hi):
    x = torch.cat([to_float(_random_images(40, 32, 3)), _tie_images(10, 32, 4)])
    f = torch.linspace(lo, hi, len(x))
    out = getattr(A, f"adjust_{name}")(x.clone(), f)
    ref = torch.stack([getattr(TF, f"adjust_{name}")(x[i], float(f[i])) for i in range(len(x))])
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_hue_matches_torchvision():
    x = torch.cat([to_float(_random_images(60, 32, 5)), _tie_images(20, 32, 6), torch.full((2, 3, 32, 32), 0.3)])
    f = torch.linspace(-0.5, 0.5, len(x))
    out = A.adjust_hue(x, f)
    ref = torch.stack([TF.adjust_hue(x[i], float(f[i])) for i in range(len(x))])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # a hue shift by a whole turn is the identity (up to HSV round trip error)
    torch.testing.assert_close(A.adjust_hue(x, torch.full((len(x),), 0.5)),
                               A.adjust_hue(A.adjust_hue(x, torch.full((len(x),), 0.25)), torch.full((len(x),), 0.25)),
                               atol=1e-5, rtol=0)


def test_grayscale_matches_torchvision():
    x = to_float(_random_images(30, 32, 7))
    out = A.grayscale(x)
    ref = torch.stack([TF.rgb_to_grayscale(x[i], num_output_channels=1) for i in range(len(x))])
    assert out.shape == (30, 1, 32, 32)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- crop box distribution
def test_crop_boxes_follow_random_resized_crop():
    n, s = 8000, 32
    ours = sample_crop_boxes(n, s, s, (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(8))
    top, left, h, w = ours.T.double()
    assert ours.dtype == torch.int64 and ours.shape == (n, 4)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= s) & (left + w <= s) & (h >= 1) & (w >= 1)).all())
    # w = round(sqrt(A r)), h = round(sqrt(A / r)) with A / area in [0.2, 1], r in [3/4, 4/3]:
    # the unrounded sides lie within 0.5 of the integers
    assert bool(((w + 0.5) * (h + 0.5) >= 0.2 * s * s).all() and ((w - 0.5) * (h - 0.5) <= s * s).all())
    assert bool(((w + 0.5) / (h - 0.5) >= 3 / 4).all() and ((w - 0.5) / (h + 0.5) <= 4 / 3).all())
    frac = w * h / (s * s)
    assert frac.min() < 0.21 and frac.max() == 1.0
    # the same distribution as torchvision's get_params (second implementation)
    torch.manual_seed(9)
    img = torch.zeros(3, s, s)
    ref = torch.tensor([RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(n)],
                       dtype=torch.float64)
    rt, rl, rh, rw = ref.T
    for a, b in ((frac, rh * rw / (s * s)), (w / h, rw / rh), (top / (s - h + 1), rt / (s - rh + 1)),
                 (left / (s - w + 1), rl / (s - rw + 1))):
        assert abs(a.mean().item() - b.mean().item()) < 0.01
        assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-3


def test_crop_fallback_matches_torchvision():
    """No candidate fits a very wide image at scale ~1: torchvision's central crop with the ratio clamped."""
    for hh, ww in ((8, 64), (64, 8)):
        ours = sample_crop_boxes(5, hh, ww, (0.99, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0))
        ref = RandomResizedCrop.get_params(torch.zeros(3, hh, ww), [0.99, 1.0], [3 / 4, 4 / 3])
        assert ours.tolist() == [list(ref)] * 5


# --------------------------------------------------------------------------- the whole pipeline
class _Spy:
    """Records the arguments the pipeline passes to one of its operations."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, x, p, *rest):
        self.calls.append(p.clone())
        return self.fn(x, p, *rest)


def _spy_all(monkeypatch):
    spies = {k: _Spy(getattr(A, f"adjust_{k}")) for k in ("brightness", "contrast", "saturation", "hue")}
    for k, sp in spies.items():
        monkeypatch.setattr(A, f"adjust_{k}", sp)

    boxes = []
    real_sample = A.sample_crop_boxes

    def box_spy(*args, **kw):
        b = real_sample(*args, **kw)
        boxes.append(b.clone())
        return b

    monkeypatch.setattr(A, "sample_crop_boxes", box_spy)
    return spies, boxes


def _factor(spies, k, n, neutral):
    return spies[k].calls[0] if spies[k].calls else torch.full((n,), neutral)


@pytest.mark.parametrize("flip_gray", [0.0, 1.0])
@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_pipeline_equals_torchvision_per_image(real_images, monkeypatch, flip_gray, strength):
    """With flip and grayscale forced off (p=0) or on (p=1), each output equals torchvision's functional
    ops applied per image in the released order with the parameters the batch drew."""
    spies, boxes = _spy_all(monkeypatch)
    aug = SSLAugment(size=32, jitter_strength=strength, flip_p=flip_gray, gray_p=flip_gray)
    out = aug(real_images, torch.Generator().manual_seed(10))
    n = len(real_images)
    fb, fc, fs = (_factor(spies, k, n, 1.0) for k in ("brightness", "contrast", "saturation"))
    fh = _factor(spies, "hue", n, 0.0)
    for i in range(n):
        top, left, h, w = boxes[0][i].tolist()
        ref = TF.resized_crop(TF.to_dtype(real_images[i], torch.float32, scale=True), top, left, h, w, [32, 32],
                              interpolation=BILINEAR, antialias=True)
        if flip_gray:
            ref = TF.horizontal_flip(ref)
        if fb[i] != 1:
            ref = TF.adjust_brightness(ref, float(fb[i]))
        if fc[i] != 1:
            ref = TF.adjust_contrast(ref, float(fc[i]))
        if fs[i] != 1:
            ref = TF.adjust_saturation(ref, float(fs[i]))
        if fh[i] != 0:
            ref = TF.adjust_hue(ref, float(fh[i]))
        if flip_gray:
            ref = TF.rgb_to_grayscale(ref, num_output_channels=3)
        torch.testing.assert_close(out[i], ref, atol=1e-4, rtol=0, msg=f"image {i}")


def test_pipeline_random_parameter_frequencies(monkeypatch):
    """Over many images: each jitter applied with p = 0.8 with factors ~ U(1 -+ 0.8 s) / hue ~ U(-+0.2 s)
    (s = 0.5), flip with p = 0.5, grayscale with p = 0.2."""
    n = 6000
    spies, _ = _spy_all(monkeypatch)
    # colourful images: grayscale output <=> R == G == B everywhere
    colour = _random_images(n, 16, 11)
    out = SSLAugment(size=16, jitter_strength=0.5)(colour, torch.Generator().manual_seed(12))
    gray = ((out[:, 0] == out[:, 1]) & (out[:, 1] == out[:, 2])).flatten(1).all(1).float().mean().item()
    assert abs(gray - 0.2) < 0.03
    applied = {}
    for k, lo, hi, neutral in (("brightness", 0.6, 1.4, 1.0), ("contrast", 0.6, 1.4, 1.0),
                               ("saturation", 0.6, 1.4, 1.0), ("hue", -0.1, 0.1, 0.0)):
        f = spies[k].calls[0]
        on = f != neutral
        applied[k] = on
        assert abs(on.float().mean().item() - 0.8) < 0.03, k
        v = f[on].double().numpy()
        assert v.min() >= lo and v.max() <= hi, k
        assert stats.kstest(v, "uniform", args=(lo, hi - lo)).pvalue > 1e-3, k
    both = applied["brightness"] & applied["contrast"] & applied["saturation"] & applied["hue"]
    assert abs(both.float().mean().item() - 0.8 ** 4) < 0.03  # independent draws

    # a gray horizontal ramp: every op keeps left darker than right, unless the image was flipped
    ramp = torch.linspace(25, 150, 16).round().to(torch.uint8).expand(n, 3, 16, 16).contiguous()
    out = SSLAugment(size=16, jitter_strength=0.5)(ramp, torch.Generator().manual_seed(13))
    flipped = out[..., :8].mean(dim=(1, 2, 3)) > out[..., 8:].mean(dim=(1, 2, 3))
    assert abs(flipped.float().mean().item() - 0.5) < 0.03


def test_strength_one_ranges(monkeypatch):
    spies, _ = _spy_all(monkeypatch)
    SSLAugment(size=16, jitter_strength=1.0)(_random_images(3000, 16, 14), torch.Generator().manual_seed(15))
    b = spies["brightness"].calls[0]
    h = spies["hue"].calls[0]
    assert b[b != 1].min() >= 0.2 and b.max() <= 1.8 and b.max() > 1.7 and b[b != 1].min() < 0.3
    assert h.min() >= -0.2 and h.max() <= 0.2 and h.max() > 0.19


def test_output_shape_dtype_range_and_views(real_images):
    aug = SSLAugment(size=32, jitter_strength=0.5)
    before = real_images.clone()
    g = torch.Generator().manual_seed(16)
    v1, v2 = aug(real_images, g), aug(real_images, g)
    assert torch.equal(real_images, before)  # the input is not modified
    for v in (v1, v2):
        assert v.shape == (64, 3, 32, 32) and v.dtype == torch.float32 and v.is_contiguous()
        assert v.min() >= 0 and v.max() <= 1
    # two views of the same image differ (for every image)
    assert bool(((v1 - v2).abs().flatten(1).amax(1) > 1e-3).all())
    # the same seed gives the same views
    assert torch.equal(v1, aug(real_images, torch.Generator().manual_seed(16)))
    # 128 px images (ImageNet-100 / Flowers / Cars)
    big = SSLAugment(size=128, jitter_strength=1.0)(_random_images(4, 128, 17), torch.Generator().manual_seed(1))
    assert big.shape == (4, 3, 128, 128) and big.dtype == torch.float32 and 0 <= big.min() and big.max() <= 1


def test_to_float_is_to_tensor(real_images):
    """The un-augmented view is the released code's ``ToTensor()`` of the HWC uint8 image."""
    from torchvision.transforms.functional import to_tensor

    ref = torch.stack([to_tensor(im.permute(1, 2, 0).numpy()) for im in real_images])
    assert torch.equal(to_float(real_images.clone()), ref)
    assert math.isclose(float(to_float(torch.tensor([255], dtype=torch.uint8))), 1.0)
