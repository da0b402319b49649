"""Effects over seeds, their 95 % intervals and the verdict of a claim check.

Every real-data claim check of this repository is decided the same way (issue 15):

1. one *effect* per seed (e.g. ``kNN(c=3) - kNN(c=1)`` for the runs of seed ``s``, a Spearman
   rho, or ``AUROC - 0.5``), signed so that the paper's claim predicts a value on a stated side
   of "no effect" (0);
2. the mean effect over seeds with a two-sided Student-t interval (:func:`seed_interval`),
   or, for a per-image statistic that also has a bootstrap error within each seed, an interval
   that adds the bootstrap variance to the seed spread (:func:`combined_interval`);
3. the verdict from :func:`verdict`: *holds* when the whole interval lies on the claimed side,
   *contradicted* when it lies wholly on the other side, *inconclusive* when it contains 0,
   *not run* when there is no effect to judge.

A single seed gives no interval over seeds: its verdict is *inconclusive* (never decided by the
sign of one difference) unless a per-image bootstrap interval exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Optional, Sequence

import numpy as np
from scipy import stats as sps

#: The fixed vocabulary of verdicts.
VERDICTS = ("holds", "contradicted", "inconclusive", "not testable", "not run")

#: The learning gate (issue 19): a check whose claim presupposes a trained network is decided only
#: when every run it is gated on gained at least this many kNN points over its (BatchNorm-
#: recalibrated) epoch 0; otherwise its verdict is "not testable".
LEARNING_GATE_POINTS = 5.0
Direction = Literal["> 0", "< 0"]


@dataclass(frozen=True)
class Interval:
    """Mean effect over seeds with its two-sided interval.

    Attributes:
        mean: mean of the per-seed effects (NaN when there are none).
        low, high: interval bounds (NaN when no interval exists, e.g. one seed and no bootstrap).
        n: number of seeds (finite per-seed effects).
        level: coverage of the interval (0.95).
        method: how the interval was made, in words (for REPORT.md).
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95
    method: str = ""

    @property
    def defined(self) -> bool:
        """True when both bounds are finite."""
        return math.isfinite(self.low) and math.isfinite(self.high)


def _finite(values: Iterable[float]) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in values], dtype=float).ravel()
    return a[np.isfinite(a)]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")


def seed_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student-t interval of the mean of per-seed effects.

    ``mean ± t_{(1+level)/2, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation
    (ddof = 1) of the ``n`` finite values; non-finite values (a run that did not finish) are left
    out and reduce ``n``. With ``n < 2`` the bounds are NaN (no spread to estimate); with zero
    spread the interval is the point ``[mean, mean]``.

    Args:
        values: one effect per seed (any units; the interval is in the same units).
        level: coverage, in (0, 1).

    Raises:
        ValueError: ``level`` outside (0, 1).
    """
    _check_level(level)
    a = _finite(values)
    n = len(a)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level, "no finished seed")
    mean = float(a.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), 1, level, "one seed: no interval over seeds")
    sem = float(a.std(ddof=1) / math.sqrt(n))
    if sem == 0:
        return Interval(mean, mean, mean, n, level, f"t-interval over {n} seeds (no spread)")
    lo, hi = sps.t.interval(level, df=n - 1, loc=mean, scale=sem)
    return Interval(mean, float(lo), float(hi), n, level, f"t-interval over {n} seeds")


def correlation_interval(rhos: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of per-seed correlations with a t-interval on the Fisher-z scale (issue 20).

    Each seed's correlation ``rho_i`` (e.g. a Spearman rho over images) becomes
    ``z_i = atanh(rho_i)``; the interval is :func:`seed_interval` of the ``z_i``
    (``mean(z) ± t_{(1+level)/2, n-1} · s_z / sqrt(n)``) and the mean and both bounds are mapped back
    with ``tanh``, so the interval stays inside [-1, 1] and is not symmetric about the mean. The
    reported mean is ``tanh(mean(z))``, not the plain mean of the rhos. A rho of exactly ±1 is
    clipped to ±(1 - 1e-12) first (atanh is infinite there); non-finite values are left out and
    reduce ``n``; with ``n < 2`` the bounds are NaN, as in :func:`seed_interval`.

    Args:
        rhos: ``(n,)`` one correlation per seed, each in [-1, 1].
        level: coverage, in (0, 1).

    Raises:
        ValueError: ``level`` outside (0, 1), or a finite correlation outside [-1, 1].
    """
    _check_level(level)
    r = _finite(rhos)
    if (np.abs(r) > 1).any():
        raise ValueError(f"correlations must lie in [-1, 1], got {r[np.abs(r) > 1].tolist()}")
    iv = seed_interval(np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12)).tolist(), level)
    method = iv.method.replace("t-interval", "t-interval of atanh(rho) (Fisher z)") if iv.n >= 2 else iv.method
    return Interval(math.tanh(iv.mean), math.tanh(iv.low), math.tanh(iv.high), iv.n, level, method)  # tanh(NaN) = NaN


