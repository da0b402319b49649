"""How one claim check reads in REPORT.md: its value with interval, its null, margin and tags.

A check (:class:`~embedding_norms.report.ClaimCheck`) stores its effect relative to the null
(``effect = statistic - null``, signed as the claim predicts); REPORT.md shows the statistic
itself (an exponent, a Spearman rho, an AUROC, kNN points) with the null or threshold next to it
(issue 22, item 3), and the margin of its interval (:func:`embedding_norms.stats.interval_margin`).
Functions here take any object with the check's attributes, so the summary modules need not
import :mod:`embedding_norms.report`.
"""

from __future__ import annotations

import re
from typing import Any, Optional

#: The columns a check may carry (explicit fields; blank when the check does not set them).
TAG_FIELDS = ("method", "vector", "view", "variant")


def fmt(v: Any) -> str:
    """A number in 4 significant digits (``n/a`` for None), anything else as text."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (``|`` escaped, no newlines)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def effect_text(c: Any) -> str:
    """``mean [low, high]`` of a check's effect (relative to its null), or the exact value and its tolerance."""
    if c.effect is None:
        return "n/a"
    if c.n_seeds is None:
        return f"{fmt(c.effect)} ({c.direction})"
    if c.ci_low is None or c.ci_high is None:
        return f"{fmt(c.effect)} (no interval)"
    return f"{fmt(c.effect)} [{fmt(c.ci_low)}, {fmt(c.ci_high)}]"


def null_of(c: Any) -> float:
    """The statistic's value under "no effect" (0 unless the check sets ``null``)."""
    return float(getattr(c, "null", 0.0) or 0.0)


def value_text(c: Any) -> str:
    """The statistic itself, ``value [low, high]`` (effect + null), e.g. ``0.62 [0.55, 0.69]`` for a
    rho; an exact check's value as is; ``n/a`` when not computed; ``(no interval)`` for one seed."""
    if c.effect is None:
        return "n/a"
    if c.n_seeds is None:
        return fmt(c.effect)
    n = null_of(c)
    if c.ci_low is None or c.ci_high is None:
        return f"{fmt(c.effect + n)} (no interval)"
    return f"{fmt(c.effect + n)} [{fmt(c.ci_low + n)}, {fmt(c.ci_high + n)}]"


def claimed_text(c: Any) -> str:
    """What the claim predicts for the statistic itself: ``> 0``, ``> 0.5`` (an AUROC), ``< -5``; an
    exact check's tolerance as written."""
    m = re.fullmatch(r"\s*([<>])\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*", c.direction or "")
    if m is None or c.n_seeds is None:
        return str(c.direction)
    return f"{m.group(1)} {float(m.group(2)) + null_of(c):g}"


def margin_text(c: Any) -> str:
    """The check's margin as ``+1.3`` / ``-0.40`` ('' when it has none: exact, one seed, not run)."""
    m: Optional[float] = getattr(c, "margin", None)
    return "" if m is None else f"{m:+.2f}"


def tags(c: Any) -> list[str]:
    """The check's method, vector, view and variant ('' where it does not carry one)."""
    return [str(getattr(c, f, "") or "") for f in TAG_FIELDS]
