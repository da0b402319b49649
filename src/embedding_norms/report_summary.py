"""The opening of REPORT.md: the answer first (issue 22, item 1).

Right after a compact header, REPORT.md shows

1. one table with one row per empirical claim: the claim in a line, the paper's evidence, the
   verdict here (its primary check's, after Holm's correction, :mod:`embedding_norms.family`), the
   primary check's statistic with its 95 % interval, and a one-line caveat, linked to the artifact;
2. a short block of the closed-form checks of the theory (:data:`embedding_norms.claims.EXACT_CLAIMS`);
3. "What `<profile>` can and cannot show": each method's kNN accuracy at the end against the
   untrained network (epoch 0), the claims this scale cannot test and why, and the datasets of the
   paper that were not run, with the reason.

The full per-check table and the artifact sections follow below it (:mod:`embedding_norms.report`).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from .claims import CLAIM_SUMMARY, CLAIMS, EXACT_CLAIMS
from .family import ClaimDecision, count_verdicts, decide_claims
from .report_text import cell, claimed_text, value_text

PAPER_URL = "https://arxiv.org/abs/2502.09252"
CODE_URL = "https://github.com/Andrew-Draganov/SSLEmbeddingNorms"
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet100": "ImageNet-100"}
METHOD_NAMES = {"simclr": "SimCLR", "simsiam": "SimSiam", "byol": "BYOL"}
#: The artifact whose table holds every base run's kNN accuracy per epoch (method, seed, epoch, knn_acc).
KNN_SOURCE = "fig_norm_growth"


def short_gate(reason: str) -> str:
    """A learning-gate reason in one short clause: the prefix ``not testable:`` and the list of runs
    in parentheses dropped (``2 of 4 gated run(s) gained less than 5 kNN points over epoch 0``)."""
    text = re.sub(r"^\s*not testable:\s*", "", reason or "")
    return re.split(r"\s\(|;", text, maxsplit=1)[0].strip()


def caveat(d: ClaimDecision) -> str:
    """One line that changes how the claim's verdict reads: why it is undecided (Holm, the learning
    gate, one seed, not built) and the claim's standing caveat (:data:`embedding_norms.claims.CLAIM_SUMMARY`)."""
    c, parts = d.check, []
    if d.note:
        parts.append(d.note)
    if c is not None and c.verdict == "not testable":
        gate = getattr(c, "gate", "") or (c.detail or "").split(";")[0]
        parts.append("not learned: " + short_gate(gate) if "gained less" in gate else short_gate(gate))
    elif c is not None and c.verdict == "descriptive (1 seed)":
        parts.append("one training seed: no interval over seeds")
    standing = CLAIM_SUMMARY[d.claim].caveat if d.claim in CLAIM_SUMMARY else ""
    if standing:
        parts.append(standing)
    return "; ".join(p for p in parts if p)


def _claim_row(d: ClaimDecision) -> str:
    s = CLAIM_SUMMARY.get(d.claim)
    text = s.short if s else CLAIMS[d.claim]
    link = f"[{cell(text)}](#{d.artifact})" if d.artifact else cell(text)
    c = d.check
    eff = "" if c is None else f"{value_text(c)}; claimed {claimed_text(c)}"
    return (f"| {link} | {cell(s.evidence if s else '')} | **{d.verdict}** | {cell(eff)} | {cell(caveat(d))} |")


def knn_progress(results: Sequence[Any], base: Path) -> list[dict[str, Any]]:
    """Each method's kNN accuracy (percent, mean over seeds) at epoch 0 (untrained, BatchNorm-
    recalibrated) and at its last evaluated epoch, read from the base runs' table of
    :data:`KNN_SOURCE` (a CSV with ``method``, ``seed``, ``epoch``, ``knn_acc``); [] when absent.

    Returns:
        rows ``{method, start, end, end_epoch, seeds}`` in the table's method order.
    """
    r = next((r for r in results if r.name == KNN_SOURCE), None)
    if r is None:
        return []
    for tab in r.tables:
        path = base / tab
        if not tab.endswith(".csv") or not path.is_file():
            continue
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"method", "seed", "epoch", "knn_acc"} <= set(rows[0]):
            continue
        acc: dict[str, dict[tuple[str, int], float]] = {}
        for row in rows:  # one value per (method, seed, epoch): the vectors share the kNN of the run
            if row["knn_acc"] not in ("", "nan"):
                acc.setdefault(row["method"], {}).setdefault((row["seed"], int(float(row["epoch"]))), float(row["knn_acc"]))
        out = []
        for m, vals in acc.items():
            last = max(e for _, e in vals)
            start = [v for (_, e), v in vals.items() if e == 0]
            end = [v for (_, e), v in vals.items() if e == last]
            if start and end and last > 0:
                out.append({"method": m, "start": sum(start) / len(start), "end": sum(end) / len(end),
                            "end_epoch": last, "seeds": len(end)})
        return out
    return []


