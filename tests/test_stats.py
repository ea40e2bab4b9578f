"""bidir_cli.stats against independent computations: enumeration by hand, exact fractions, textbook formulas."""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import numpy as np
import pytest

from bidir_cli.stats import bootstrap_ci, holm, seed_mean_std, sign_flip_test


def enumerated_p(strata: list[list[float]], number: type = Fraction) -> float:
    """The exact two-sided sign-flip p-value, by a plain loop over every sign assignment.

    The statistic is the mean over strata of each stratum's mean difference. Zeros are kept: the
    loop knows nothing of the shortcuts the implementation takes. Exact arithmetic (Fraction) by
    default, so that ties are ties; floats are enough, and faster, where no two sums can tie.
    """
    exact = [[number(x) for x in s] for s in strata]
    flat = [x for s in exact for x in s]

    def statistic(signs: tuple[int, ...]) -> Fraction:
        total, i = number(0), 0
        for s in exact:
            total += sum(sign * x for sign, x in zip(signs[i : i + len(s)], s, strict=True)) / len(s)
            i += len(s)
        return abs(total / len(exact))

    observed = statistic((1,) * len(flat))
    assignments = list(itertools.product((1, -1), repeat=len(flat)))
    return sum(statistic(signs) >= observed for signs in assignments) / len(assignments)


def test_sign_flip_p_of_8_queries_equals_enumerating_all_256_sign_flips():
    diffs = np.random.default_rng(1).normal(0.05, 0.1, size=8)
    result = sign_flip_test([diffs], permutations=10_000, rng=np.random.default_rng(0))
    assert result.exact and result.flips == 256
    assert result.p == enumerated_p([list(diffs)])
    assert 0 < result.p < 1


def test_sign_flip_exact_p_with_ties_and_zero_differences():
    # nDCG differences repeat and are often exactly zero; ties must count as "at least as extreme".
    diffs = [0.25, -0.25, 0.5, 0.0, 0.125, 0.0, 0.25, 0.5, -0.125, 0.0]
    result = sign_flip_test([np.array(diffs)], permutations=10_000, rng=np.random.default_rng(0))
    assert result.exact
    assert result.p == enumerated_p([diffs])


def test_sign_flip_monte_carlo_p_is_close_to_the_exact_p():
    diffs = np.random.default_rng(3).normal(0.03, 0.1, size=14)  # 16,384 assignments > 10,000 permutations
    exact = enumerated_p([list(diffs)], number=float)
    result = sign_flip_test([diffs], permutations=10_000, rng=np.random.default_rng(0))
    assert not result.exact and result.flips == 10_000
    assert 0.05 < exact < 0.95  # a p-value away from the edges, where the check has power
    # Four standard errors of a binomial proportion, plus the +1 of the (count + 1) / (n + 1) convention.
    assert abs(result.p - exact) <= 4 * math.sqrt(exact * (1 - exact) / 10_000) + 1 / 10_001


def test_large_effect_is_significant_and_identical_scores_give_p_1():
    rng = np.random.default_rng(0)
    large = sign_flip_test([rng.normal(0.2, 0.1, size=50)], permutations=10_000, rng=rng)
    assert large.p == 1 / 10_001  # no random assignment reaches it: the smallest Monte Carlo p-value
    assert sign_flip_test([np.zeros(50)], permutations=10_000, rng=rng).p == 1.0


def test_stratified_sign_flip_equals_enumeration_over_two_datasets():
    rng = np.random.default_rng(5)
    strata = [rng.normal(0.1, 0.2, size=3), rng.normal(-0.02, 0.05, size=4)]
    result = sign_flip_test(strata, permutations=10_000, rng=np.random.default_rng(0))
    assert result.exact and result.flips == 2**7
    assert result.p == enumerated_p([list(s) for s in strata])
    # Weighting matters: pooling the 7 queries into one dataset is a different test.
    assert result.p != enumerated_p([[*strata[0], *strata[1]]])


def test_sign_flip_p_is_reproducible_from_the_seed():
    diffs = [np.random.default_rng(2).normal(0.01, 0.1, size=40)]
    p = [sign_flip_test(diffs, 2_000, np.random.default_rng(seed)).p for seed in (7, 7, 8)]
    assert p[0] == p[1] != p[2]


