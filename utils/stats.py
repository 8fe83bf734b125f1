"""The statistics an evaluation needs before anyone should believe its numbers.

An interval for an accuracy (Wilson), pass@k (Chen et al., 2021), majority vote
(self-consistency, Wang et al., 2022), and paired tests (McNemar, bootstrap): two models on the
*same* questions differ only where they disagree, so a paired test is far more sensitive than
two independent intervals. Written by hand because the course teaches them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from utils.grader import parse_number  # the number reader alone, not the reward functions above it

Z_95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (95% with the default ``z``).

    Unlike ``p +- 1.96 SE`` it stays inside [0, 1] and is honest at proportions of 0 and 1 and at small n.
    ``successes`` may be fractional (rates times ``n``); ``n = 0`` gives ``(0.0, 1.0)``.
    Taught in 05 §4.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n; got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The interval always contains p; the clamps only undo float rounding at p = 0 and p = 1.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct.

    ``1 - C(n-c, k) / C(n, k)``, a running product so that large n never overflows; using all n
    samples, not the first k, lowers the variance. Taught in 05 §4.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer by exact numeric value (``18``, ``18.00``, ``$18`` are one vote),
    written as its first occurrence. Answers that are not one number do not vote; ties go to the
    value seen first; None when nothing votes. Taught in 05 §4.
    """
    counts: dict[Fraction, int] = {}
    first_text: dict[Fraction, str] = {}
    for answer in answers:
        value = parse_number(answer) if answer is not None else None
        if value is None:
            continue
        counts[value] = counts.get(value, 0) + 1
        first_text.setdefault(value, answer)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(value for value in first_text if counts[value] == best)  # insertion order
    return first_text[winner]


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs of a paired comparison (``only_a``: questions A got right and B wrong;
    ``only_b``: the reverse) and the exact two-sided p-value."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """McNemar's exact test: under "no difference" each discordant question is a fair coin.

    The two-sided p-value is twice the binomial tail of the smaller discordant count, capped at 1,
    computed with exact integers (2**-1319 underflows a float). Taught in 05 §6.
    """
    a, b = _paired_arrays(correct_a, correct_b)
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    discordant = only_a + only_b
    if discordant == 0:
        return McNemarResult(0, 0, 1.0)
    tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1))
    p_value = min(1.0, float(Fraction(2 * tail, 2**discordant)))
    return McNemarResult(only_a, only_b, p_value)


@dataclass(frozen=True)
class BootstrapResult:
    """Mean difference B - A with its percentile interval."""

    difference: float
    low: float
    high: float


def paired_bootstrap(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Interval of ``mean(B) - mean(A)`` by resampling *questions* (both runs together), for 0/1
    scores or per-question rates. Resampling the pair keeps the correlation between runs, which
    is what makes the paired interval narrow."""
    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal, non-empty 1-D score lists; got {a.shape}, {b.shape}")
    differences = b - a
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 1000):  # chunks keep memory small for large test sets
        stop = min(start + 1000, n_resamples)
        picks = rng.integers(0, differences.size, size=(stop - start, differences.size))
        means[start:stop] = differences[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return BootstrapResult(float(differences.mean()), float(low), float(high))


def _paired_arrays(correct_a: Sequence[bool], correct_b: Sequence[bool]):
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired results must be equal-length 1-D lists; got {a.shape}, {b.shape}")
    return a, b
