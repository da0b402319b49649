"""The released code's SSL augmentation, applied to whole batches of uint8 images at once.

The released code composes per-image torchvision transforms on PIL images
(``CLA/utils/data_utils.py::get_transforms``)::

    RandomResizedCrop(size, scale=(0.2, 1.0))          # ratio (3/4, 4/3)
    RandomHorizontalFlip(0.5)
    RandomApply([ColorJitter(brightness=0.8 s)], p=0.8)
    RandomApply([ColorJitter(contrast=0.8 s)],   p=0.8)
    RandomApply([ColorJitter(saturation=0.8 s)], p=0.8)
    RandomApply([ColorJitter(hue=0.2 s)],        p=0.8)
    RandomGrayscale(0.2)
    ToTensor()                                          # no normalisation

with ``s = 0.5`` on CIFAR and ``s = 1`` otherwise. :class:`SSLAugment` draws the same random
parameters with the same distributions (torchvision's ``RandomResizedCrop.get_params``
algorithm, vectorised) and applies the same operations (torchvision's
``resized_crop``/``adjust_*``/``rgb_to_grayscale`` formulas) to a batch in a few tensor
operations. Per-image torchvision transforms cost more than the model step on a 2-core CPU;
the tests compare every operation with torchvision's own per-image functional ops.

Differences to the released pipeline, by design: the colour operations run on float images
(PIL rounds to uint8 after each), and bilinear resampling follows ``torch`` rather than PIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale


def to_float(images: torch.Tensor) -> torch.Tensor:
    """The un-augmented evaluation view: uint8 ``(B, 3, H, W)`` -> float in [0, 1] (``ToTensor``)."""
    return images.float().div_(255.0)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma of float images ``(B, 3, H, W)`` -> ``(B, 1, H, W)`` (torchvision weights)."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                      generator: torch.Generator, attempts: int = 10) -> torch.Tensor:
    """Crop boxes ``(n, 4)`` as (top, left, h, w), int64: ``RandomResizedCrop.get_params`` vectorised.

    For each image, up to ``attempts`` candidates (area fraction ~ U(scale), log aspect ratio
    ~ U(log ratio)) are drawn; the first that fits is used, else the central crop with the
    aspect ratio clamped to ``ratio`` (torchvision's fallback).
    """
    area = height * width
    target = area * torch.empty(n, attempts).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    has = first >= 0
    pick = first.clamp(min=0).unsqueeze(1)
    h_sel = h.gather(1, pick).squeeze(1)
    w_sel = w.gather(1, pick).squeeze(1)
    u_i = torch.rand(n, generator=generator)
    u_j = torch.rand(n, generator=generator)
    top = torch.floor(u_i * (height - h_sel + 1).clamp(min=1)).long()
    left = torch.floor(u_j * (width - w_sel + 1).clamp(min=1)).long()
    # torchvision's fallback: central crop with the ratio clamped
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = height, int(round(height * max(ratio)))
    else:
        fw, fh = width, height
    h_out = torch.where(has, h_sel, torch.full_like(h_sel, fh))
    w_out = torch.where(has, w_sel, torch.full_like(w_sel, fw))
    top = torch.where(has, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(has, left, torch.full_like(left, (width - fw) // 2))
    return torch.stack([top, left, h_out, w_out], 1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each image to its box and resize it to ``size x size`` with bilinear interpolation.

    Equals ``torchvision.transforms.v2.functional.resized_crop(..., BILINEAR)`` per image
    when the crop is not larger than ``size`` (always the case for RandomResizedCrop to the
    image's own size): source coordinates ``(dst + 0.5) * in / out - 0.5`` clamped to the crop,
    as ``torch.nn.functional.interpolate(align_corners=False)``.

    Args:
        x: float images ``(B, C, H, W)``.
        boxes: ``(B, 4)`` int (top, left, h, w).
        size: output side length.

    Returns:
        ``(B, C, size, size)``.
    """
    b, _, hh, ww = x.shape
    dev = x.device
    boxes = boxes.to(dev)
    top, left, h, w = (boxes[:, k].to(torch.float32).unsqueeze(1) for k in range(4))
    dst = torch.arange(size, device=dev, dtype=torch.float32).unsqueeze(0) + 0.5
    ys = top + torch.minimum(((dst * h / size) - 0.5).clamp(min=0), h - 1)
    xs = left + torch.minimum(((dst * w / size) - 0.5).clamp(min=0), w - 1)
    gy = ys / max(hh - 1, 1) * 2 - 1  # align_corners=True pixel -> [-1, 1]
    gx = xs / max(ww - 1, 1) * 2 - 1
    grid = torch.stack([gx.unsqueeze(1).expand(b, size, size), gy.unsqueeze(2).expand(b, size, size)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shift the hue of each image by ``factor[b]`` (in turns, |factor| <= 0.5); float ``(B,3,H,W)``.

    The same values as torchvision's ``adjust_hue`` (RGB -> HSV hexcone, ``h <- (h + f) mod 1``,
    HSV -> RGB), computed in one pass: with ``M = max``, ``m = min``, ``C = M - m``, the hue in
    sixths of a turn is ``(g - b)/C``, ``2 + (b - r)/C`` or ``4 + (r - g)/C`` for a maximal r, g
    or b (ties give the same value), and each output channel is
    ``v - v s clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6h) mod 6``, ``n = 5, 3, 1`` for r, g, b.
    Images with ``factor == 0`` are returned unchanged (and cost nothing).
    """
    sel = (factor != 0).nonzero().squeeze(1)
    if len(sel) < len(factor):
        if len(sel) == 0:
            return x
        return x.index_copy(0, sel, adjust_hue(x.index_select(0, sel), factor.index_select(0, sel)))
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    chroma = maxc - torch.minimum(torch.minimum(r, g), b)
    num = torch.where(r == maxc, g - b, torch.where(g == maxc, (b - r) + 2 * chroma, (r - g) + 4 * chroma))
    h6 = torch.remainder(num / torch.where(chroma > 0, chroma, torch.ones_like(chroma)) + 6.0 * factor.view(-1, 1, 1), 6.0)
    sat = chroma / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + h6.unsqueeze(1), 6.0)
    amount = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    v = maxc.unsqueeze(1)
    return (v - v * sat.unsqueeze(1) * amount).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(f x)`` per image (torchvision ``adjust_brightness``)."""
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with the mean of its grayscale (torchvision ``adjust_contrast``)."""
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * mean).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with its grayscale (torchvision ``adjust_saturation``)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * grayscale(x)).clamp_(0, 1)


@dataclass(frozen=True)
class SSLAugment:
    """One random SSL view of every image of a batch (distribution of the released pipeline).

    Attributes:
        size: output side length (pixels).
        jitter_strength: ``s``; brightness/contrast/saturation factors ~ U(1 - 0.8 s, 1 + 0.8 s),
            hue shift ~ U(-0.2 s, 0.2 s).
        crop_scale, crop_ratio: RandomResizedCrop ranges.
        flip_p, jitter_p, gray_p: probabilities of the flip, of each jitter, of grayscale.
    """

    size: int = 32
    jitter_strength: float = 0.5
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    gray_p: float = 0.2

    def __call__(self, images: torch.Tensor, generator: torch.Generator, device: Optional[torch.device] = None) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: uint8 ``(B, 3, H, W)``.
            generator: CPU generator for every random draw (reproducible views).
            device: where to compute (default: the images' device).

        Returns:
            float ``(B, 3, size, size)`` in [0, 1].
        """
        n, _, hh, ww = images.shape
        dev = device or images.device
        x = to_float(images.to(dev, non_blocking=True))
        boxes = sample_crop_boxes(n, hh, ww, self.crop_scale, self.crop_ratio, generator)
        x = resized_crop(x, boxes, self.size)

        flip = (torch.rand(n, generator=generator) < self.flip_p).nonzero().squeeze(1).to(dev)
        x = x.index_copy(0, flip, x.index_select(0, flip).flip(-1))

        s = self.jitter_strength
        for kind, lo, hi in (("brightness", 1 - 0.8 * s, 1 + 0.8 * s), ("contrast", 1 - 0.8 * s, 1 + 0.8 * s),
                             ("saturation", 1 - 0.8 * s, 1 + 0.8 * s), ("hue", -0.2 * s, 0.2 * s)):
            apply = torch.rand(n, generator=generator) < self.jitter_p
            lo = max(0.0, lo) if kind != "hue" else lo
            factor = torch.empty(n).uniform_(lo, hi, generator=generator)
            neutral = 0.0 if kind == "hue" else 1.0
            factor = torch.where(apply, factor, torch.full_like(factor, neutral)).to(dev)
            if not bool(apply.any()):
                continue
            if kind == "brightness":
                x = adjust_brightness(x, factor)
            elif kind == "contrast":
                x = adjust_contrast(x, factor)
            elif kind == "saturation":
                x = adjust_saturation(x, factor)
            else:
                x = adjust_hue(x, factor)

        gray = (torch.rand(n, generator=generator) < self.gray_p).nonzero().squeeze(1).to(dev)
        x = x.index_copy(0, gray, grayscale(x.index_select(0, gray)).expand(-1, 3, -1, -1))
        return x.contiguous()
