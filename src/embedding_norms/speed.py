"""Measured training rates per device, and the training time they project for a set of runs.

``benchmarks/throughput.py`` measures view pairs per second of each method's training loop on
the device at hand and records them with :func:`record_rates` in ``benchmarks/measured_rates.json``,
keyed by :func:`device_name`. ``python -m reproduce ... --dry-run`` reads them back
(:func:`load_rates`) and prints the projected device-hours (:func:`projected_hours`).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch

from .config import PROJECT_ROOT, RunConfig
from .io import write_json

#: Where the throughput benchmark records its rates (committed, one entry per device name).
RATES_PATH = PROJECT_ROOT / "benchmarks" / "measured_rates.json"
#: The image side at which rates are measured; runs at another size are scaled by pixel count.
RATE_IMAGE_SIZE = 32


def device_name(device: str | torch.device) -> str:
    """A stable name of the hardware behind ``device``: the CUDA device name (e.g. ``NVIDIA
    H100 80GB HBM3``) or ``cpu: <processor model> x <torch threads>``.

    Raises:
        RuntimeError: a CUDA device when none is visible (from torch).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu: {cpu_model()} x {torch.get_num_threads()} threads"


def cpu_model() -> str:
    """The processor model (``model name`` of ``/proc/cpuinfo``, e.g. ``AMD EPYC``), or
    :func:`platform.processor` / :func:`platform.machine` where that file is not readable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_rates(path: Path = RATES_PATH) -> dict[str, Any]:
    """All recorded rates (``{}`` when the file does not exist).

    Raises:
        ValueError: the file is not valid JSON (names the file; delete it and re-run the benchmark).
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it and re-run benchmarks/throughput.py") from None


def record_rates(name: str, profile: str, entry: Mapping[str, Any], path: Path = RATES_PATH) -> None:
    """Store ``entry`` for device ``name`` and the model shapes of ``profile`` in ``path`` (other
    entries are kept).

    ``entry["pairs_per_second"][method][precision]`` is the full training loop's view pairs per
    second at 32 px of ``method`` (``simclr``, ``simsiam``, ``byol``) in ``precision`` (``fp32``,
    ``bf16``) with the model and batch of ``profile``.
    """
    rates = load_rates(path)
    rates.setdefault(name, {})[profile] = dict(entry)
    write_json(Path(path), rates)


def run_pairs(cfg: RunConfig, train_images: int) -> int:
    """View pairs a run trains: ``epochs x`` the images of its optimizer steps per epoch."""
    step = cfg.optim.batch_size * cfg.optim.accumulation_steps
    return cfg.train.epochs * (train_images // step) * step


def projected_hours(runs: Iterable[tuple[RunConfig, int]], rates: Mapping[str, Mapping[str, float]]) -> Optional[float]:
    """Training hours of ``runs`` (pairs of config and training-set size) at measured ``rates``
    (``rates[method][precision]``, view pairs per second at 32 px).

    Each run takes ``run_pairs / rate x (image_size / 32) ** 2`` seconds: rates are measured at
    32 px and cost is taken to grow with the pixel count (a rough rule for larger images).
    Evaluation and checkpoints are not included. None when a run's method/precision has no rate.
    """
    seconds = 0.0
    for cfg, n in runs:
        rate = rates.get(cfg.method.name, {}).get(cfg.train.precision)
        if not rate:
            return None
        seconds += run_pairs(cfg, n) / rate * (cfg.data.image_size / RATE_IMAGE_SIZE) ** 2
    return seconds / 3600


def hours_line(runs: list[tuple[RunConfig, int]], device: str | torch.device, profile: str,
               path: Path = RATES_PATH) -> str:
    """One line for ``--dry-run``: the projected hours of ``runs`` (of ``profile``) on ``device``
    from the rates measured there for that profile, or how to measure them when there are none."""
    name = device_name(device)
    entry = load_rates(path).get(name, {}).get(profile)
    hours = projected_hours(runs, entry.get("pairs_per_second", {})) if entry else None
    if hours is None:
        return (f"no measured training rate of profile {profile} on {name!r} in {Path(path).name}: run "
                f"`python benchmarks/throughput.py --profile {profile} --record` on this machine to project the "
                f"training time")
    kind = "GPU" if torch.device(device).type == "cuda" else "CPU"
    return (f"projected training time on {name}: {hours:.1f} {kind}-hours for {len(runs)} run(s) "
            f"(rates measured {entry.get('measured', '?')}; evaluation not included)")
