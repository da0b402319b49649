"""benchmarks/compare_builds.py on two hand-made result folders (issue 21, item 6): the counts it
prints are checked against the values set by hand here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from embedding_norms.report import ArtifactResult, ClaimCheck

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import compare_builds  # noqa: E402


def _check(test: str, effect: float, lo: float, hi: float, verdict: str) -> ClaimCheck:
    return ClaimCheck(claim="norm-knn", test=test, statistic="rho", effect=effect, direction="> 0",
                      verdict=verdict, ci_low=lo, ci_high=hi, n_seeds=4, per_seed=[effect] * 4)


def _write(folder: Path, checks: list[ClaimCheck]) -> Path:
    folder.mkdir(parents=True)
    res = ArtifactResult("fig4_norm_confidence", "Fig. 4", "t", "quick", checks=checks)
    (folder / "fig4_norm_confidence.json").write_text(json.dumps(res.to_dict()))
    return folder


def test_counts_verdicts_and_effects_inside_each_others_interval(tmp_path, capsys):
    a = _write(tmp_path / "a", [_check("one", 0.10, 0.05, 0.15, "holds"), _check("two", 0.02, 0.01, 0.03, "holds")])
    # one: same verdict, B's effect 0.12 inside A's [0.05, 0.15], A's 0.10 inside B's [0.08, 0.16];
    # two: verdict differs, B's 0.05 outside A's [0.01, 0.03], A's 0.02 inside B's [-0.01, 0.11].
    b = _write(tmp_path / "b", [_check("one", 0.12, 0.08, 0.16, "holds"), _check("two", 0.05, -0.01, 0.11, "inconclusive")])
    assert compare_builds.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "fig4_norm_confidence: 2 checks in both; same verdict 1/2; effect of B inside A's interval 1/2, of A inside B's 2/2" in out
    assert "differs: 'two'" in out and "differs: 'one'" not in out
    assert "all: same verdict 1/2" in out
