"""SimCLR training throughput (view pairs per second) of the ``quick`` model and batch size.

Three measurements, each the median of ``--repeats`` timed blocks of ``--steps`` optimizer
steps after ``--warmup`` untimed steps:

(a) ``full``: the project's training loop (``embedding_norms.train.train_steps``): batches
    indexed from the uint8 CIFAR-10 tensor in memory, two views by the batched
    ``SSLAugment``, loss, backward, SGD step;
(b) ``model``: the pure model step (loss, backward, SGD step) on pre-made random views;
(c) ``reference``: the usual pipeline of the released code: per-image torchvision transforms
    on PIL images in a ``DataLoader`` (``--workers`` processes), feeding the same model step.

Targets on the 2-core development machine: (a) >= 0.9 x (b) and (a) >= 1.4 x (c).

    python benchmarks/throughput.py [--steps 8] [--repeats 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from embedding_norms.config import RunConfig
from embedding_norms.data import SSLAugment, load_split, make_standin, resolve_data_dir
from embedding_norms.models import SSLModel
from embedding_norms.train import _optimizer, train_steps


class PairDataset(Dataset):
    """The released ``CIFAR10_Pair``: PIL image -> two independently transformed views."""

    def __init__(self, images_hwc: np.ndarray, transform):
        self.images, self.transform = images_hwc, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return self.transform(img), self.transform(img)


def released_transform(size: int, s: float) -> T.Compose:
    """``get_transforms`` of the released code (CIFAR: s = 0.5)."""
    return T.Compose([
        T.RandomResizedCrop(size, (0.2, 1.0)), T.RandomHorizontalFlip(0.5),
        T.RandomApply([T.ColorJitter(0.8 * s, 0, 0, 0)], p=0.8),
        T.RandomApply([T.ColorJitter(0, 0.8 * s, 0, 0)], p=0.8),
        T.RandomApply([T.ColorJitter(0, 0, 0.8 * s, 0)], p=0.8),
        T.RandomApply([T.ColorJitter(0, 0, 0, 0.2 * s)], p=0.8),
        T.RandomGrayscale(0.2), T.ToTensor(),
    ])


def timed(fn, blocks: int) -> list[float]:
    """Wall-clock seconds of each of ``blocks`` calls of ``fn`` (the caller takes the median)."""
    out = []
    for _ in range(blocks):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    """Command line of the benchmark: measure the three loops and print pairs/s and ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per measurement (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()

    cfg = RunConfig.load("simclr", args.profile)
    o = cfg.optim
    bs = o.batch_size
    device = torch.device("cpu")
    root = resolve_data_dir(args.data_dir)
    images = load_split("cifar10", "train", root).images if root else make_standin("cifar10", "train", per_class=500).images
    torch.manual_seed(0)
    model = SSLModel(cfg)
    opt = _optimizer(model, cfg)
    aug = SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)
    g = torch.Generator().manual_seed(0)
    print(f"SimCLR, profile {args.profile}: {cfg.model.backbone} (width {cfg.model.width}, {cfg.model.stem} stem), "
          f"batch {bs}, {torch.get_num_threads()} torch threads, {args.steps} steps x {args.repeats} blocks")

    def full(n):
        steps = [torch.randint(0, len(images), (bs,), generator=g) for _ in range(n)]
        train_steps(model, opt, images, steps, aug, o, g, device, 10_000, 100, 512)

    x1, x2 = torch.rand(bs, 3, 32, 32), torch.rand(bs, 3, 32, 32)

    def pure(n):
        model.train()
        for _ in range(n):
            loss, _ = model.loss(x1, x2)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    hwc = images.permute(0, 2, 3, 1).numpy()
    loader = DataLoader(PairDataset(hwc, released_transform(cfg.data.image_size, cfg.data.jitter_strength)),
                        batch_size=bs, shuffle=True, num_workers=args.workers, drop_last=True,
                        persistent_workers=args.workers > 0)
    it = iter(loader)

    def reference(n):
        nonlocal it
        model.train()
        for _ in range(n):
            try:
                a, b = next(it)
            except StopIteration:
                it = iter(loader)
                a, b = next(it)
            loss, _ = model.loss(a, b)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    # blocks of the three loops are interleaved (b, a, c, b, a, c, ...) so that slow drifts of the
    # machine's speed affect all three alike; the median block of each is reported
    loops = (("(b) model step", pure), ("(a) full loop", full), ("(c) reference", reference))
    for _, fn in loops:
        fn(args.warmup)
    rates: dict[str, list[float]] = {name: [] for name, _ in loops}
    for _ in range(args.repeats):
        for name, fn in loops:
            rates[name].append(args.steps * bs / timed(lambda: fn(args.steps), 1)[0])
    results = {}
    for name, _ in loops:
        results[name] = statistics.median(rates[name])
        print(f"{name:16s} {results[name]:8.1f} pairs/s   (blocks: {', '.join(f'{r:.1f}' for r in rates[name])})")
    a, b, c = results["(a) full loop"], results["(b) model step"], results["(c) reference"]
    print(f"(a)/(b) = {a / b:.3f}  (target >= 0.9)   (a)/(c) = {a / c:.2f}  (target >= 1.4)")


if __name__ == "__main__":
    main()
