"""What ``python -m reproduce ... --dry-run`` says a build will cost: per artifact and in total, the
runs, training seeds per dataset, view pairs and the projected device-hours.

Hours come from rates measured on this device for the profile (``benchmarks/measured_rates.json``,
:func:`embedding_norms.speed.projected_hours`) when there are some, else from the counted FLOPs
of each model's training step at an assumed sustained throughput per GPU type
(:mod:`embedding_norms.flops`), labelled as a projection.
"""

from __future__ import annotations

from typing import Callable, Sequence

from embedding_norms.config import RunConfig
from embedding_norms.flops import SUSTAINED_FRACTION, SUSTAINED_TFLOPS, projected_gpu_hours
from embedding_norms.speed import RATES_PATH, device_name, load_rates, projected_hours, run_pairs


def seeds_per_dataset(cfgs: Sequence[RunConfig]) -> dict[str, int]:
    """Distinct training seeds per dataset among ``cfgs`` (e.g. ``{"cifar10": 3}``)."""
    seen: dict[str, set[int]] = {}
    for c in cfgs:
        seen.setdefault(c.data.dataset, set()).add(c.train.seed)
    return {ds: len(s) for ds, s in sorted(seen.items())}


def _hours(runs: list[tuple[RunConfig, int]], measured) -> str:
    if measured is not None:
        h = projected_hours(runs, measured)
        if h is not None:
            return f"{h:.1f} h (measured rates)"
    return ", ".join(f"{projected_gpu_hours(runs, gpu):.1f} {gpu}-h" for gpu in SUSTAINED_TFLOPS)


def dry_run_lines(per_artifact: dict[str, list[RunConfig]], todo: Sequence[RunConfig], device, profile: str,
                  images_of: Callable[[RunConfig], int], rates_path=RATES_PATH) -> list[str]:
    """Lines of the dry run's cost table: one per artifact (runs needed and to train, seeds per
    dataset, view pairs and hours of the runs it needs that are not trained yet; a run shared by
    several artifacts is counted in each), then the total over the distinct runs to train.

    Args:
        per_artifact: artifact name -> configs of the runs it needs (skipped runs left out).
        todo: distinct configs still to train (pending or forced).
        device: the device the hours are for when it has measured rates (``cpu``, ``cuda``).
        images_of: training images of a run (``reproduce.runner.train_images``).
    """
    name = device_name(device)
    entry = load_rates(rates_path).get(name, {}).get(profile)
    measured = entry.get("pairs_per_second") if entry else None
    pending = {c.hash() for c in todo}
    lines = [f"{'artifact':24s} {'runs':>6s} {'to train':>8s}  seeds per dataset          view pairs to train  hours"]
    for art, cfgs in per_artifact.items():
        mine = [c for c in {c.hash(): c for c in cfgs}.values() if c.hash() in pending]
        runs = [(c, images_of(c)) for c in mine]
        seeds = ", ".join(f"{ds} {n}" for ds, n in seeds_per_dataset(cfgs).items()) or "-"
        pairs = sum(run_pairs(c, n) for c, n in runs)
        lines.append(f"{art:24s} {len(set(c.hash() for c in cfgs)):6d} {len(mine):8d}  {seeds:26s} {pairs:19,d}  "
                     + (_hours(runs, measured) if runs else "-"))
    runs = [(c, images_of(c)) for c in todo]
    lines.append(f"{'total (distinct runs)':24s} {'':6s} {len(runs):8d}  {'':26s} "
                 f"{sum(run_pairs(c, n) for c, n in runs):19,d}  " + (_hours(runs, measured) if runs else "-"))
    if measured is None or projected_hours(runs, measured) is None:
        lines.append(
            "hours: a PROJECTION from counted FLOPs (torch.utils.flop_counter, forward + backward of each model's "
            "training step per view pair) at an assumed sustained "
            + ", ".join(f"{gpu} {t['fp32']:g} TFLOP/s (fp32/TF32) / {t['bf16']:g} (bf16)" for gpu, t in SUSTAINED_TFLOPS.items())
            + f" = {SUSTAINED_FRACTION:g} x the datasheet peak; training steps only (no evaluation); "
            f"no measured rate of profile {profile} on {name!r}: run `python benchmarks/throughput.py --profile "
            f"{profile} --record` on the GPU to replace it with a measurement")
    else:
        lines.append(f"hours: from the training rates measured on {name} ({entry.get('measured', '?')}), training "
                     "steps only (no evaluation)")
    return lines


def missing_data_line(cfgs: Sequence[RunConfig], images_of: Callable[[RunConfig], int]) -> str:
    """One line projecting the runs skipped here because their dataset is missing (planned as
    stand-ins of the real dataset's size), so that the whole paper's cost is visible anyway."""
    if not cfgs:
        return ""
    runs = [(c, images_of(c)) for c in cfgs]
    seeds = ", ".join(f"{ds} {n}" for ds, n in seeds_per_dataset(cfgs).items())
    return (f"{'+ missing data here':24s} {'':6s} {len(runs):8d}  {seeds:26s} "
            f"{sum(run_pairs(c, n) for c, n in runs):19,d}  {_hours(runs, None)} (runs skipped above for datasets "
            "not available here, projected at their real size)")
