"""Training throughput (view pairs per second) in fp32 and bf16, and the training time it projects.

Three measurements per method and precision, each the median of ``--repeats`` timed blocks of
``--steps`` optimizer steps after ``--warmup`` untimed steps:

(a) ``full``: the project's training loop (``embedding_norms.train.train_steps``): batches
    indexed from the uint8 CIFAR-10 tensor (on the device when it is a GPU), two views by the
    batched ``SSLAugment``, loss, backward, SGD step;
(b) ``model``: the pure model step (loss, backward, SGD step) on pre-made random views;
(c) ``reference``: the usual pipeline of the released code: per-image torchvision transforms
    on PIL images in a ``DataLoader`` (``--workers`` processes), feeding the same model step.

On the CPU (default ``--profile quick``: SimCLR): fp32 and bf16. On CUDA (default ``--profile
paper``: the ResNet-18 CIFAR-stem models of SimCLR, SimSiam and BYOL): fp32 and bf16, each with
and without ``channels_last``. Targets on the 2-core development CPU: (a) >= 0.9 x (b) and
(a) >= 1.4 x (c). ``--record`` stores the full-loop rates in ``benchmarks/measured_rates.json``
(keyed by device name and profile), from which ``python -m reproduce ... --dry-run`` projects
training hours; with ``--profile paper`` the projected hours of ``python -m reproduce all
--profile paper`` are printed here too.

    python benchmarks/throughput.py [--device cuda] [--profile paper] [--record] [--tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # reproduce/ (for the run plan)

from embedding_norms.config import METHODS, PRECISIONS, RunConfig  # noqa: E402
from embedding_norms.data import SSLAugment, load_split, make_standin, resolve_data_dir  # noqa: E402
from embedding_norms.models import SSLModel  # noqa: E402
from embedding_norms.speed import RATES_PATH, device_name, projected_hours, record_rates  # noqa: E402
from embedding_norms.train import _optimizer, autocast, resolve_device, train_steps, training_images  # noqa: E402


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


def planned_runs(profile: str) -> list[tuple[RunConfig, int]]:
    """Every distinct run of ``python -m reproduce all --profile <profile>`` with its training-set
    size; datasets that are not available here count as present (generated stand-ins)."""
    from reproduce.runner import planned_configs, train_images

    cfgs = {c.replace({"data": {"standin": False, "source": None}}).hash(): c.replace({"data": {"standin": False, "source": None}})
            for c in planned_configs(profile)}
    return [(c, train_images(c)) for c in cfgs.values()]


def measure(method: str, profile: str, device: torch.device, precision: str, channels_last: bool, images: torch.Tensor,
            steps: int, repeats: int, warmup: int, workers: int, batch: Optional[int] = None) -> dict[str, float]:
    """Median pairs/s of (a) ``full``, (b) ``model`` and (c) ``reference`` (see the module docstring)
    for one method, precision and memory format; blocks are interleaved (b, a, c, b, a, c, ...)
    so that slow drifts of the machine's speed affect all three alike."""
    overrides = {"train": {"precision": precision}}
    if batch:
        overrides["optim"] = {"batch_size": batch}
    cfg = RunConfig.load(method, profile, overrides)
    o = cfg.optim
    bs, size = o.batch_size, cfg.data.image_size
    torch.manual_seed(0)
    model = SSLModel(cfg)
    if not channels_last:
        model.memory_format = torch.contiguous_format
        model.to(memory_format=torch.contiguous_format)
    model = model.to(device)
    opt = _optimizer(model, cfg)
    aug = SSLAugment(size, cfg.data.jitter_strength)
    g = torch.Generator().manual_seed(0)
    dev_images = training_images(images, device)
    cast = autocast(device, precision)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def full(n):
        idx = [torch.randint(0, len(images), (bs * o.accumulation_steps,), generator=g) for _ in range(n)]
        train_steps(model, opt, dev_images, idx, aug, o, g, device, 10_000, 100, 512, precision)

    def step(batches):
        for a, b in batches:
            with cast:
                loss, _ = model.loss(a.to(device, non_blocking=True), b.to(device, non_blocking=True))
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    x1, x2 = torch.rand(bs, 3, size, size, device=device), torch.rand(bs, 3, size, size, device=device)

    def pure(n):
        model.train()
        for _ in range(n):
            step([(x1, x2)] * o.accumulation_steps)

    hwc = images.permute(0, 2, 3, 1).numpy()
    loader = DataLoader(PairDataset(hwc, released_transform(size, cfg.data.jitter_strength)), batch_size=bs,
                        shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda")
    it = iter(loader)

    def next_pair():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    def reference(n):
        model.train()
        for _ in range(n):
            step([next_pair() for _ in range(o.accumulation_steps)])

    loops = {"model": pure, "full": full, "reference": reference}
    for fn in loops.values():
        fn(warmup)
    rates: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(repeats):
        for name, fn in loops.items():
            sync()
            t = time.perf_counter()
            fn(steps)
            sync()
            rates[name].append(steps * bs * o.accumulation_steps / (time.perf_counter() - t))
    with contextlib.suppress(Exception):
        del it, loader
    return {k: statistics.median(v) for k, v in rates.items()}


def main(argv: Optional[list[str]] = None) -> dict:
    """Command line: measure, print a table with the two ratios, optionally record; returns the results."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--profile", default=None, help="model shapes (default: quick on the CPU, paper on CUDA)")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS,
                   help="default: simclr on the CPU, all three on CUDA")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per measurement (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--record", action="store_true", help=f"store the full-loop rates in {RATES_PATH.name}")
    p.add_argument("--rates-file", default=str(RATES_PATH), help=argparse.SUPPRESS)
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a wiring test on the CPU): batch 2, 1 step, no warm-up")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    profile = args.profile or ("paper" if gpu else "quick")
    methods = args.methods or (list(METHODS) if gpu else ["simclr"])
    layouts = (True, False) if gpu else (True,)
    batch = None
    if args.tiny:
        args.steps, args.repeats, args.warmup, args.workers, batch = 1, 1, 0, 0, 2
    root = resolve_data_dir(args.data_dir)
    images = (load_split("cifar10", "train", root).images if root and not args.tiny
              else make_standin("cifar10", "train", per_class=500 if not args.tiny else 4).images)
    name = device_name(device)
    print(f"{name}: profile {profile}, {torch.get_num_threads()} torch threads, "
          f"{args.steps} steps x {args.repeats} blocks")
    print(f"{'method':8s} {'precision':9s} {'layout':14s} {'(a) full':>9s} {'(b) model':>9s} {'(c) ref':>9s} "
          f"{'a/b':>6s} {'a/c':>6s}   (pairs/s)")
    results = []
    for method in methods:
        for precision in PRECISIONS:
            for cl in layouts:
                r = measure(method, profile, device, precision, cl, images, args.steps, args.repeats, args.warmup,
                            args.workers, batch)
                r = dict(method=method, precision=precision, channels_last=cl, **r,
                         full_vs_model=r["full"] / r["model"], full_vs_reference=r["full"] / r["reference"])
                results.append(r)
                print(f"{method:8s} {precision:9s} {'channels_last' if cl else 'contiguous':14s} {r['full']:9.1f} "
                      f"{r['model']:9.1f} {r['reference']:9.1f} {r['full_vs_model']:6.3f} {r['full_vs_reference']:6.2f}",
                      flush=True)
    print("targets (2-core CPU, quick profile's precision): a/b >= 0.9, a/c >= 1.4")
    # the rates training gets: the model's own memory format (channels_last), full loop
    rates = {m: {r["precision"]: r["full"] for r in results if r["method"] == m and r["channels_last"]} for m in methods}
    out = {"device": name, "profile": profile, "results": results, "pairs_per_second": rates}
    if profile == "paper" and set(methods) == set(METHODS) and not args.tiny:
        hours = projected_hours(planned_runs("paper"), rates)
        out["projected_paper_hours"] = hours
        print(f"projected training time of `python -m reproduce all --profile paper` on {name}: "
              f"{hours:.1f} {'GPU' if gpu else 'CPU'}-hours (fp32 as the paper profile; evaluation not included)")
    if args.record:
        record_rates(name, profile, {"measured": date.today().isoformat(), "torch": torch.__version__,
                                     "pairs_per_second": rates, "results": results}, Path(args.rates_file))
        print(f"recorded in {args.rates_file}")
    return out


if __name__ == "__main__":
    main()
