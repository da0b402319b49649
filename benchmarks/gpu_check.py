"""One-GPU check of the paper profile (under 10 minutes on one modern GPU).

1. ``benchmarks/throughput.py`` for the paper profile's ResNet-18 CIFAR-stem models of SimCLR,
   SimSiam and BYOL in fp32 and bf16, with and without ``channels_last`` (rates recorded in
   ``benchmarks/measured_rates.json`` for ``python -m reproduce all --profile paper --dry-run``);
2. one real training epoch of paper-profile SimCLR on CIFAR-10 (a generated stand-in of the same
   size when the data is missing) with the project's training loop, then one evaluation (norms of
   the probe set and the kNN accuracy on the test set); prints seconds per epoch, seconds per
   evaluation and the projected time of a 512-epoch run.

    python benchmarks/gpu_check.py                # on the GPU machine
    python benchmarks/gpu_check.py --tiny         # CPU wiring test at tiny sizes (the test suite runs it)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import throughput  # noqa: E402

from embedding_norms.config import RunConfig  # noqa: E402
from embedding_norms.data import SSLAugment, load_split, make_standin, resolve_data_dir  # noqa: E402
from embedding_norms.evaluate import embed, knn_accuracy  # noqa: E402
from embedding_norms.models import SSLModel  # noqa: E402
from embedding_norms.speed import device_name  # noqa: E402
from embedding_norms.train import _optimizer, resolve_device, train_steps, training_images  # noqa: E402


def one_epoch(device: torch.device, data_dir: Optional[str], tiny: bool) -> dict[str, float]:
    """Train paper-profile SimCLR for one epoch and evaluate it once; returns the timings.

    ``tiny``: 2 train and 2 test images per class, batch 4 (a wiring test).
    """
    overrides = {"optim": {"batch_size": 4}} if tiny else {}
    cfg = RunConfig.load("simclr", "paper", overrides)
    root = resolve_data_dir(data_dir)
    if root is not None and not tiny:
        train, test = load_split("cifar10", "train", root), load_split("cifar10", "test", root)
        source = "CIFAR-10"
    else:
        train = make_standin("cifar10", "train", per_class=2 if tiny else 5000)
        test = make_standin("cifar10", "test", per_class=2 if tiny else 1000)
        source = "generated stand-in of CIFAR-10's size" if not tiny else "tiny generated stand-in"
    o = cfg.optim
    step_images = o.batch_size * o.accumulation_steps
    n_steps = len(train) // step_images
    torch.manual_seed(0)
    model = SSLModel(cfg).to(device)
    opt = _optimizer(model, cfg)
    aug = SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)
    g = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t = time.perf_counter()
    images = training_images(train.images, device)
    perm = torch.randperm(len(train), generator=g)
    steps = [perm[s * step_images:(s + 1) * step_images] for s in range(n_steps)]
    losses, _, _ = train_steps(model, opt, images, steps, aug, o, g, device, 0, n_steps, cfg.train.epochs,
                               cfg.train.precision)
    sync()
    epoch_s = time.perf_counter() - t
    t = time.perf_counter()
    bank = embed(model, train.images, device)["h"]
    query = embed(model, test.images, device)["h"]
    acc = knn_accuracy(query, test.labels, bank, train.labels, train.num_classes, cfg.eval.knn_k,
                       cfg.eval.knn_temperature)
    eval_s = time.perf_counter() - t
    n_eval = len(cfg.train.eval_epochs)
    total_h = (cfg.train.epochs * epoch_s + n_eval * eval_s) / 3600
    print(f"one epoch of paper-profile SimCLR ({cfg.model.backbone}, {cfg.model.stem} stem, batch {o.batch_size}, "
          f"{cfg.train.precision}) on {source} ({len(train)} images, {n_steps} steps): {epoch_s:.1f} s per epoch "
          f"(first epoch, includes warm-up), mean loss {sum(losses) / len(losses):.3f}; one kNN evaluation "
          f"{eval_s:.1f} s (accuracy {acc:.1f} %)")
    print(f"projected {cfg.train.epochs}-epoch run: {total_h:.2f} h ({cfg.train.epochs} x {epoch_s:.1f} s + "
          f"{n_eval} evaluations x {eval_s:.1f} s)")
    if not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"non-finite loss in the check epoch: {losses}")
    return {"epoch_seconds": epoch_s, "eval_seconds": eval_s, "projected_hours": total_h, "knn_acc": acc}


def main(argv: Optional[list[str]] = None) -> dict:
    """Command line (see the module docstring); returns the throughput results and epoch timings."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tiny", action="store_true", help="tiny sizes for a CPU wiring test (rates are not recorded)")
    p.add_argument("--rates-file", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    print(f"gpu_check on {device_name(device)} (torch {torch.__version__})", flush=True)
    bench = ["--device", str(device), "--profile", "paper", "--methods", "simclr", "simsiam", "byol"]
    if args.tiny:  # SimCLR only: the paper-size ResNet-18 is slow on a CPU
        bench = ["--device", str(device), "--profile", "paper", "--methods", "simclr", "--tiny"]
    else:
        bench += ["--steps", "4", "--repeats", "3", "--workers", str(min(8, os.cpu_count() or 1)), "--record"]
    if args.rates_file:
        bench += ["--rates-file", args.rates_file]
    if args.data_dir:
        bench += ["--data-dir", args.data_dir]
    t = time.perf_counter()
    rates = throughput.main(bench)
    print(f"throughput benchmark: {time.perf_counter() - t:.0f} s", flush=True)
    return {"throughput": rates, "epoch": one_epoch(device, args.data_dir, args.tiny)}


if __name__ == "__main__":
    main()