def test_bootstrap_ci_width_matches_the_standard_error_and_shrinks_with_queries():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 400):
        diffs = rng.normal(0.02, 0.1, size=n)
        low, high = bootstrap_ci([diffs[None, :]], [np.zeros((1, n))], 20_000, np.random.default_rng(1))
        # The bootstrap standard error of a mean is the population deviation over sqrt(n).
        se = np.std(diffs) / math.sqrt(n)
        assert high - low == pytest.approx(2 * 1.96 * se, rel=0.05)
        assert low < diffs.mean() < high
        widths.append(high - low)
    assert widths[1] == pytest.approx(widths[0] / 2, rel=0.1)


def test_bootstrap_ci_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_difference, trials = 0.03, 200
    covered = 0
    for _ in range(trials):
        baseline = rng.uniform(0, 1, size=(1, 50))
        system = baseline + rng.normal(true_difference, 0.1, size=(1, 50))
        low, high = bootstrap_ci([system], [baseline], 2_000, rng)
        covered += low <= true_difference <= high
    # Percentile intervals of a mean of 50 run slightly narrow; 200 trials give a standard error of 1.5%.
    assert 0.88 <= covered / trials <= 0.99


def test_stratified_bootstrap_matches_the_stratified_standard_error():
    rng = np.random.default_rng(0)
    # Two datasets of very different size and spread: pooling their queries would give another interval.
    strata = [rng.normal(0.05, 0.3, size=40), rng.normal(0.0, 0.05, size=400)]
    low, high = bootstrap_ci([s[None, :] for s in strata], [np.zeros((1, s.size)) for s in strata], 20_000, rng)
    # Var(mean over K datasets of dataset means) = sum_k var_k / n_k / K^2, resampling within each dataset.
    se = math.sqrt(sum(np.var(s) / s.size for s in strata)) / len(strata)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.05)
    assert low < np.mean([s.mean() for s in strata]) < high


def test_bootstrap_resamples_seeds_so_seed_noise_is_in_the_interval():
    # Every query gains exactly 0.2 under seed 0 and 0.3 under seed 1: resampling queries alone would give
    # the point interval [0.25, 0.25]. Resampling the two seeds gives 0.2, 0.25, 0.3 with probability
    # 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles are 0.2 and 0.3.
    baseline = np.random.default_rng(0).uniform(0, 0.5, size=(1, 30))
    system = np.vstack([baseline[0] + 0.2, baseline[0] + 0.3])
    low, high = bootstrap_ci([system], [baseline], 10_000, np.random.default_rng(1))
    assert (low, high) == (pytest.approx(0.2, abs=1e-12), pytest.approx(0.3, abs=1e-12))
    # The same on the baseline's side, with the sign reversed.
    low, high = bootstrap_ci([baseline], [system], 10_000, np.random.default_rng(1))
    assert (low, high) == (pytest.approx(-0.3, abs=1e-12), pytest.approx(-0.2, abs=1e-12))


def test_bootstrap_of_identical_runs_is_zero():
    scores = np.random.default_rng(0).uniform(size=(1, 20))
    assert bootstrap_ci([scores], [scores.copy()], 1_000, np.random.default_rng(0)) == (0.0, 0.0)


def holm_by_hand(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm's procedure as stated in the paper: walk up the sorted p-values until one fails alpha / (m - i)."""
    m = len(pvalues)
    rejected = [False] * m
    for i, (index, p) in enumerate(sorted(enumerate(pvalues), key=lambda item: item[1])):
        if p > alpha / (m - i):
            break
        rejected[index] = True
    return rejected


def test_holm_on_a_worked_example():
    adjusted, rejected = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # Sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops the walk (0.04 <= 0.05 is not reached).
    assert rejected.tolist() == [True, False, False, True]
    # Adjusted: 4*0.005, 3*0.01, 2*0.03, and max(0.06, 1*0.04) for the last (adjusted p-values never decrease).
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_matches_the_step_down_procedure_on_random_families():
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = int(rng.integers(1, 15))
        p = (rng.uniform(0, 0.1, size=m) ** rng.uniform(0.5, 2)).tolist()
        adjusted, rejected = holm(p, alpha=0.05)
        assert rejected.tolist() == holm_by_hand(p, 0.05)
        assert all(p_i <= a <= 1 for p_i, a in zip(p, adjusted, strict=True))


def test_seed_mean_std_is_the_sample_deviation():
    values = [0.51, 0.55, 0.49]
    assert seed_mean_std(values) == (pytest.approx(statistics.mean(values)), pytest.approx(statistics.stdev(values)))
    assert seed_mean_std([0.5]) == (0.5, None)