def _paper_datasets() -> dict[str, list[str]]:
    """Dataset -> the artifacts that use it in the ``paper`` profile (``configs/profiles/paper.yaml``)."""
    from .facts import SPECS
    from .profiles import load_profile

    found: dict[str, list[str]] = {}
    for art, params in (load_profile("paper").get("artifacts") or {}).items():
        for v in (params or {}).values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, str) and x in SPECS and art not in found.setdefault(x, []):
                    found[x].append(art)
    return found


def datasets_not_run(results: Sequence[Any], profile: str, data_dir: Optional[str] = None) -> list[dict[str, Any]]:
    """The datasets of the paper's build that no run of this build used, with the reason.

    Returns:
        rows ``{dataset, artifacts, reason}``: reason ``images not in the data folder (...)`` when
        :func:`embedding_norms.data.sources.dataset_available` says so, else that the profile does
        not include it.
    """
    from .data.sources import dataset_available, looked_for

    used = {str(run.get("dataset", "")).split(" ")[0] for r in results for run in r.runs}
    out = []
    for ds, arts in _paper_datasets().items():
        if ds in used:
            continue
        ok, _ = dataset_available(ds, data_dir, download=False)
        reason = (f"the `{profile}` profile does not include it (only `paper` does)" if ok else
                  f"its images are not in the offline data folder (looked for {', '.join(looked_for(ds))})")
        out.append({"dataset": ds, "artifacts": arts, "reason": reason})
    return out


def _limits_lines(results: Sequence[Any], dec: dict[str, ClaimDecision], base: Path, profile: str,
                  data_dir: Optional[str]) -> list[str]:
    lines = [f"## What `{profile}` can and cannot show", ""]
    knn = knn_progress(results, base)
    if knn:
        lines.append("- **Did the networks learn?** kNN accuracy, untrained (epoch 0) → end, mean over seeds: " + "; ".join(
            f"{METHOD_NAMES.get(k['method'], k['method'])} {k['start']:.1f} → {k['end']:.1f} % "
            f"({k['end'] - k['start']:+.1f} points, epoch {k['end_epoch']}, {k['seeds']} seed{'s' if k['seeds'] > 1 else ''})" for k in knn)
            + f" ([{KNN_SOURCE}](#{KNN_SOURCE})). A claim about trained networks is tested only where its runs "
              "gained ≥ 5 kNN points (the learning gate).")
    groups: dict[str, list[str]] = {}
    for d in dec.values():
        if d.verdict in ("not testable", "descriptive (1 seed)", "not run"):
            why = {"not testable": "the runs compared did not learn (learning gate)",
                   "descriptive (1 seed)": "one training seed, no interval over seeds"}.get(d.verdict, "not built")
            groups.setdefault(f"{d.verdict} ({why})", []).append(d.claim)
    if groups:
        lines.append("- **Not decided at this scale:** " + "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items())
                     + ".")
    missing = datasets_not_run(results, profile, data_dir) if profile != "paper" else []
    if missing:
        lines += ["", "| dataset | artifacts (paper profile) | verdict | reason |", "|---|---|---|---|"]
        lines += [f"| {DATASET_LABELS.get(m['dataset'], m['dataset'])} | {', '.join(m['artifacts'])} | **not run** | "
                  f"{cell(m['reason'])} |" for m in missing]
    return lines + [""]


def top_lines(results: Sequence[Any], base: Path, profile: str, data_dir: Optional[str] = None,
              figure: Optional[str] = None) -> list[str]:
    """REPORT.md's opening (module docstring): claim table, closed-form block, limits section.

    Args:
        results: ArtifactResult-like objects (``name``, ``checks``, ``runs``, ``tables``) of this profile.
        base: the folder of REPORT.md (table paths are relative to it).
        profile: the profile built.
        data_dir: the data folder (for the datasets not run); None: ``$EMBEDDING_NORMS_DATA``.
        figure: path of the summary figure relative to ``base`` (``figures/summary.png``), if drawn.
    """
    dec = decide_claims(results)
    fam = [d for d in dec.values() if d.in_family]
    lines = [f"## The answer: {len(fam)} empirical claims, after Holm's correction: **{count_verdicts([d.verdict for d in fam])}**",
             "", "Verdict = the claim's primary check, after Holm's correction over the empirical claims (how to "
             "read it: [below](#summary-every-claim-of-the-paper)); effect = the primary check's statistic, 95 % "
             "interval over seeds." + (f" Every check at a glance: [{figure}]({figure})." if figure else ""), "",
             "| claim | paper | verdict here | primary effect [95 %] | caveat |", "|---|---|---|---|---|"]
    lines += [_claim_row(d) for d in fam]
    exact = [d for d in dec.values() if not d.in_family]
    lines += ["", "**Sanity checks (closed form, exact; outside the family):** " + "; ".join(
        f"{cell(CLAIM_SUMMARY[d.claim].short if d.claim in CLAIM_SUMMARY else d.claim)} — **{d.verdict}**"
        + (f" (error {value_text(d.check)}, tolerance {d.check.direction})" if d.check is not None else "")
        for d in exact) + ".", ""]
    return lines + _limits_lines(results, dec, base, profile, data_dir)
