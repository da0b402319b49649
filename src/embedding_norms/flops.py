"""Counted FLOPs of one training step, and the GPU-hours they *project* where no rate was measured.

``python -m reproduce ... --dry-run`` projects training time from rates measured on the device
(:mod:`embedding_norms.speed`, ``benchmarks/measured_rates.json``) when there are some; otherwise
from the FLOPs of the model's training step (:func:`flops_per_pair`, counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on forward + backward of the loss of a batch of
view pairs) at an assumed sustained throughput per GPU type (:data:`SUSTAINED_TFLOPS`). That is
a projection, not a measurement: evaluation, data loading and checkpoints are not counted.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import RunConfig
from .speed import run_pairs

#: Peak dense tensor-core throughput in TFLOP/s (NVIDIA datasheets: A100 SXM 80GB, H100 SXM5;
#: fp32 training runs as TF32 on tensor cores, PyTorch's default for convolutions).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "A100": {"fp32": 156.0, "bf16": 312.0},
    "H100": {"fp32": 494.7, "bf16": 989.4},
}
#: Assumed fraction of the peak sustained by a ResNet-18 training step on 32 px images (small
#: images and batches keep GPUs far from peak; 0.3 is an assumption, not a measurement: record
#: measured rates with ``benchmarks/throughput.py --record`` to replace it).
SUSTAINED_FRACTION = 0.3
#: Sustained TFLOP/s used by the projection: ``PEAK_TFLOPS x SUSTAINED_FRACTION``.
SUSTAINED_TFLOPS: dict[str, dict[str, float]] = {
    gpu: {prec: round(v * SUSTAINED_FRACTION, 1) for prec, v in peaks.items()} for gpu, peaks in PEAK_TFLOPS.items()}


def count_flops(step) -> int:
    """FLOPs counted by :class:`~torch.utils.flop_counter.FlopCounterMode` while ``step()`` runs
    (matrix products and convolutions, 2 FLOPs per multiply-add, backward included when ``step``
    calls ``backward``; element-wise operations are not counted)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


#: FLOPs per pair by model shape (method, model, norm control, image size) and batch.
_CACHE: dict[tuple[str, int], float] = {}


def _flops_per_pair(cfg: RunConfig, pairs: int) -> float:
    from .models import SSLModel  # the model code is only needed for counting

    torch.manual_seed(0)
    model = SSLModel(cfg)
    size = cfg.data.image_size
    x1, x2 = torch.rand(pairs, 3, size, size), torch.rand(pairs, 3, size, size)

    def step():
        loss, _ = model.loss(x1, x2)
        loss.backward()

    return count_flops(step) / pairs


def flops_per_pair(cfg: RunConfig, pairs: int = 2) -> float:
    """FLOPs of forward + backward of one view pair in ``cfg``'s training step (both views through
    the online network, the loss, BYOL's target forward; counted on the CPU with a batch of
    ``pairs`` pairs: the loss's batch-size-dependent terms are negligible next to the backbone).

    Raises:
        ValueError: ``pairs < 2`` (BatchNorm needs two samples).
    """
    if pairs < 2:
        raise ValueError(f"pairs must be >= 2 (BatchNorm needs two samples), got {pairs}")
    key = (repr((cfg.method, cfg.model, cfg.norm, cfg.data.image_size)), pairs)
    if key not in _CACHE:
        _CACHE[key] = _flops_per_pair(cfg, pairs)
    return _CACHE[key]


def projected_gpu_hours(runs: Iterable[tuple[RunConfig, int]], gpu: str,
                        tflops: Mapping[str, Mapping[str, float]] = SUSTAINED_TFLOPS) -> float:
    """Training GPU-hours of ``runs`` (pairs of config and training-set size) on GPU type ``gpu``:
    ``sum(run_pairs x flops_per_pair) / (sustained TFLOP/s of the run's precision x 1e12) / 3600``.

    Raises:
        KeyError: an unknown GPU type (the message lists the known ones).
    """
    if gpu not in tflops:
        raise KeyError(f"unknown GPU type {gpu!r}; known: {', '.join(tflops)}")
    seconds = sum(run_pairs(cfg, n) * flops_per_pair(cfg) / (tflops[gpu][cfg.train.precision] * 1e12)
                  for cfg, n in runs)
    return seconds / 3600
