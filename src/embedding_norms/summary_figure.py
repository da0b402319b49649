"""The one-page summary figure ``figures/summary.png`` (issue 22, item 2).

A forest plot of every empirical check that has an interval, grouped by claim, coloured by
verdict, primary checks filled and supporting checks open. The checks have different units (kNN
points, Spearman rho, AUROC, log-ratios), so each is put on one scale: its effect relative to the
value the claim is tested against, divided by its interval's half-width, and oriented so that the
claimed side is positive::

    x = s * (effect - t) / h,   bar = s * (ci - t) / h,   h = (ci_high - ci_low) / 2

with ``s = +1`` for ``"> t"`` and ``-1`` for ``"< t"`` (``t = 0`` for the usual ``"> 0"`` /
``"< 0"``). A check holds when its whole bar lies right of 0 (for a symmetric interval: x > 1);
the bar's nearer end is the check's margin (:func:`embedding_norms.stats.interval_margin`).
Closed-form checks and checks without an interval (one seed, not run) are left out and counted in
the caption. The runner draws it after every artifact, where it writes REPORT.md.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .claims import CLAIM_SUMMARY, CLAIMS, EXACT_CLAIMS
from .family import decide_claims

#: Colours of the verdicts (colour-blind safe).
VERDICT_COLORS = {"holds": "#009E73", "contradicted": "#D55E00", "inconclusive": "#0072B2",
                  "not testable": "#999999", "descriptive (1 seed)": "#CC79A7", "not run": "#000000"}
#: Points beyond ±CLIP half-widths are drawn at the edge as a triangle, their value written next to it.
CLIP = 8.0


@dataclass(frozen=True)
class ForestRow:
    """One plotted check: its claim, label, position and bar on the half-width scale, verdict and role."""

    claim: str
    label: str
    x: float
    low: float
    high: float
    verdict: str
    primary: bool


def oriented(c: Any) -> Optional[tuple[float, float, float]]:
    """``(x, low, high)`` of a check on the oriented half-width scale (module docstring), or None
    when it has no finite interval of positive width or its direction is not ``> t`` / ``< t``."""
    m = re.fullmatch(r"\s*([<>])\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*", c.direction or "")
    if m is None or c.effect is None or c.ci_low is None or c.ci_high is None or c.ci_high <= c.ci_low:
        return None
    s, t, h = (1.0 if m.group(1) == ">" else -1.0), float(m.group(2)), (c.ci_high - c.ci_low) / 2
    lo, hi = sorted((s * (c.ci_low - t) / h, s * (c.ci_high - t) / h))
    return s * (c.effect - t) / h, lo, hi


def _label(c: Any) -> str:
    text = c.test if len(c.test) <= 50 else c.test[:48] + "…"
    return text + (" [descr.]" if getattr(c, "descriptive", False) else "")


def forest_rows(results: Sequence[Any]) -> tuple[list[ForestRow], int]:
    """The plotted rows in claim order (:data:`CLAIMS`), primary first within a claim, and the number of
    empirical checks left out (no interval)."""
    dec = decide_claims(results)
    rows, left_out = [], 0
    for cid in CLAIMS:
        if cid in EXACT_CLAIMS:
            continue
        own = [c for r in results for c in r.checks if c.claim == cid]
        own.sort(key=lambda c: dec[cid].check is not c)
        for c in own:
            pos = oriented(c)
            if pos is None:
                left_out += 1
                continue
            rows.append(ForestRow(cid, _label(c), *pos, c.verdict, dec[cid].check is c))
    return rows, left_out


def draw_summary(results: Sequence[Any], stem: str | os.PathLike, profile: str = "") -> list[Path]:
    """Draw the forest plot of ``results`` (ArtifactResult-like objects) to ``<stem>.png`` / ``.pdf``.

    Returns:
        the files written (:func:`embedding_norms.plotting.save_figure`).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .plotting import save_figure, setup_style

    setup_style()
    rows, left_out = forest_rows(results)
    dec = decide_claims(results)
    claims = [cid for cid in CLAIMS if cid not in EXACT_CLAIMS]
    n = len(rows) + len(claims)
    fig, ax = plt.subplots(figsize=(8.3, min(11.0, 2.0 + 0.17 * max(n, 4))))
    y, ticks, labels, bold = 0, [], [], set()
    for cid in claims:
        if y:
            ax.axhline(y - 0.5, color="0.8", lw=0.6)
        own = [r for r in rows if r.claim == cid]
        short = CLAIM_SUMMARY[cid].short if cid in CLAIM_SUMMARY else cid
        short = short if len(short) <= 34 else short[:33] + "…"
        ticks.append(y)
        labels.append(f"{cid} — {dec[cid].verdict}: {short}" + ("" if own else " (no interval)"))
        bold.add(len(labels) - 1)
        y += 1
        for r in own:
            color = VERDICT_COLORS.get(r.verdict, "black")
            x, lo, hi = (max(-CLIP, min(CLIP, v)) for v in (r.x, r.low, r.high))
            ax.plot([lo, hi], [y, y], color=color, lw=1.4 if r.primary else 0.9)
            clipped = abs(r.x) > CLIP
            ax.plot([x], [y], marker=(">" if r.x > 0 else "<") if clipped else "o", ms=6 if r.primary else 4.5,
                    color=color, markerfacecolor=color if r.primary else "white", markeredgewidth=1.1)
            if clipped:
                ax.annotate(f"{r.x:.3g}", (x, y), xytext=(-6 if r.x > 0 else 6, 3), textcoords="offset points",
                            ha="right" if r.x > 0 else "left", fontsize=5.5, color=color)
            ticks.append(y)
            labels.append(r.label)
            y += 1
    ax.set_yticks(ticks, labels)
    for i, t in enumerate(ax.get_yticklabels()):
        t.set_fontsize(6)
        if i in bold:
            t.set_fontweight("bold")
    ax.set_ylim(y - 0.5, -0.7)
    for v, ls in ((0, "-"), (-1, ":"), (1, ":")):
        ax.axvline(v, color="black", lw=0.8 if v == 0 else 0.6, ls=ls)
    ax.set_xlim(-CLIP - 0.5, CLIP + 0.5)
    ax.set_xticks(range(-int(CLIP), int(CLIP) + 1, 2))
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("effect ÷ its 95 % interval half-width, claimed side positive (bar: the 95 % interval)", fontsize=8)
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLORS.items()
               if any(r.verdict == v for r in rows)]
    handles += [Line2D([], [], color="0.3", marker="o", ls="", label="primary"),
                Line2D([], [], color="0.3", marker="o", markerfacecolor="white", ls="", label="supporting")]
    ax.legend(handles=handles, fontsize=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
              frameon=False, handletextpad=0.2, columnspacing=0.9)
    fig.suptitle(f"Every empirical check{f' ({profile} profile)' if profile else ''}, grouped by claim: a check holds "
                 "when its bar lies wholly right of 0", fontsize=8.5)
    fig.text(0.01, 0.002, f"x = (effect − null) / half-width, sign so that the claim predicts x > 0; dotted: ±1 "
             f"(a symmetric interval excludes the null when |x| > 1); beyond ±{CLIP:g} drawn at the edge (value shown). "
             f"Claim rows (bold): verdict after Holm. {left_out} check(s) without an interval (one seed, not run) "
             "are not drawn.", fontsize=5.5, wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_figure(fig, stem)
