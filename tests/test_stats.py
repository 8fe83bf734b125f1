"""Statistics of the evaluation: each checked against a brute-force or textbook computation."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from utils.stats import (
    majority_vote,
    mcnemar_exact,
    paired_bootstrap,
    pass_at_k,
    wilson_interval,
)


# ----------------------------------------------------------------------------- Wilson
def test_wilson_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    # 15/148 -> 0.0624 to 0.1605 (same table).
    low, high = wilson_interval(15, 148)
    assert low == pytest.approx(0.0624, abs=1e-4) and high == pytest.approx(0.1605, abs=1e-4)


def test_wilson_is_sensible_at_the_edges():
    low, high = wilson_interval(0, 30)
    assert low == 0.0 and 0.10 < high < 0.13  # "0 of 30" still allows ~11%
    low, high = wilson_interval(30, 30)
    assert high == 1.0 and 0.87 < low < 0.90
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


@given(st.integers(1, 3000), st.data())
def test_wilson_contains_the_estimate_and_shrinks_with_n(n, data):
    successes = data.draw(st.integers(0, n))
    low, high = wilson_interval(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0
    low4, high4 = wilson_interval(4 * successes, 4 * n)
    assert high4 - low4 < high - low


# ----------------------------------------------------------------------------- pass@k
def brute_force_pass_at_k(n, c, k):
    """Fraction of all k-subsets of n samples (c correct) that contain a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_equals_the_subset_average(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_1_is_the_sample_accuracy_and_large_n_does_not_overflow():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    exact = 1 - Fraction(math.comb(900, 100), math.comb(1000, 100))
    assert pass_at_k(1000, 100, 100) == pytest.approx(float(exact), rel=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


@given(st.integers(1, 40), st.data())
def test_pass_at_k_is_monotone_in_k_and_c(n, data):
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    value = pass_at_k(n, c, k)
    assert 0.0 <= value <= 1.0
    if k < n:
        assert pass_at_k(n, c, k + 1) >= value - 1e-12
    if c < n:
        assert pass_at_k(n, c + 1, k) >= value - 1e-12


# ----------------------------------------------------------------------------- majority vote
def test_majority_vote_counts_equal_values_as_one_answer():
    assert majority_vote(["18", "$18.00", "19", "18.0", "19"]) == "18"
    assert majority_vote(["1,000", "1000", "999"]) == "1,000"


def test_majority_vote_ties_go_to_the_first_seen_value():
    assert majority_vote(["7", "5", "5", "7"]) == "7"
    assert majority_vote(["5", "7", "7", "5"]) == "5"


def test_majority_vote_ignores_unreadable_answers():
    assert majority_vote([None, "18 or 19", None, "4"]) == "4"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


# ----------------------------------------------------------------------------- McNemar
def brute_force_mcnemar(only_a, only_b):
    n = only_a + only_b
    probabilities = [math.comb(n, i) / 2**n for i in range(n + 1)]
    observed = probabilities[only_a]
    return min(1.0, sum(p for p in probabilities if p <= observed + 1e-15))


def test_mcnemar_counts_discordant_pairs_and_matches_the_binomial_test():
    a = [True, True, True, False, False, True, False, True]
    b = [True, False, False, False, True, True, False, False]
    result = mcnemar_exact(a, b)
    assert (result.only_a, result.only_b) == (3, 1)
    assert result.p_value == pytest.approx(brute_force_mcnemar(3, 1))
    assert mcnemar_exact([False] * 5 + [True], [True] * 6).p_value == pytest.approx(0.0625)


@pytest.mark.parametrize("only_a,only_b", [(0, 0), (4, 4), (10, 2), (0, 30), (61, 40)])
def test_mcnemar_p_value_against_brute_force(only_a, only_b):
    a = [True] * only_a + [False] * only_b + [True] * 7
    b = [False] * only_a + [True] * only_b + [True] * 7
    result = mcnemar_exact(a, b)
    assert result.p_value == pytest.approx(brute_force_mcnemar(only_a, only_b))
    assert mcnemar_exact(b, a).p_value == pytest.approx(result.p_value)  # symmetric


def test_mcnemar_handles_a_full_test_set_without_underflow():
    a = [True] * 700 + [False] * 619
    b = [False] * 700 + [True] * 619
    assert 0.0 < mcnemar_exact(a, b).p_value < 0.05
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


# ----------------------------------------------------------------------------- bootstrap
def test_paired_bootstrap_interval_brackets_the_mean_difference():
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.5
    b = a | (rng.random(400) < 0.2)  # B fixes some of A's errors, never breaks a right answer
    result = paired_bootstrap(a, b, n_resamples=2000, seed=3)
    assert result.difference == pytest.approx(b.mean() - a.mean())
    assert 0 < result.low < result.difference < result.high
    assert result == paired_bootstrap(a, b, n_resamples=2000, seed=3)  # seeded


def test_paired_bootstrap_of_identical_runs_is_exactly_zero():
    scores = [1, 0, 1, 1, 0.5]
    result = paired_bootstrap(scores, scores, n_resamples=500)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)


def test_paired_interval_is_narrower_than_the_unpaired_one():
    # Two strongly correlated runs: pairing removes the shared per-question variance.
    rng = np.random.default_rng(0)
    a = rng.random(1000) < 0.6
    b = a.copy()
    flip = rng.choice(1000, 40, replace=False)
    b[flip] = True
    paired = paired_bootstrap(a, b, n_resamples=2000)
    la, ha = wilson_interval(a.sum(), a.size)
    lb, hb = wilson_interval(b.sum(), b.size)
    assert paired.high - paired.low < (ha - la + hb - lb) / 2
