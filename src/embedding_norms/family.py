"""Claim verdicts from the primary checks, with Holm's correction over the empirical claims.

The statistical plan (README, "Verdicts with intervals"):

- every claim of :data:`embedding_norms.claims.CLAIMS` has one *primary* check, declared up
  front in :data:`embedding_norms.claims.PRIMARY`; the claim's verdict is its primary check's,
  and every other check of the claim is *supporting* (shown, not counted);
- the primary checks of the empirical claims (every claim but the closed-form ones,
  :data:`embedding_norms.claims.EXACT_CLAIMS`) form one family of fixed size ``m`` (the number
  of empirical claims, known before any data), decided by :func:`embedding_norms.stats.holm` at
  family-wise error :data:`embedding_norms.stats.FAMILY_ALPHA` on their two-sided p-values; a
  rejected hypothesis is decided by the side of 0 its effect lies on (holds / contradicted), the
  others are inconclusive;
- a primary check that is *not run*, *not testable* (its runs did not learn) or *descriptive
  (1 seed)* stays in the family as a hypothesis that is not decided (p = 1): it keeps ``m`` fixed,
  so it can only make the others harder to decide, never easier; the claim's verdict is then that
  word;
- closed-form checks (Prop. 3.1, Cor. 3.3) are exact and stay outside the family.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .claims import CLAIMS, EXACT_CLAIMS, PRIMARY, is_primary
from .report_text import cell as _cell
from .report_text import claimed_text, margin_text, tags, value_text
from .stats import DECIDED, FAMILY_ALPHA, VERDICTS, holm

#: Verdicts of a primary check that leave its claim undecided whatever the correction.
UNDECIDED = ("not run", "not testable", "descriptive (1 seed)")


@dataclass(frozen=True)
class ClaimDecision:
    """The verdict of one claim.

    Attributes:
        claim: claim id.
        verdict: the claim's verdict (one of :data:`embedding_norms.stats.VERDICTS`), after Holm's
            correction for empirical claims.
        artifact: the artifact of the primary check ('' when it was not built).
        check: the primary check (a :class:`~embedding_norms.report.ClaimCheck`), or None.
        in_family: True for the empirical claims (Holm family), False for closed-form ones.
        p_value, p_holm: the primary check's two-sided p-value and its Holm-adjusted value
            (None outside the family or without a p-value).
        note: why the verdict differs from the primary check's own, or '' .
    """

    claim: str
    verdict: str
    artifact: str
    check: Any
    in_family: bool
    p_value: Optional[float] = None
    p_holm: Optional[float] = None
    note: str = ""


def find_primary(results: Sequence[Any], claim: str) -> tuple[str, Any, str]:
    """(artifact, check, note) of ``claim``'s primary check among ``results`` (ArtifactResult-like
    objects with ``name`` and ``checks``); ``("", None, reason)`` when none is built. More than one
    match (a declaration that is not specific enough) takes the first and says so in the note."""
    found = [(r.name, c) for r in results for c in r.checks if c.claim == claim and is_primary(r.name, c)]
    if not found:
        spec = PRIMARY.get(claim)
        return "", None, f"primary check not built ({spec.artifact if spec else 'none declared'})"
    note = f"{len(found)} checks match the primary declaration; the first decides" if len(found) > 1 else ""
    return found[0][0], found[0][1], note


def decide_claims(results: Sequence[Any], alpha: float = FAMILY_ALPHA) -> dict[str, ClaimDecision]:
    """Every claim's verdict from its primary check (module docstring), in :data:`CLAIMS` order.

    Raises:
        ValueError: ``alpha`` outside (0, 1).
    """
    prim = {cid: find_primary(results, cid) for cid in CLAIMS}
    family = [cid for cid in CLAIMS if cid not in EXACT_CLAIMS]
    pvals = []
    for cid in family:
        _, c, _ = prim[cid]
        ok = c is not None and c.verdict not in UNDECIDED and c.p_value is not None
        pvals.append(float(c.p_value) if ok else float("nan"))
    rejected, adjusted = holm(pvals, alpha)
    out: dict[str, ClaimDecision] = {}
    for cid in CLAIMS:
        art, c, note = prim[cid]
        if cid in EXACT_CLAIMS:
            out[cid] = ClaimDecision(cid, c.verdict if c is not None else "not run", art, c, False, note=note)
            continue
        i = family.index(cid)
        p = pvals[i] if math.isfinite(pvals[i]) else None
        if c is None or c.verdict in UNDECIDED:
            v = c.verdict if c is not None else "not run"
        elif p is None:
            v, note = "inconclusive", note or "no p-value (result file written by an older version): not decided"
        elif rejected[i]:
            v = "holds" if (c.effect > 0) == (c.direction == "> 0") else "contradicted"
        else:
            v = "inconclusive"
            if c.verdict in DECIDED:
                note = note or f"{c.verdict} at 95 % alone, not after Holm's correction"
        out[cid] = ClaimDecision(cid, v, art, c, True, p, adjusted[i] if p is not None else None, note)
    return out


def unit_of(statistic: str) -> str:
    """The unit named in brackets at the end of a statistic (``"kNN difference [points]"`` -> ``points``), or ''."""
    m = re.search(r"\[([^\]]+)\]\s*$", statistic or "")
    return m.group(1) if m else ""


def _g(v: float) -> str:
    """Two significant digits (``5.0``, ``0.34``), whole numbers from 10 on."""
    return f"{v:#.2g}" if abs(v) < 10 else f"{v:.0f}"


def power_text(c: Any) -> str:
    """For an inconclusive check: what its design could detect and the seeds that would decide it,
    e.g. ``would detect ±1 points; 9 seeds would decide +0.34`` ('' for any other verdict)."""
    if c.verdict != "inconclusive" or c.effect is None:
        return ""
    unit = unit_of(c.statistic)
    parts = [f"would detect ±{_g(c.detectable)}{' ' + unit if unit else ''}"] if c.detectable is not None else []
    if c.seeds_needed is not None:
        parts.append(f"{c.seeds_needed} seeds would decide {'+' if c.effect >= 0 else '-'}{_g(abs(c.effect))}")
    elif c.effect == 0:
        parts.append("the mean effect is 0: no number of seeds decides it")
    elif c.detectable is not None and c.n_seeds and c.n_seeds >= 2:
        parts.append(f"no number of seeds decides {'+' if c.effect >= 0 else '-'}{_g(abs(c.effect))} at this spread")
    return "; ".join(parts)


def verdict_text(c: Any) -> str:
    """A check's verdict with its power statement when inconclusive (for REPORT.md)."""
    extra = power_text(c)
    return f"{c.verdict}; {extra}" if extra else c.verdict


