"""The course's hand-written statistics against scipy and statsmodels, on seeded random inputs.

utils/stats.py writes Wilson, McNemar, pass@k and the paired bootstrap by hand because the course
teaches them; this file checks each one against a well-kept library (or, for pass@k, against its
definition counted with exact integers), so a wrong formula cannot hide behind its own tests.
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats as scipy_stats  # the dev extra: a missing one fails here rather than skipping
from statsmodels.stats import contingency_tables as contingency
from statsmodels.stats import proportion

from utils.stats import Z_95, mcnemar_exact, paired_bootstrap, pass_at_k, wilson_interval


# ----------------------------------------------------------------------------- Wilson
def test_z_95_is_the_normal_quantile():
    assert Z_95 == pytest.approx(scipy_stats.norm.ppf(0.975), rel=1e-15)


def test_wilson_matches_statsmodels_and_scipy_on_random_counts():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 5000))
        successes = int(rng.integers(0, n + 1))
        alpha = float(rng.choice([0.05, 0.1, 0.01, rng.uniform(0.001, 0.5)]))
        z = float(scipy_stats.norm.ppf(1 - alpha / 2))
        ours = wilson_interval(successes, n, z=z)
        reference = proportion.proportion_confint(successes, n, alpha=alpha, method="wilson")
        assert ours == pytest.approx(reference, abs=1e-12), (successes, n, alpha)
        ci = scipy_stats.binomtest(successes, n).proportion_ci(1 - alpha, method="wilson")
        assert ours == pytest.approx((ci.low, ci.high), abs=1e-12), (successes, n, alpha)


def test_wilson_matches_statsmodels_for_fractional_successes():
    # A mean of per-question rates times n: statsmodels takes the same float count.
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 2000))
        successes = float(rng.uniform(0, n))
        reference = proportion.proportion_confint(successes, n, alpha=0.05, method="wilson")
        assert wilson_interval(successes, n) == pytest.approx(reference, abs=1e-12)


# ----------------------------------------------------------------------------- McNemar
def random_paired_runs(rng):
    n = int(rng.integers(1, 1500))
    a = rng.random(n) < rng.uniform(0, 1)
    b = np.where(rng.random(n) < rng.uniform(0, 1), a, rng.random(n) < rng.uniform(0, 1))
    return a, b


def test_mcnemar_matches_statsmodels_and_scipy_binomtest():
    rng = np.random.default_rng(2)
    for _ in range(400):
        a, b = random_paired_runs(rng)
        ours = mcnemar_exact(a.tolist(), b.tolist())
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))],
                 [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        assert (ours.only_a, ours.only_b) == (table[0][1], table[1][0])
        reference = contingency.mcnemar(table, exact=True).pvalue
        assert ours.p_value == pytest.approx(reference, rel=1e-9, abs=1e-300), table
        discordant = ours.only_a + ours.only_b
        if discordant:
            binom = scipy_stats.binomtest(ours.only_a, discordant, 0.5).pvalue
            assert ours.p_value == pytest.approx(binom, rel=1e-9, abs=1e-300), table


def test_mcnemar_matches_statsmodels_on_small_discordant_counts():
    # Every (only_a, only_b) up to 40 each: where the exact test's tie and cap cases live.
    for only_a, only_b in itertools.product(range(41), repeat=2):
        a = [True] * only_a + [False] * only_b + [True, False]
        b = [False] * only_a + [True] * only_b + [True, False]
        table = [[1, only_a], [only_b, 1]]
        reference = contingency.mcnemar(table, exact=True).pvalue
        assert mcnemar_exact(a, b).p_value == pytest.approx(reference, rel=1e-9, abs=1e-300)


# ----------------------------------------------------------------------------- paired bootstrap
def rates_of_two_runs(rng):
    """Per-question rates of 8 samples for two correlated runs (B a shifted copy of A's skill)."""
    n = int(rng.integers(50, 300))
    skill = rng.beta(2, 2, n)
    a = rng.binomial(8, skill) / 8
    b = rng.binomial(8, np.clip(skill + rng.uniform(-0.1, 0.2), 0, 1)) / 8
    return a, b


def test_paired_bootstrap_matches_scipy_paired_percentile_bootstrap():
    # Two Monte Carlo estimates of one interval: with 20,000 resamples each, their endpoints
    # differ by about 0.05 standard errors. Resampling the runs apart (unpaired) or a 90% interval
    # moves an endpoint by 0.3 standard errors or more, far outside the tolerance.
    rng = np.random.default_rng(3)
    for case in range(12):
        a, b = rates_of_two_runs(rng)
        ours = paired_bootstrap(a, b, n_resamples=20_000, seed=case)
        reference = scipy_stats.bootstrap(
            (a, b), lambda x, y, axis: y.mean(axis) - x.mean(axis), paired=True,
            vectorized=True, method="percentile", n_resamples=20_000,
            rng=np.random.default_rng(100 + case),
        ).confidence_interval
        standard_error = np.std(b - a, ddof=1) / math.sqrt(a.size)
        assert ours.difference == pytest.approx(b.mean() - a.mean(), abs=1e-12)
        assert abs(ours.low - reference.low) < 0.12 * standard_error, case
        assert abs(ours.high - reference.high) < 0.12 * standard_error, case


# ----------------------------------------------------------------------------- pass@k
def exact_pass_at_k(n, c, k):
    """The definition, 1 - C(n-c, k) / C(n, k), in exact integers (comb is 0 when n - c < k)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_pass_at_k_equals_the_exact_combinatorial_definition():
    for n in range(1, 41):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)),
                                                           rel=1e-12, abs=1e-15), (n, c, k)
    rng = np.random.default_rng(4)
    for _ in range(200):  # large n, where the running product must not drift
        n = int(rng.integers(41, 3000))
        c = int(rng.integers(0, n + 1))
        k = int(rng.integers(1, n + 1))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)),
                                                   rel=1e-9, abs=1e-15), (n, c, k)


def test_pass_at_k_is_the_share_of_k_subsets_holding_a_correct_sample():
    # Counted over every k-subset of n samples, the correct ones at random positions.
    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(1, 11))
        correct = rng.random(n) < rng.uniform(0, 1)
        c = int(correct.sum())
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            hits = sum(any(correct[i] for i in subset) for subset in subsets)
            assert pass_at_k(n, c, k) == pytest.approx(hits / len(subsets), abs=1e-12)
