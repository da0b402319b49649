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

Correlations (Spearman, Pearson) are averaged and given intervals on Fisher's z scale
(:func:`correlation_interval`), so their intervals stay inside [-1, 1]. Every interval carries
the two-sided p-value of "no effect" that matches it (p < 0.05 exactly when the 95 % interval
excludes 0), used by the Holm correction over the claims' primary checks (:func:`holm`,
:mod:`embedding_norms.family`), and what it takes to decide: :func:`detectable_effect` (the
interval's half-width) and :func:`seeds_to_decide`.

A single seed gives no interval over seeds: its verdict is *descriptive (1 seed)* (never decided
by the sign of one difference, nor by a bootstrap over images alone). *Not testable* is given by
the artifacts when the runs compared did not learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Optional, Sequence

import numpy as np
from scipy import stats as sps

#: The fixed vocabulary of verdicts. ``not testable``: the runs compared did not learn (or the
#: design cannot show the mechanism); ``descriptive (1 seed)``: one training seed, no interval over
#: seeds (shown, never decided); both are counted apart from ``inconclusive``.
VERDICTS = ("holds", "contradicted", "inconclusive", "not testable", "descriptive (1 seed)", "not run")
#: The verdicts that decide a claim (an interval on one side of 0).
DECIDED = ("holds", "contradicted")
#: Family-wise error rate of the Holm correction over the primary checks of the empirical claims.
FAMILY_ALPHA = 0.05
#: |rho| = 1 (a perfect ordering, common with few items) is shrunk to this before Fisher's z, so
#: that one seed cannot move the mean of z to infinity (atanh(0.9999) = 4.95).
RHO_CLIP = 0.9999

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
        p_value: two-sided p-value of "no effect" (effect 0) on the test scale, consistent with
            the interval (< 1 - level exactly when the interval excludes 0); NaN without an
            interval over seeds.
        test_mean, test_sd: mean and sample SD (ddof 1) of the per-seed values on the test scale
            (the effect itself, or Fisher's z minus the null's z for correlations).
        fixed_var: variance on the test scale that does not shrink with more seeds (the
            per-image bootstrap variance of :func:`combined_interval`; 0 otherwise).
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95
    method: str = ""
    p_value: float = float("nan")
    test_mean: float = float("nan")
    test_sd: float = float("nan")
    fixed_var: float = 0.0

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
    sd = float(a.std(ddof=1))
    sem = sd / math.sqrt(n)
    if sem == 0:
        return Interval(mean, mean, mean, n, level, f"t-interval over {n} seeds (no spread)",
                        0.0 if mean != 0 else 1.0, mean, 0.0)
    lo, hi = sps.t.interval(level, df=n - 1, loc=mean, scale=sem)
    p = float(sps.ttest_1samp(a, 0.0).pvalue)
    return Interval(mean, float(lo), float(hi), n, level, f"t-interval over {n} seeds", p, mean, sd)


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
    if n == 1:  # shown, never decisive (verdict: descriptive (1 seed)); no p-value
        half = float(sps.norm.ppf((1 + level) / 2)) * math.sqrt(boot_var)
        return Interval(mean, mean - half, mean + half, 1, level, "one seed: bootstrap interval over images only "
                        "(describes image noise, not seed-to-seed variation; decides nothing)",
                        test_mean=mean, fixed_var=boot_var)
    sd = float(x.std(ddof=1))
    var = sd ** 2 / n + boot_var
    half = float(sps.t.ppf((1 + level) / 2, df=n - 1)) * math.sqrt(var)
    p = float(2 * sps.t.sf(abs(mean) / math.sqrt(var), df=n - 1)) if var > 0 else (0.0 if mean != 0 else 1.0)
    return Interval(mean, mean - half, mean + half, n, level,
                    f"t-interval over {n} seeds, seed spread + per-seed bootstrap variance", p, mean, sd, boot_var)


def correlation_interval(rhos: Sequence[float], null: float = 0.0, level: float = 0.95) -> Interval:
    """Mean correlation over seeds with its interval on Fisher's z scale, as an effect ``rho - null``.

    Each per-seed correlation ``r_i`` (Spearman or Pearson; ``|r_i| = 1`` shrunk to
    :data:`RHO_CLIP`) becomes ``z_i = atanh(r_i)``; the Student-t interval of the mean of the
    ``z_i`` (:func:`seed_interval`) is transformed back with ``tanh``, so it lies inside [-1, 1]
    (not symmetric around the mean); equal correlations in every seed give the point interval at
    that value. The reported effect is ``tanh(mean z) - null`` with bounds
    ``tanh(bound) - null`` (``null`` = 0: the correlation itself; e.g. 0.9 for "rho above 0.9").
    The p-value is that of the one-sample t-test of ``z_i - atanh(null)`` against 0 (two-sided),
    consistent with the interval.

    Args:
        rhos: one correlation per seed, in [-1, 1] (non-finite values are left out).
        null: the correlation that "no effect" stands for, in (-1, 1).
        level: coverage, in (0, 1).

    Raises:
        ValueError: a correlation outside [-1, 1], ``null`` outside (-1, 1), or ``level`` outside (0, 1).
    """
    _check_level(level)
    r = _finite(rhos)
    if ((r < -1 - 1e-12) | (r > 1 + 1e-12)).any():
        raise ValueError(f"correlations must lie in [-1, 1], got {r[(r < -1) | (r > 1)].tolist()}")
    if not -1 < null < 1:
        raise ValueError(f"the null correlation must lie in (-1, 1), got {null}")
    if len(r) >= 2 and np.ptp(r) == 0:  # no spread: the point interval at the observed value (no shrinking)
        d = float(r[0]) - null
        return Interval(d, d, d, len(r), level, f"t-interval over {len(r)} seeds: equal correlations (no spread)",
                        0.0 if d != 0 else 1.0, d, 0.0)
    z0 = math.atanh(null)
    iz = seed_interval(np.arctanh(np.clip(r, -RHO_CLIP, RHO_CLIP)) - z0, level)
    back = lambda v: math.tanh(v + z0) - null if math.isfinite(v) else float("nan")  # noqa: E731
    what = "Fisher z (atanh) of the per-seed correlations, " + (iz.method or "t-interval") + ", back-transformed"
    return Interval(back(iz.mean), back(iz.low), back(iz.high), iz.n, level, what, iz.p_value, iz.test_mean,
                    iz.test_sd)


def holm(p_values: Sequence[float], alpha: float = FAMILY_ALPHA) -> tuple[list[bool], list[float]]:
    """Holm's step-down correction of a family of two-sided p-values (family-wise error <= ``alpha``).

    Sort the ``m`` p-values ascending, ``p_(1) <= ... <= p_(m)``; reject ``H_(1) .. H_(k)`` for the
    largest ``k`` with ``p_(j) <= alpha / (m - j + 1)`` for every ``j <= k`` (stop at the first
    failure). Adjusted p-values: ``max_{j<=i} min(1, (m - j + 1) p_(j))``. A NaN p-value (a
    hypothesis that could not be tested) counts as 1: it stays in the family and is never rejected.

    Returns:
        (rejected, adjusted p-values), both in the input order.

    Raises:
        ValueError: ``alpha`` outside (0, 1) or a p-value outside [0, 1].
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p = np.array([1.0 if v is None or not math.isfinite(v) else float(v) for v in p_values])
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    rejected, adjusted = [False] * m, [1.0] * m
    running, still = 0.0, True
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        adjusted[i] = running
        still = still and p[i] <= alpha / (m - j)
        rejected[i] = still
    return rejected, adjusted


def detectable_effect(interval: Optional[Interval]) -> float:
    """The smallest effect the design could have told from 0: the interval's half-width
    ``(high - low) / 2``, in the effect's unit (NaN without an interval)."""
    if interval is None or not interval.defined:
        return float("nan")
    return (interval.high - interval.low) / 2


def seeds_to_decide(interval: Optional[Interval], max_seeds: int = 10_000) -> Optional[int]:
    """Seeds that would decide the observed mean at the observed spread: the smallest ``n >= 2`` with
    ``t_{(1+level)/2, n-1} * sqrt(sd² / n + fixed_var) < |mean|`` on the test scale.

    None when no interval or no spread is known (fewer than 2 seeds), the mean is 0, or no
    number of seeds up to ``max_seeds`` decides (e.g. the per-image bootstrap error alone,
    ``fixed_var``, is larger than the mean).
    """
    if interval is None or interval.n < 2 or not (math.isfinite(interval.test_mean) and math.isfinite(interval.test_sd)):
        return None
    m, s2, f = abs(interval.test_mean), interval.test_sd ** 2, interval.fixed_var
    q = (1 + interval.level) / 2
    if m == 0 or sps.norm.ppf(q) * math.sqrt(f) >= m:
        return None
    n = 2
    while n <= max_seeds:  # half-width falls with n; doubling then bisection
        if sps.t.ppf(q, n - 1) * math.sqrt(s2 / n + f) < m:
            break
        n *= 2
    else:
        return None
    lo = max(2, n // 2)
    while lo < n:
        mid = (lo + n) // 2
        if sps.t.ppf(q, mid - 1) * math.sqrt(s2 / mid + f) < m:
            n = mid
        else:
            lo = mid + 1
    return n


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
    ``inconclusive``: the interval contains 0; ``descriptive (1 seed)``: one seed, so no interval
    over seeds (a bootstrap over images alone never decides); ``not run``: no effect at all
    (``interval`` None or without a finite mean).

    Raises:
        ValueError: an unknown ``direction``.
    """
    if direction not in ("> 0", "< 0"):
        raise ValueError(f"direction must be '> 0' or '< 0', got {direction!r}")
    if interval is None or not math.isfinite(interval.mean):
        return "not run"
    if interval.n < 2:
        return "descriptive (1 seed)"
    if not interval.defined:
        return "inconclusive"
    sign = 1.0 if direction == "> 0" else -1.0
    lo, hi = sorted((sign * interval.low, sign * interval.high))
    if lo > 0:
        return "holds"
    if hi < 0:
        return "contradicted"
    return "inconclusive"


def interval_margin(low: Optional[float], high: Optional[float], direction: str) -> Optional[float]:
    """How far an interval lies from its null, in units of its half-width (issue 21, item 6).

    The distance of the interval's bound nearer the null from the null, divided by the half-width
    ``(high - low) / 2``, signed positive on the claimed side: > 0 when the whole interval lies on
    the claimed side (the check holds), < 0 when the null is inside the interval or beyond it. A
    margin of 0.1 is a fragile verdict; for a symmetric interval it equals ``|mean - null| / half - 1``
    on the claimed side (a t-like distance minus one).

    Args:
        low, high: the interval (None without one).
        direction: the claimed side: ``"> 0"``, ``"< 0"``, or a threshold ``"> t"`` / ``"< t"``
            (e.g. ``"< -5"``); any other text (an exact check's tolerance) gives None.

    Returns:
        the signed margin, or None without a finite interval of positive width or a parsable direction.
    """
    import re

    m = re.fullmatch(r"\s*([<>])\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*", direction or "")
    if m is None or low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return None
    null, half = float(m.group(2)), (high - low) / 2
    return (low - null) / half if m.group(1) == ">" else (null - high) / half
