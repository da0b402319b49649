"""Intervals over seeds and the verdict rule (issue 15), against closed forms and hand values."""

import math

import pytest

from embedding_norms.report import ClaimCheck, claim_verdict
from embedding_norms.stats import Interval, combined_interval, seed_interval, verdict

#: Student-t quantiles t_{0.975, df} from printed tables (not computed by the code under test).
T975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105}


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
    ([5.0], "> 0", "inconclusive"),                # one seed: no interval, never decided
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
