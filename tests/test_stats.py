"""Intervals over seeds and the verdict rule (issue 15), against closed forms and hand values."""

import math

import pytest

from embedding_norms.report import ClaimCheck, claim_verdict
from embedding_norms.stats import (VERDICTS, Interval, combined_interval, correlation_interval, detectable_effect,
                                   holm, seed_interval, seeds_to_decide, verdict)

#: Student-t quantiles t_{0.975, df} from printed tables (not computed by the code under test).
T975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 16: 2.119905299, 17: 2.109815578}


def p_two_sided_df2(t: float) -> float:
    """Two-sided p-value of Student's t with 2 degrees of freedom, in closed form:
    the CDF is 1/2 + t / (2 sqrt(2 + t^2)), so P(|T| > |t|) = 1 - |t| / sqrt(2 + t^2)."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def test_seed_interval_is_the_student_t_interval():
    # values 1, 2, 3: mean 2, sample sd 1, sem 1/sqrt(3)
    iv = seed_interval([1.0, 2.0, 3.0])
    half = T975[2] * 1.0 / math.sqrt(3)
    assert iv.mean == pytest.approx(2.0)
    assert iv.low == pytest.approx(2.0 - half, abs=1e-8) and iv.high == pytest.approx(2.0 + half, abs=1e-8)
    assert iv.n == 3
    # five values 4, 6, 5, 7, 3: mean 5, sd sqrt(2.5)
    iv = seed_interval([4, 6, 5, 7, 3])
    assert iv.high - iv.mean == pytest.approx(T975[4] * math.sqrt(2.5) / math.sqrt(5), abs=1e-8)


def test_seed_interval_drops_non_finite_and_needs_two_seeds():
    iv = seed_interval([2.0, float("nan"), None, 4.0])
    assert iv.n == 2 and iv.mean == pytest.approx(3.0)
    assert iv.high - iv.mean == pytest.approx(T975[1] * math.sqrt(2) / math.sqrt(2), abs=1e-7)
    one = seed_interval([5.0])
    assert one.n == 1 and one.mean == 5.0 and not one.defined
    assert seed_interval([]).n == 0 and math.isnan(seed_interval([]).mean)
    with pytest.raises(ValueError, match="level"):
        seed_interval([1, 2], level=1.5)


@pytest.mark.parametrize("values, direction, expected", [
    ([1.9, 2.0, 2.1], "> 0", "holds"),            # interval [1.75, 2.25] above 0
    ([-1.0, 0.5, 2.0], "> 0", "inconclusive"),    # contains 0
    ([-2.1, -2.0, -1.9], "> 0", "contradicted"),  # wholly below 0
    ([-2.1, -2.0, -1.9], "< 0", "holds"),         # the claim predicts a negative effect
    ([1.9, 2.0, 2.1], "< 0", "contradicted"),
    # the example [1, 2, 3]: with 3 seeds the t-interval is [-0.48, 4.48], so it is *not*
    # decided: three positive seeds are not enough evidence at 95 % (a bootstrap over 3 values
    # would claim it, with a coverage far below 95 %).
    ([1.0, 2.0, 3.0], "> 0", "inconclusive"),
    ([-3.0, -2.0, -1.0], "> 0", "inconclusive"),
    ([5.0], "> 0", "descriptive (1 seed)"),        # one seed: no interval, never decided
    ([], "> 0", "not run"),
])
def test_verdict_rule_on_hand_made_seed_values(values, direction, expected):
    assert verdict(seed_interval(values), direction) == expected


def test_verdict_rejects_unknown_direction_and_handles_none():
    assert verdict(None) == "not run"
    with pytest.raises(ValueError, match="direction"):
        verdict(Interval(1, 0.5, 1.5, 3), ">= 0")


def test_combined_interval_adds_bootstrap_variance_to_seed_spread():
    x, b = [0.60, 0.62, 0.64], [0.01, 0.02, 0.02]
    iv = combined_interval(x, b)
    s2 = 0.0004  # sample variance of 0.60, 0.62, 0.64
    var = s2 / 3 + (0.0001 + 0.0004 + 0.0004) / 3
    assert iv.mean == pytest.approx(0.62)
    assert iv.high - iv.mean == pytest.approx(T975[2] * math.sqrt(var), abs=1e-8)
    # one seed: normal interval from the bootstrap alone (z_0.975 = 1.959964)
    one = combined_interval([0.7], [0.05])
    assert one.low == pytest.approx(0.7 - 1.959964 * 0.05, abs=1e-6)
    with pytest.raises(ValueError, match="length"):
        combined_interval([1, 2], [0.1])
    with pytest.raises(ValueError, match=">= 0"):
        combined_interval([1, 2], [0.1, -0.1])


def test_claim_check_from_effects_and_claim_verdict():
    c = ClaimCheck.from_effects("cut-init", "t", "s", [1.9, 2.0, 2.1], "> 0", regime="early")
    assert c.verdict == "holds" and c.n_seeds == 3 and c.per_seed == [1.9, 2.0, 2.1]
    d = ClaimCheck.from_effects("cut-init", "t", "s", [-1.0, 0.5, 2.0])
    assert d.verdict == "inconclusive"
    e = ClaimCheck.from_effects("cut-init", "t", "s", [])
    assert e.verdict == "not run" and e.effect is None
    assert claim_verdict([c, d, e]) == "1 holds, 1 inconclusive"
    assert claim_verdict([c, c]) == "holds (2/2)"
    assert claim_verdict([e]) == "not run"
    x = ClaimCheck.exact("prop3.1", "t", "max error", 1e-15, "< 1e-9", True)
    assert x.verdict == "holds" and x.n_seeds is None
    with pytest.raises(ValueError, match="verdict"):
        ClaimCheck("cut-init", "t", "s", 1.0, "> 0", "mixed")


# --------------------------------------------------------------------------- issue 21
def test_p_values_match_the_intervals_by_hand():
    # [1, 2, 3]: t = 2 / (1 / sqrt 3) = 2 sqrt 3; the 95 % interval contains 0, so p > 0.05
    iv = seed_interval([1.0, 2.0, 3.0])
    assert iv.p_value == pytest.approx(p_two_sided_df2(2 * math.sqrt(3)), abs=1e-9)
    assert iv.p_value > 0.05 and verdict(iv) == "inconclusive"
    # combined: se = sqrt(s^2/n + mean b^2) = sqrt(0.0004/3 + 0.0009/3)
    c = combined_interval([0.60, 0.62, 0.64], [0.01, 0.02, 0.02])
    assert c.p_value == pytest.approx(p_two_sided_df2(0.62 / math.sqrt(0.0013 / 3)), abs=1e-9)
    # one seed: no p-value, and a bootstrap interval over images alone decides nothing
    one = combined_interval([0.7], [0.01])
    assert math.isnan(one.p_value) and one.low > 0 and verdict(one) == "descriptive (1 seed)"


def test_correlation_interval_on_fishers_z_by_hand():
    r = [0.5, 0.6, 0.7]
    z = [0.5 * math.log((1 + v) / (1 - v)) for v in r]          # atanh by its definition
    m = sum(z) / 3
    sd = math.sqrt(sum((v - m) ** 2 for v in z) / 2)
    half = T975[2] * sd / math.sqrt(3)
    iv = correlation_interval(r)
    assert iv.mean == pytest.approx(math.tanh(m), abs=1e-12)
    assert iv.low == pytest.approx(math.tanh(m - half), abs=1e-9)
    assert iv.high == pytest.approx(math.tanh(m + half), abs=1e-9)
    assert iv.p_value == pytest.approx(p_two_sided_df2(m / (sd / math.sqrt(3))), abs=1e-9)
    # against a null of 0.4: effect rho - 0.4, test of z - atanh(0.4)
    z0 = 0.5 * math.log(1.4 / 0.6)
    iv4 = correlation_interval(r, null=0.4)
    assert iv4.mean == pytest.approx(math.tanh(m) - 0.4, abs=1e-12)
    assert iv4.low == pytest.approx(math.tanh(m - half) - 0.4, abs=1e-9)
    assert iv4.p_value == pytest.approx(p_two_sided_df2((m - z0) / (sd / math.sqrt(3))), abs=1e-9)


def test_correlation_intervals_stay_inside_minus_one_one():
    # the examples: a t-interval on rho itself ran past +-1 (0.91 [0.77, 1.05], -0.67 [-1.02, -0.33])
    for r in ([0.95, 0.99, 0.80, 0.90], [-0.9, -0.3, -0.8, -0.7], [1.0, 1.0, 0.2], [-1.0, 1.0, 1.0, 1.0]):
        iv = correlation_interval(r)
        assert -1 <= iv.low <= iv.mean <= iv.high <= 1, (r, iv)
    # rho = 1 in every seed: no spread, the point interval at 1 (decided)
    iv = correlation_interval([1.0, 1.0, 1.0], null=0.9)
    assert iv.low == iv.high == pytest.approx(0.1) and verdict(iv) == "holds"
    # with spread, |rho| = 1 is shrunk to 0.9999 before atanh: z = atanh(0.9999) = 4.9517
    iv = correlation_interval([1.0, 0.0])
    zm = (0.5 * math.log(1.9999 / 0.0001)) / 2
    assert iv.mean == pytest.approx(math.tanh(zm), abs=1e-9)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        correlation_interval([0.5, 1.5])
    with pytest.raises(ValueError, match="null"):
        correlation_interval([0.5, 0.6], null=1.0)


def test_holm_step_down_by_hand():
    # m = 4, alpha 0.05: sorted 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 -> stop (0.04 not rejected either)
    rejected, adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert rejected == [True, False, False, True]
    # adjusted: 4 x 0.005 = 0.02; max(0.02, 3 x 0.01) = 0.03; max(0.03, 2 x 0.03) = 0.06; max(0.06, 0.04) = 0.06
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Bonferroni would reject 0.01 only at 0.0125: Holm is uniformly more powerful
    rejected, adjusted = holm([0.001, float("nan")])   # an untestable hypothesis counts as p = 1
    assert rejected == [True, False] and adjusted == pytest.approx([0.002, 1.0])
    assert holm([]) == ([], [])
    with pytest.raises(ValueError, match="alpha"):
        holm([0.1], alpha=0)
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])


def test_detectable_effect_and_seeds_to_decide_by_hand():
    iv = seed_interval([-1.0, 1.0, 3.0])            # mean 1, sd 2, n 3: inconclusive
    assert verdict(iv) == "inconclusive"
    assert detectable_effect(iv) == pytest.approx(T975[2] * 2 / math.sqrt(3), abs=1e-8)
    # smallest n with t_{n-1} * 2 / sqrt(n) < 1: n = 17 gives 2.1199 * 2 / 4.1231 = 1.028 (no),
    # n = 18 gives 2.1098 * 2 / 4.2426 = 0.9946 (yes)
    assert T975[16] * 2 / math.sqrt(17) > 1 > T975[17] * 2 / math.sqrt(18)
    assert seeds_to_decide(iv) == 18
    assert seeds_to_decide(seed_interval([5.0])) is None           # one seed: no spread known
    assert seeds_to_decide(seed_interval([-1.0, 0.0, 1.0])) is None  # mean 0: nothing to decide
    # the image-sampling error alone (+-1.96 x 0.1) exceeds the mean 0.02: no number of seeds decides
    assert seeds_to_decide(combined_interval([0.01, 0.02, 0.03], [0.1, 0.1, 0.1])) is None
    assert math.isnan(detectable_effect(seed_interval([5.0])))


def test_vocabulary_has_not_testable_and_descriptive():
    assert {"not testable", "descriptive (1 seed)", "inconclusive"} <= set(VERDICTS)
    c = ClaimCheck("cut-init", "t", "s", 1.0, "> 0", "not testable")
    assert c.verdict == "not testable"
    one = ClaimCheck.from_effects("cut-init", "t", "s", [2.5])
    assert one.verdict == "descriptive (1 seed)" and one.n_seeds == 1 and one.p_value is None


def test_claim_check_from_correlations():
    c = ClaimCheck.from_correlations("norm-knn", "t", "Spearman rho", [0.95, 0.99, 0.80, 0.90])
    assert -1 <= c.ci_low < c.effect < c.ci_high <= 1 and c.per_seed == [0.95, 0.99, 0.80, 0.90]
    d = ClaimCheck.from_correlations("conv-angle", "t", "rho - 0.9", [0.95, 0.96, 0.97], null=0.9)
    assert d.per_seed == pytest.approx([0.05, 0.06, 0.07]) and d.verdict == "holds"
def test_correlation_interval_on_the_fisher_z_scale_by_hand():
    """rho = tanh(0.2), tanh(0.4): z = 0.2, 0.4 -> mean 0.3, s = 0.2/sqrt(2), sem = 0.1,
    t_{0.975, 1} = 12.7062047 (table) -> z interval 0.3 -/+ 1.27062047, mapped back with tanh."""
    from embedding_norms.stats import correlation_interval

    iv = correlation_interval([math.tanh(0.2), math.tanh(0.4)])
    assert iv.n == 2 and iv.mean == pytest.approx(math.tanh(0.3))
    assert iv.low == pytest.approx(math.tanh(0.3 - 1.27062047)) and iv.high == pytest.approx(math.tanh(0.3 + 1.27062047))
    # three seeds, 0.5, 0.6, 0.7: z = atanh, t_{0.975, 2} = 4.30265273 (table)
    z = [math.atanh(r) for r in (0.5, 0.6, 0.7)]
    m = sum(z) / 3
    sem = math.sqrt(sum((v - m) ** 2 for v in z) / 2 / 3)
    iv3 = correlation_interval([0.5, 0.6, 0.7, float("nan")])          # NaN: a seed without a value
    assert iv3.n == 3 and iv3.mean == pytest.approx(math.tanh(m))
    assert (iv3.low, iv3.high) == pytest.approx((math.tanh(m - 4.30265273 * sem), math.tanh(m + 4.30265273 * sem)))
    assert -1 < iv3.low < iv3.mean < iv3.high < 1
    wide = correlation_interval([0.99, -0.99])                          # stays inside [-1, 1]
    assert -1 <= wide.low < 0 < wide.high <= 1 and wide.mean == pytest.approx(0.0, abs=1e-12)
    one = correlation_interval([0.3])
    assert one.mean == pytest.approx(0.3) and not one.defined
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        correlation_interval([0.5, 1.5])
