"""REPORT.md opens with the answer (issue 22): claim table, sanity block, limits, datasets not run; the
summary figure's scale; each check's margin (issue 21, item 6); the header's commit line. The labels of a
built smoke profile (<= 120 characters) and its figures/summary.png are checked in
``tests/test_runner.py::test_smoke_build_all_then_cached``."""

from __future__ import annotations

import json
import math

import pytest

from embedding_norms.report import ArtifactResult, ClaimCheck, render_report
from embedding_norms.report_header import commit_text
from embedding_norms.report_text import claimed_text, value_text
from embedding_norms.stats import interval_margin
from embedding_norms.summary_figure import draw_summary, forest_rows, oriented

T975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (table value)


def _check(effect, low, high, direction="> 0", claim="norm-growth", test="t", n=3, verdict="inconclusive", **kw):
    return ClaimCheck(claim, test, "stat [points]", effect, direction, verdict, low, high, n, **kw)


def test_margin_of_hand_made_intervals():
    assert interval_margin(1.0, 3.0, "> 0") == pytest.approx(1.0)      # nearer bound 1, half-width 1
    assert interval_margin(-1.0, 3.0, "> 0") == pytest.approx(-0.5)    # null inside: negative
    assert interval_margin(-3.0, -1.0, "< 0") == pytest.approx(1.0)
    assert interval_margin(1.0, 3.0, "< 0") == pytest.approx(-3.0)     # wholly on the wrong side
    assert interval_margin(-9.0, -7.0, "< -5") == pytest.approx(2.0)   # threshold -5: (-5 - (-7)) / 1
    assert interval_margin(None, 1.0, "> 0") is None and interval_margin(0.0, 1.0, "< 1e-9 and more") is None
    # a seeded check carries it: per-seed 1, 2, 3 -> mean 2, half-width t * 1 / sqrt(3)
    c = ClaimCheck.from_effects("norm-growth", "t", "s", [1.0, 2.0, 3.0])
    half = T975_DF2 / math.sqrt(3)
    assert c.margin == pytest.approx((2.0 - half) / half, rel=1e-6)
    assert json.loads(json.dumps(c.__dict__))["margin"] == pytest.approx(c.margin)
    assert ClaimCheck.from_effects("norm-growth", "t", "s", [1.0]).margin is None  # one seed: no interval


def test_value_shows_the_statistic_with_its_null():
    c = ClaimCheck.from_correlations("norm-knn", "t", "Spearman rho", [0.6, 0.7, 0.8], null=0.5, method="SimCLR")
    assert value_text(c).startswith("0.7") and claimed_text(c) == "> 0.5" and c.method == "SimCLR"
    assert claimed_text(_check(-8.0, -9.0, -7.0, "< -5")) == "< -5"


def test_forest_plot_values_are_effect_over_half_width(tmp_path):
    a = _check(2.0, 1.0, 3.0, "> 0", test="a")                    # half-width 1: x = 2, bar [1, 3]
    b = _check(-3.0, -4.0, -2.0, "< 0", test="b")                 # claimed side negative: x = 3, bar [2, 4]
    c = _check(-8.0, -9.0, -7.0, "< -5", claim="gradscale-limit", test="c")  # (-5 - -8) / 1 = 3
    d = _check(0.5, 0.0, 2.0, "> 0", claim="cut-init", test="d")  # half-width 1: x = 0.5
    one = _check(1.0, None, None, test="one seed", n=1, verdict="descriptive (1 seed)")
    assert oriented(a) == pytest.approx((2.0, 1.0, 3.0))
    assert oriented(b) == pytest.approx((3.0, 2.0, 4.0))
    assert oriented(c) == pytest.approx((3.0, 2.0, 4.0))          # bar: -(-7 + 5) = 2, -(-9 + 5) = 4
    assert oriented(d) == pytest.approx((0.5, 0.0, 2.0))          # an asymmetric interval keeps its bounds
    results = [ArtifactResult("x", "Sec. 4", "x", "quick", checks=[a, b, c, d, one])]
    rows, left_out = forest_rows(results)
    assert left_out == 1 and {r.label: r.x for r in rows} == pytest.approx({"a": 2.0, "b": 3.0, "c": 3.0, "d": 0.5})
    paths = draw_summary(results, tmp_path / "figures" / "summary", "quick")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths) and {p.suffix for p in paths} == {".png", ".pdf"}


def test_report_opens_with_claim_table_limits_and_datasets_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDDING_NORMS_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    gated = ClaimCheck.from_effects("norm-knn", "SimCLR CIFAR-10 z, augmented: kNN self-vote correct vs norm",
                                    "rho", [0.1, 0.2, 0.3], untestable="not testable: 1 of 2 gated run(s) gained "
                                    "less than 5 kNN points over epoch 0 (simclr/seed=0 +1.0)")
    res = ArtifactResult("fig4_norm_confidence", "Figure 4", "t", "quick", checks=[gated],
                         runs=[{"label": "a", "hash": "h", "status": "done", "dataset": "cifar10"}])
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "summary.png").write_bytes(b"png")
    text = render_report([res], "quick", tmp_path / "REPORT.md", env={"commit": "abc", "date": "d"})
    first = text.splitlines()[:40]
    head = "\n".join(first)
    assert "arxiv.org/abs/2502.09252" in head and "github.com/Andrew-Draganov/SSLEmbeddingNorms" in head
    assert "figures/summary.png" in head
    row = next(line for line in first if "kNN accuracy rises with the norm" in line)
    assert "**not testable**" in row and "gained less than 5 kNN points" in row and "(#fig4_norm_confidence)" in row
    assert "Sanity checks (closed form" in head and "## What `quick` can and cannot show" in head
    for ds in ("CIFAR-100", "ImageNet-100"):
        line = next(line for line in first if line.startswith(f"| {ds} "))
        assert "**not run**" in line and "not in the offline data folder" in line
    assert "## Summary: every claim of the paper" in text  # the full per-check table follows
    assert "| margin |" in text


def test_commit_line_says_when_head_differs_only_outside_the_code():
    def fake(head, code, dirty=""):
        return lambda *a: {"rev-parse": head, "log": code, "status": dirty}[a[0]]
    assert commit_text(fake("abc", "abc")) == "abc"
    assert commit_text(fake("def", "abc")) == "abc (last code change; HEAD def differs from it only in outputs/docs)"
    assert commit_text(fake("abc", "abc", " M src/x.py")).endswith("(with uncommitted changes to the code)")