def count_verdicts(verdicts: Sequence[str]) -> str:
    """``"6 holds, 1 contradicted, 4 inconclusive, 1 not testable"``: each verdict word counted
    apart, in :data:`VERDICTS` order (words with no count left out)."""
    return ", ".join(f"{sum(v == k for v in verdicts)} {k}" for k in VERDICTS if k in verdicts) or "none"


def summary_lines(results: Sequence[Any], alpha: float = FAMILY_ALPHA) -> list[str]:
    """REPORT.md's full per-check table: the counts, one row per claim (its verdict after Holm's
    correction, with the primary check's p-values), then one row per check (primary or supporting:
    what it compares, verdict, statistic with interval, claimed value, margin, seeds, p, regime),
    then the legend.

    Args:
        results: ArtifactResult-like objects (``name``, ``checks``).
    """
    dec = decide_claims(results, alpha)
    checks = [c for r in results for c in r.checks]
    fam = [d for d in dec.values() if d.in_family]
    lines = [f"{len(checks)} checks in all; {sum(d.check is not None for d in dec.values())} of them primary "
             f"(one per claim). Claims, after Holm's correction over the {len(fam)} empirical claims: "
             f"**{count_verdicts([d.verdict for d in fam])}**; closed-form claims: "
             f"{count_verdicts([d.verdict for d in dec.values() if not d.in_family])}. Checks (each at 95 %, "
             f"uncorrected): {count_verdicts([c.verdict for c in checks])}.", "",
             "| claim / check | method | vector | view | variant | verdict | value [95 %] | claimed | margin | seeds "
             "| p (Holm-adjusted) | regime |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cid, text in CLAIMS.items():
        d = dec[cid]
        own = [(r.name, c) for r in results for c in r.checks if c.claim == cid]
        arts = sorted({name for name, _ in own})
        p = (f"{d.p_value:.2g} ({d.p_holm:.2g})" if d.p_value is not None else "") if d.in_family else "exact"
        why = f"; {d.note}" if d.note else ""
        lines.append(f"| **{cid}**: {_cell(text)} ({', '.join(f'[{a}](#{a})' for a in arts) or 'no artifact built'}) "
                     f"| | | | | **{d.verdict}**{_cell(why)} | | | | | {p} | |")
        for name, c in own:
            role = "**primary**" if d.check is c else "supporting"
            if c.descriptive:
                role += ", descriptive"
            lines.append(f"| &nbsp;&nbsp;[{role}] {_cell(c.test)} ({_cell(c.statistic)}) | "
                         + " | ".join(_cell(t) for t in tags(c)) + f" | {_cell(verdict_text(c))} | "
                         f"{_cell(value_text(c))} | {_cell(claimed_text(c))} | {margin_text(c)} | "
                         f"{c.n_seeds if c.n_seeds is not None else 'exact'} | "
                         f"{'' if c.p_value is None else f'{c.p_value:.2g}'} | {_cell(c.regime)} |")
    lines += ["", f"**How to read the verdicts.** Each claim is decided by its *primary* check alone, declared "
              f"before the data in `src/embedding_norms/claims.py` (`PRIMARY`); the other checks are *supporting*: "
              f"shown, not counted. The primary checks of the {len(fam)} empirical claims form one family, decided "
              f"with **Holm's step-down correction at a family-wise error of {alpha:g}** on their two-sided p-values "
              f"(the claim rows show the verdict *after* the correction, and p with its Holm-adjusted value); a primary "
              f"check that is not run, not testable or descriptive stays in the family as undecided (p = 1). The "
              f"closed-form claims (Prop. 3.1, Cor. 3.3) are exact and outside the family. Each check on its own is "
              "decided by its 95 % interval, never by the sign of one difference: the effect is computed per seed, and "
              "the check *holds* when the whole interval (Student-t over seeds; for per-image statistics the seed "
              "spread plus the bootstrap variance; for correlations on Fisher's z scale, back-transformed, so inside "
              "[-1, 1]) lies on the side of 0 that the claim predicts, is *contradicted* when it lies wholly on the "
              "other side, and is *inconclusive* when it contains 0; an inconclusive check says the effect its design "
              "could detect (the interval's half-width) and how many seeds would decide the observed mean at the "
              "observed spread. A check is *not testable* when the runs it compares did not learn, *descriptive (1 "
              "seed)* when one training seed gives no interval over seeds (a bootstrap over images never decides "
              "alone), and *not run* when the data or the runs were not available; these three are counted apart "
              "from *inconclusive*. Exact checks (closed forms) compare an error with a tolerance. A "
              "re-run on other hardware or thread counts should reproduce the verdicts and land within the "
              "intervals, not reproduce the numbers bit for bit.", ""]
    return lines
