"""Claim checks, per-artifact result files (``results/<name>.json``) and REPORT.md.

An artifact's result file holds everything a reviewer needs to judge it: the numbers it
computed, its claim checks (claim id, statistic, value, threshold, verdict), the runs it used
(config hashes, epochs, dataset sizes, quirk options), what was skipped and why, and the
figure/table files. :func:`render_report` turns the result files into REPORT.md.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .claims import CLAIMS, is_primary
from .family import summary_lines, verdict_text
from .io import write_json, write_text
from .report_header import environment, runs_usability, standin_datasets, usability_line  # noqa: F401 (re-exported)
from .report_summary import CODE_URL, PAPER_URL, top_lines
from .report_text import cell as _cell
from .report_text import claimed_text, effect_text, margin_text, tags, value_text
from .stats import VERDICTS, Interval, correlation_interval, detectable_effect, interval_margin, seed_interval
from .stats import seeds_to_decide
from .stats import verdict as stat_verdict


@dataclass
class ClaimCheck:
    """One test of one paper claim, decided by an interval (issue 15; :mod:`embedding_norms.stats`).

    Two kinds of check exist:

    - *seeded* (every real-data and simulation check): ``effect`` is the mean over seeds of a
      per-seed effect, ``ci_low``/``ci_high`` its 95 % interval, ``per_seed`` the values, and
      ``verdict`` comes from :func:`embedding_norms.stats.verdict` with ``direction``;
    - *exact* (closed-form identities such as Prop. 3.1): ``effect`` is a deterministic error,
      ``threshold`` its tolerance, no interval, ``n_seeds`` None; verdict holds / contradicted.

    Attributes:
        claim: claim id (a key of :data:`embedding_norms.claims.CLAIMS`).
        test: what was tested, in words (e.g. "SimCLR: c=3 minus c=1, kNN at epoch 2").
        statistic: the effect's definition and unit (e.g. "kNN(c=3) - kNN(c=1) [points]").
        effect: mean effect (None if it could not be computed).
        direction: the side of 0 the claim predicts (``> 0`` / ``< 0``; exact checks: the tolerance).
        verdict: one of :data:`embedding_norms.stats.VERDICTS`.
        ci_low, ci_high: the interval (None when none exists).
        n_seeds: seeds the effect rests on (None for exact checks).
        per_seed: the per-seed effects, in seed order.
        regime: the design / phase of training the check belongs to (e.g. "early phase").
        detail: extra numbers or context (e.g. the two arms' means).
        interval: how the interval was made.
        descriptive: shown with its interval but not counted in the claim's verdict (e.g. a
            comparison that changes more than one thing, kept because the paper makes it).
        primary: the check that decides its claim (:data:`embedding_norms.claims.PRIMARY`; set
            by :func:`write_result`); the others are supporting.
        p_value: two-sided p-value of "no effect", consistent with the interval (None without one).
        detectable: the smallest effect the design could tell from 0: the interval's half-width,
            in the statistic's unit (None without an interval).
        seeds_needed: seeds that would decide the observed mean at the observed spread
            (:func:`embedding_norms.stats.seeds_to_decide`; None when not computable).
        method, vector, view, variant: what the check compares, as REPORT.md columns ('' when the
            check does not carry it), e.g. ``SimCLR``, ``z``, ``augmented``, ``kNN self-vote``.
        null: the statistic's value under "no effect" (effect = statistic - null; e.g. 0.5 for an
            AUROC); REPORT.md shows ``effect + null``, the statistic itself.
        gate: why the check is not testable (the learning gate's reason), or ''.
        margin: distance of the interval's nearer bound from the null in half-widths, positive on
            the claimed side (:func:`embedding_norms.stats.interval_margin`; set here, None without
            an interval).
    """

    claim: str
    test: str
    statistic: str
    effect: Optional[float]
    direction: str
    verdict: str
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    n_seeds: Optional[int] = None
    per_seed: list = field(default_factory=list)
    regime: str = ""
    detail: str = ""
    interval: str = ""
    descriptive: bool = False
    primary: bool = False
    p_value: Optional[float] = None
    detectable: Optional[float] = None
    seeds_needed: Optional[int] = None
    method: str = ""
    vector: str = ""
    view: str = ""
    variant: str = ""
    null: float = 0.0
    gate: str = ""
    margin: Optional[float] = None

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim id {self.claim!r}; known: {', '.join(CLAIMS)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; choose from {', '.join(VERDICTS)}")
        self.effect = _finite_or_none(self.effect)
        self.ci_low, self.ci_high = _finite_or_none(self.ci_low), _finite_or_none(self.ci_high)
        self.per_seed = [_finite_or_none(v) for v in self.per_seed]
        self.p_value, self.detectable = _finite_or_none(self.p_value), _finite_or_none(self.detectable)
        if self.effect is None and self.verdict != "not run":
            self.verdict = "not run"
        self.margin = interval_margin(self.ci_low, self.ci_high, self.direction) if self.n_seeds else None

    @classmethod
    def from_effects(cls, claim: str, test: str, statistic: str, per_seed, direction: str = "> 0",
                     regime: str = "", detail: str = "", interval: Optional[Interval] = None,
                     descriptive: bool = False, untestable: Optional[str] = None, **labels: Any) -> "ClaimCheck":
        """A seeded check from per-seed effects (t-interval over seeds, or ``interval`` when given,
        e.g. :func:`embedding_norms.stats.combined_interval` for per-image statistics); with its
        p-value, detectable effect and the seeds that would decide it.

        ``untestable``: the reason of :func:`embedding_norms.stats.learning_gate` when the runs
        compared did not learn; the verdict is then "not testable" (effect and interval are still
        shown) and the reason leads the detail. ``labels``: ``method``, ``vector``, ``view``,
        ``variant`` and ``null`` (fields of the check)."""
        values = [None if v is None else float(v) for v in per_seed]
        iv = interval if interval is not None else seed_interval([v for v in values if v is not None])
        v = stat_verdict(iv, direction)
        if untestable and v != "not run":
            v, detail = "not testable", f"{untestable}; {detail}" if detail else untestable
        return cls(claim, test, statistic, iv.mean, direction, v,
                   iv.low, iv.high, iv.n, values, regime, detail, iv.method, descriptive,
                   p_value=iv.p_value, detectable=detectable_effect(iv), seeds_needed=seeds_to_decide(iv),
                   gate=untestable if v == "not testable" else "", **labels)

    @classmethod
    def from_correlations(cls, claim: str, test: str, statistic: str, rhos, direction: str = "> 0",
                          regime: str = "", detail: str = "", null: float = 0.0,
                          descriptive: bool = False, untestable: Optional[str] = None, **labels: Any) -> "ClaimCheck":
        """A seeded check of one correlation per seed (Spearman or Pearson), effect ``rho - null``,
        with its interval on Fisher's z scale (:func:`embedding_norms.stats.correlation_interval`:
        inside [-1, 1]). ``per_seed`` holds ``rho_i - null``; ``labels`` as in :meth:`from_effects`.

        Raises:
            ValueError: a correlation outside [-1, 1] or ``null`` outside (-1, 1).
        """
        values = [None if v is None else float(v) for v in rhos]
        iv = correlation_interval([v for v in values if v is not None], null)
        return cls.from_effects(claim, test, statistic, [None if v is None else v - null for v in values], direction,
                                regime, detail, iv, descriptive, untestable, null=null, **labels)

    @classmethod
    def exact(cls, claim: str, test: str, statistic: str, value: Optional[float], threshold: str, ok: Optional[bool],
              regime: str = "closed form", detail: str = "", **labels: Any) -> "ClaimCheck":
        """A deterministic check (closed form, no seeds): holds when ``ok``, contradicted when not."""
        v = "not run" if ok is None or value is None else ("holds" if ok else "contradicted")
        return cls(claim, test, statistic, value, threshold, v, None, None, None, [], regime, detail, "exact", **labels)


def _finite_or_none(v: Any) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class ArtifactResult:
    """Content of ``results/<name>.json``."""

    name: str
    paper_ref: str
    title: str
    profile: str
    status: str = "built"                      # built | partial | failed
    vector: str = ""                           # which vector the numbers measure (h, z, p), in words
    numbers: dict[str, Any] = field(default_factory=dict)
    checks: list[ClaimCheck] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)   # paths relative to the output root
    tables: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the result (``results/<name>.json``)."""
        d = asdict(self)
        d["checks"] = [asdict(c) for c in self.checks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactResult":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["checks"] = [ClaimCheck(**c) for c in d.get("checks", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def write_result(result: ArtifactResult, results_dir: str | os.PathLike) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically, each check marked ``primary`` or not
    (:func:`embedding_norms.claims.is_primary`)."""
    for c in result.checks:
        c.primary = is_primary(result.name, c)
    path = Path(results_dir) / f"{result.name}.json"
    write_json(path, result.to_dict())
    return path


def load_results(results_dir: str | os.PathLike) -> list[ArtifactResult]:
    """All result files of a folder, sorted by name. A file that cannot be read (damaged, or
    written by an older version) becomes a ``failed`` placeholder naming the file and the fix,
    so that REPORT.md never drops an artifact silently."""
    out = []
    for f in sorted(Path(results_dir).glob("[!_]*.json")):
        try:
            out.append(ArtifactResult.from_dict(json.loads(f.read_text())))
        except (json.JSONDecodeError, TypeError, ValueError, KeyError, OSError) as exc:
            out.append(ArtifactResult(f.stem, "?", f"unreadable result file {f.name}", _profile_of(f), status="failed",
                                      error=f"{f}: {type(exc).__name__}: {exc}. Rebuild it: "
                                            f"python -m reproduce {f.stem} --profile {_profile_of(f) or '<profile>'}"))
    return out


def _profile_of(path: Path) -> str:
    """The profile named in a (possibly damaged) result file, or ''."""
    import re

    try:
        m = re.search(r'"profile":\s*"(\w+)"', path.read_text(errors="replace"))
    except OSError:
        return ""
    return m.group(1) if m else ""


#: The one-page summary figure (``reproduce.runner`` draws it), relative to the output root.
SUMMARY_FIGURE = "figures/summary.png"
#: Tables longer than this are linked from REPORT.md instead of inlined.
MAX_TABLE_ROWS = 40


def claim_verdict(checks: list[ClaimCheck]) -> str:
    """Verdict of one claim from its checks: the common verdict when every evaluated check agrees
    (holds / contradicted / inconclusive), else the counts (e.g. "2 holds, 1 inconclusive");
    ``not run`` when no check could be evaluated. Descriptive checks do not count."""
    evaluated = [c.verdict for c in checks if c.verdict != "not run" and not c.descriptive]
    if not evaluated:
        return "not run"
    kinds = sorted(set(evaluated), key=VERDICTS.index)
    if len(kinds) == 1:
        return f"{kinds[0]} ({len(evaluated)}/{len(evaluated)})"
    return ", ".join(f"{evaluated.count(k)} {k}" for k in kinds)


def _rel(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def render_report(results: list[ArtifactResult], profile: str, report_path: str | os.PathLike,
                  env: Optional[dict[str, str]] = None, timing: Optional[dict[str, float]] = None,
                  order: Optional[list[str]] = None, runs_summary: Optional[dict[str, Any]] = None,
                  data_dir: Optional[str] = None) -> str:
    """Write REPORT.md from the artifacts' results and return its text.

    Layout: a compact header (profile, commit, date, links), the answer first
    (:func:`embedding_norms.report_summary.top_lines`: one row per claim, the closed-form sanity
    checks, what the profile can and cannot show, the datasets not run), the build details
    (hardware, code, runs), the full per-check table, then one section per artifact (paper
    figure/table, images, tables, claim checks with numbers, runs used, quirk options, what was
    skipped and why), in the order of ``order`` (artifact names) when given. ``data_dir``: the data
    folder, to say why a dataset of the paper was not run (None: ``$EMBEDDING_NORMS_DATA``).
    """
    report_path = Path(report_path)
    base = report_path.parent
    env = env or environment()
    results = [r for r in results if r.profile == profile]
    if order:  # registry order; unknown names last
        rank = {name: i for i, name in enumerate(order)}
        results.sort(key=lambda r: (rank.get(r.name, len(rank)), r.name))
    figure = SUMMARY_FIGURE if (base / SUMMARY_FIGURE).is_file() else None
    lines = [
        "# REPORT: On the Importance of Embedding Norms in Self-Supervised Learning — reproduction",
        "",
        f"Profile **`{profile}`**" + (" (reduced scale: the *direction* of each claim, not the paper's values)"
                                      if profile != "paper" else "")
        + f" · commit {env.get('commit')} · {env.get('date')} · paper [arXiv 2502.09252]({PAPER_URL}) · released "
          f"code [SSLEmbeddingNorms]({CODE_URL}) · generated by `python -m reproduce`; do not edit by hand.",
        "",
    ]
    if figure:
        lines += [f"![Every empirical check: effect / interval half-width, by claim]({figure})", ""]
    lines += top_lines(results, base, profile, data_dir, figure)
    lines += ["## Build", "",
              f"- **Hardware:** {env.get('cpu')}; GPU: {env.get('gpu')}; host {env.get('host')}; "
              f"Python {env.get('python')}, torch {env.get('torch')}"]
    if env.get("code"):  # library and artifact code: the checkout (path, commit) each was read from
        lines.append(f"- **Code:** {env['code']}")
    stale = {run.get("hash") for r in results for run in r.runs if run.get("stale")}
    lines.append("- **Code of the runs:** " + (f"**{len(stale)} run(s) were trained by other training code than this "
                                                  "commit (stale)**; the checks resting on them say so "
                                                  "(`--retrain-stale` retrains them)" if stale else
                                                  "every run used was trained by the current training code"))
    standins = standin_datasets(results)
    if standins:
        lines.append("- **Data: stand-in data** (generated images, not the real dataset) for "
                     + ", ".join(f"{ds} ({', '.join(arts)})" for ds, arts in standins.items())
                     + ": those numbers test the wiring only")
    if runs_summary:
        lines.append(f"- **Training runs:** {runs_summary.get('finished')} of {runs_summary.get('runs')} finished; "
                     f"their training took {runs_summary.get('train_seconds_total', 0) / 60:.1f} min in total "
                     f"(sum of the runs' own times, `results/_runs.json`)")
    usability = runs_usability(results)
    if usability["runs"]:
        lines.append(usability_line(usability))
    if timing:
        lines.append(f"- **Wall time of the call that wrote this report:** {timing.get('total', 0):.0f} s "
                     f"(training {timing.get('training', 0):.0f} s, building {timing.get('building', 0):.0f} s)")
    lines += ["", "## Summary: every claim of the paper", "",
              "One row per claim (its verdict: that of its primary check, after Holm's correction), then one row per "
              "check: primary or supporting, what it compares (method, vector, view, variant), verdict, the statistic "
              "with its 95 % interval and the value the claim predicts, the margin (distance of the interval's nearer "
              "bound from that value, in half-widths: > 0 on the claimed side, near 0 fragile; a large margin is no "
              "guarantee, since with few seeds the half-width is itself uncertain (4 seeds: the true spread may be "
              "up to 3.7 times the estimate) and a re-run with another worker layout is a new draw of training noise: "
              "README 'What a re-run reproduces'), seeds, "
              "p-value and the regime (design / phase of training) it tests.", ""]
    lines += summary_lines(results)

    lines += ["## Artifacts", "", "| artifact | paper | status | time (s) |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| [{r.name}](#{r.name}) | {r.paper_ref} | {r.status} | {r.seconds:.0f} |")
    lines.append("")

    for r in results:
        lines += [f"<a id=\"{r.name}\"></a>", f"### {r.name} — {r.title}", "",
                  f"Reproduces: **{r.paper_ref}**. Status: **{r.status}**. Build time {r.seconds:.0f} s.", ""]
        if r.vector:
            lines += [f"Vector measured: {r.vector}.", ""]
        if r.error:
            lines += ["**Error while building:**", "", "```", r.error.strip()[-2000:], "```", ""]
        for fig in r.figures:  # paths are relative to the output root (absolute in older result files)
            if fig.endswith(".png"):
                lines += [f"![{r.name}]({_rel(str(base / fig), base)})", ""]
        for tab in r.tables:
            if tab.endswith(".md") and (base / tab).exists():
                text = (base / tab).read_text().strip()
                if text.count("\n") <= MAX_TABLE_ROWS + 1:
                    lines += [f"Table `{_rel(str(base / tab), base)}`:", "", text, ""]
                else:  # long tables (per-image, per-epoch histories) are linked, not inlined
                    lines += [f"Table [`{_rel(str(base / tab), base)}`]({_rel(str(base / tab), base)}) "
                              f"({text.count(chr(10)) - 1} rows; also as CSV and LaTeX).", ""]
        if r.checks:
            lines += ["| claim | check | method | vector | view | variant | statistic | value [95 %] | claimed | margin "
                      "| seeds | verdict | regime; detail |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for c in r.checks:
                mark = verdict_text(c) if c.verdict == "holds" else f"**{c.verdict}**" + verdict_text(c)[len(c.verdict):]
                test = ("**[primary]** " if is_primary(r.name, c) else "") + c.test
                lines.append(f"| {c.claim} | {_cell(test)} | " + " | ".join(_cell(t) for t in tags(c))
                             + f" | {_cell(c.statistic)} | {_cell(value_text(c))} | {_cell(claimed_text(c))} | "
                             f"{margin_text(c)} | {c.n_seeds if c.n_seeds is not None else 'exact'} | {mark} | "
                             f"{_cell('; '.join(x for x in (c.regime, c.detail) if x))} |")
            lines.append("")
        if r.numbers:
            text = json.dumps(r.numbers, indent=1, default=str)
            if len(text) <= 6000:
                lines += ["<details><summary>Numbers</summary>", "", "```json", text, "```", "</details>", ""]
            else:  # never cut JSON in the middle: point to the whole file instead
                lines += [f"Numbers: `results/{r.name}.json` ({len(text):,} characters, too long to show here).", ""]
        if r.runs:
            lines += ["Runs used:", "", "| run | status | epochs | train images | quirks |", "|---|---|---|---|---|"]
            for run in r.runs:
                lines.append(f"| `{run.get('label')}` `{run.get('hash', '')}` | {_cell(run.get('status', ''))} | "
                             f"{run.get('epochs', '')} | {run.get('train_images', '')} | {_cell(run.get('quirks', ''))} |")
            lines.append("")
        for s in r.skipped:
            lines.append(f"- **Skipped** {s.get('part')}: {s.get('reason')}")
        for n in r.notes:
            lines.append(f"- {n}")
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    write_text(report_path, text)
    return text