def combined_interval(estimates: Sequence[float], bootstrap_se: Sequence[float], level: float = 0.95) -> Interval:
    """Interval of the mean of per-seed estimates that also carry a within-seed bootstrap error.

    For a per-image statistic (e.g. an AUROC over images) each seed ``i`` gives an estimate
    ``x_i`` and a bootstrap standard error ``b_i`` over images. The variance of the seed mean
    is taken as ``s² / n + mean(b_i²)``: the seed-to-seed spread (model randomness) plus the
    image-sampling variance, which is *not* divided by ``n`` because every seed evaluates the
    same images (their sampling errors are correlated). The interval is
    ``mean ± t_{(1+level)/2, n-1} · sqrt(var)``; with one seed it is the normal interval
    ``x ± z_{(1+level)/2} · b`` (bootstrap only).

    Args:
        estimates: ``(n,)`` per-seed estimates.
        bootstrap_se: ``(n,)`` per-seed bootstrap standard errors (same units).
        level: coverage, in (0, 1).

    Raises:
        ValueError: ``level`` outside (0, 1), lengths differ, or a negative standard error.
    """
    _check_level(level)
    x = np.asarray(estimates, dtype=float).ravel()
    b = np.asarray(bootstrap_se, dtype=float).ravel()
    if x.shape != b.shape:
        raise ValueError(f"estimates and bootstrap_se differ in length ({x.size} vs {b.size})")
    if (b[np.isfinite(b)] < 0).any():
        raise ValueError("bootstrap standard errors must be >= 0")
    ok = np.isfinite(x) & np.isfinite(b)
    x, b = x[ok], b[ok]
    n = len(x)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level, "no finished seed")
    mean = float(x.mean())
    boot_var = float(np.mean(b ** 2))
    if n == 1:
        half = float(sps.norm.ppf((1 + level) / 2)) * math.sqrt(boot_var)
        return Interval(mean, mean - half, mean + half, 1, level, "one seed: bootstrap interval over images only")
    var = float(x.var(ddof=1)) / n + boot_var
    half = float(sps.t.ppf((1 + level) / 2, df=n - 1)) * math.sqrt(var)
    return Interval(mean, mean - half, mean + half, n, level,
                    f"t-interval over {n} seeds, seed spread + per-seed bootstrap variance")


def learning_gate(gains: Mapping[str, float], threshold: float = LEARNING_GATE_POINTS) -> Optional[str]:
    """Why a check cannot be decided because its networks did not learn, or None when it can.

    Args:
        gains: kNN gain in points (last evaluation epoch minus epoch 0) of every run the check is
            gated on, keyed by a run label; a NaN/None gain (no kNN) counts as not learned.
        threshold: the least gain in points every run must reach (:data:`LEARNING_GATE_POINTS`).

    Returns:
        None when every gain is >= ``threshold``; else the reason (the runs below it and their
        gains), to be stored as the check's detail with the verdict "not testable". An empty
        ``gains`` returns None (nothing to gate: the check has no runs and will be "not run").
    """
    low = {k: v for k, v in gains.items() if v is None or not math.isfinite(v) or v < threshold}
    if not low:
        return None
    shown = ", ".join(f"{k} {v:+.1f}" if v is not None and math.isfinite(v) else f"{k} n/a" for k, v in low.items())
    return (f"not testable: {len(low)} of {len(gains)} gated run(s) gained less than {threshold:g} kNN points "
            f"over epoch 0 ({shown})")


def verdict(interval: Optional[Interval], direction: Direction = "> 0") -> str:
    """Verdict of a claim check from its interval (the fixed vocabulary :data:`VERDICTS`).

    ``holds``: the whole interval lies on the claimed side of 0 (``> 0``: ``low > 0``;
    ``< 0``: ``high < 0``); ``contradicted``: the whole interval lies on the other side;
    ``inconclusive``: the interval contains 0, or no interval exists (one seed);
    ``not run``: no effect at all (``interval`` None or without a finite mean).

    Raises:
        ValueError: an unknown ``direction``.
    """
    if direction not in ("> 0", "< 0"):
        raise ValueError(f"direction must be '> 0' or '< 0', got {direction!r}")
    if interval is None or not math.isfinite(interval.mean):
        return "not run"
    if not interval.defined:
        return "inconclusive"
    sign = 1.0 if direction == "> 0" else -1.0
    lo, hi = sorted((sign * interval.low, sign * interval.high))
    if lo > 0:
        return "holds"
    if hi < 0:
        return "contradicted"
    return "inconclusive"
