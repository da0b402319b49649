"""Primary checks, the Holm family over the empirical claims, power statements (issue 21), on
hand-made checks; and the FLOP count behind the dry run's projection, against a hand count."""

import json
from pathlib import Path

import pytest
import torch

from embedding_norms.claims import CLAIMS, EXACT_CLAIMS, PRIMARY, is_primary
from embedding_norms.family import count_verdicts, decide_claims, power_text, unit_of
from embedding_norms.flops import count_flops
from embedding_norms.report import ArtifactResult, ClaimCheck, render_report, write_result

ROOT = Path(__file__).resolve().parents[1]
M = len(CLAIMS) - len(EXACT_CLAIMS)   # the family's size, fixed before any data


def check(claim, test, p, effect=1.0, direction="> 0", verdict=None, regime="", descriptive=False):
    """A hand-made seeded check with a given p-value (interval on the side its p-value implies)."""
    decided = p < 0.05
    v = verdict or (("holds" if (effect > 0) == (direction == "> 0") else "contradicted") if decided else "inconclusive")
    lo, hi = (effect * 0.5, effect * 1.5) if decided else (-abs(effect), abs(effect) * 2)
    return ClaimCheck(claim, test, "s [points]", effect, direction, v, min(lo, hi), max(lo, hi), 4, [effect] * 4,
                      regime, descriptive=descriptive, p_value=p)


GROWTH = "SimCLR: norm of z at the last epoch above its initial norm (epoch 12)"
CUT = "SimCLR cifar10, whole regime, cut all: c=3 above c=1"


def results(*checks_by_artifact):
    return [ArtifactResult(name, "ref", "title", "quick", checks=list(cs)) for name, cs in checks_by_artifact]


def test_every_claim_has_one_declared_primary_and_the_committed_results_match_it_once():
    assert set(PRIMARY) == set(CLAIMS)
    found = {}
    for f in sorted((ROOT / "results").glob("[!_]*.json")):
        r = ArtifactResult.from_dict(json.loads(f.read_text()))
        for c in r.checks:
            if is_primary(r.name, c):
                found.setdefault(c.claim, []).append(c.test)
    if not found:
        pytest.skip("no committed results")
    assert {k: len(v) for k, v in found.items()} == {k: 1 for k in CLAIMS}


def test_primary_matching_uses_artifact_test_and_regime():
    assert is_primary("fig_norm_growth", check("norm-growth", GROWTH, 0.01))
    assert not is_primary("fig_norm_growth", check("norm-growth", GROWTH.replace("SimCLR", "BYOL"), 0.01))
    assert not is_primary("tab_cut_init", check("norm-growth", GROWTH, 0.01))      # wrong artifact
    assert is_primary("tab_cut_init", check("cut-init", CUT, 0.01, regime="whole schedule (x)"))
    assert not is_primary("tab_cut_init", check("cut-init", CUT.replace("whole", "early"), 0.01, regime="early phase (x)"))
    assert not is_primary("tab_cut_init", check("cut-init", CUT.replace("cut all", "cut projector"), 0.01))
    assert not is_primary("fig_norm_growth", check("norm-growth", GROWTH, 0.01, descriptive=True))


def test_holm_decides_claims_over_a_fixed_family():
    # two primaries built; the other empirical claims are not run and stay in the family as p = 1.
    # Holm with m = 13: 0.001 <= 0.05/13 = 0.00385 and 0.004 <= 0.05/12 = 0.00417: both decided
    res = results(("fig_norm_growth", [check("norm-growth", GROWTH, 0.001),
                                       check("norm-growth", GROWTH.replace("SimCLR", "BYOL"), 0.2)]),
                  ("tab_cut_init", [check("cut-init", CUT, 0.004, effect=-2.0, regime="whole schedule (x)")]))
    d = decide_claims(res)
    assert M == 13
    assert d["norm-growth"].verdict == "holds" and d["cut-init"].verdict == "contradicted"
    assert d["norm-growth"].p_holm == pytest.approx(13 * 0.001)
    assert d["cut-init"].p_holm == pytest.approx(12 * 0.004)
    assert d["weight-decay"].verdict == "not run" and d["weight-decay"].in_family
    assert d["prop3.1"].verdict == "not run" and not d["prop3.1"].in_family
    # 0.0045 > 0.05/12: holds at 95 % on its own, but not after the correction
    res[1].checks[0] = check("cut-init", CUT, 0.0045, regime="whole schedule (x)")
    d = decide_claims(res)
    assert res[1].checks[0].verdict == "holds" and d["cut-init"].verdict == "inconclusive"
    assert "not after Holm" in d["cut-init"].note


def test_undecided_primaries_keep_their_word_and_count_as_p_one():
    res = results(("fig_norm_growth", [check("norm-growth", GROWTH, 0.3, verdict="not testable")]),
                  ("tab_cut_init", [check("cut-init", CUT, 0.001, regime="whole schedule (x)")]))
    d = decide_claims(res)
    assert d["norm-growth"].verdict == "not testable" and d["norm-growth"].p_value is None
    assert d["cut-init"].verdict == "holds" and d["cut-init"].p_holm == pytest.approx(13 * 0.001)
    one = ClaimCheck.from_effects("norm-growth", GROWTH, "log ratio", [2.0])
    assert decide_claims(results(("fig_norm_growth", [one])))["norm-growth"].verdict == "descriptive (1 seed)"


def test_exact_claims_stay_outside_the_family():
    ex = ClaimCheck.exact("prop3.1", "size of the gradient is sin θ / ‖z‖ (grid)", "err", 1e-16, "< 1e-9", True)
    d = decide_claims(results(("fig1_gradient_geometry", [ex])))
    assert d["prop3.1"].verdict == "holds" and not d["prop3.1"].in_family and d["prop3.1"].p_holm is None


def test_power_text_of_an_inconclusive_check():
    c = ClaimCheck.from_effects("cut-init", "t", "kNN difference [points]", [-1.0, 1.0, 3.0])  # mean 1, sd 2
    assert c.verdict == "inconclusive"
    text = power_text(c)
    assert text.startswith("would detect ±5.0 points")          # half-width 4.3027 x 2 / sqrt 3 = 4.97
    assert text.endswith("18 seeds would decide +1.0")         # hand count in test_stats
    assert power_text(ClaimCheck.from_effects("cut-init", "t", "s", [1.9, 2.0, 2.1])) == ""
    assert unit_of("kNN(c) - kNN(1) [points]") == "points" and unit_of("Spearman rho") == ""
    assert count_verdicts(["holds", "not testable", "holds", "inconclusive"]) == \
        "2 holds, 1 inconclusive, 1 not testable"


def test_results_carry_primary_and_report_says_holm(tmp_path):
    r = results(("fig_norm_growth", [check("norm-growth", GROWTH, 0.001),
                                     check("norm-growth", GROWTH.replace("SimCLR", "BYOL"), 0.2)]))[0]
    write_result(r, tmp_path / "results")
    saved = json.loads((tmp_path / "results" / "fig_norm_growth.json").read_text())
    assert [c["primary"] for c in saved["checks"]] == [True, False]
    text = render_report([r], "quick", tmp_path / "REPORT.md", env={"commit": "x"})
    assert "Holm's step-down correction at a family-wise error of 0.05" in text
    assert "[**primary**] SimCLR: norm of z" in text and "[supporting] BYOL" in text
    assert "not testable" in text and "descriptive (1 seed)" in text


def test_flop_count_of_a_tiny_mlp_by_hand():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    x = torch.randn(2, 5)   # batch 2, no gradient w.r.t. the input

    def step():
        mlp(x).sum().backward()

    # forward: 2 x (2·5·4) + 2 x (2·4·3) = 80 + 48; backward: layer 2 weight 48 and input 48,
    # layer 1 weight 80 (its input needs no gradient); biases and ReLU are not counted
    assert count_flops(step) == 80 + 48 + 48 + 48 + 80
