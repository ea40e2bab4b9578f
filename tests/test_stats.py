"""bidir_cli.stats against independent computations: enumeration by hand, exact fractions, textbook formulas."""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import numpy as np
import pytest

from bidir_cli.compare.stats import (
    VarianceComponents,
    compare_runs,
    detectable_difference,
    holm,
    run_level_test,
    runs_needed,
    seed_mean_std,
    sign_flip_test,
)


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


# ---------------------------------------------------------------------------------------------
# The sign-flip test's dual interval


def test_sign_flip_interval_is_the_set_the_enumerated_test_does_not_reject():
    # 9 queries: all 512 assignments are enumerated, so the interval is the exact inversion. Just inside
    # each end the hand-enumerated test must not reject, just outside it must.
    diffs = np.random.default_rng(11).normal(0.05, 0.2, size=9)
    result = sign_flip_test([diffs], permutations=10_000, rng=np.random.default_rng(0), alpha=0.05)
    assert result.exact and result.flips == 512
    low, high = result.ci
    assert low < diffs.mean() < high
    step = 1e-7
    for inside in (low + step, high - step, diffs.mean()):
        assert enumerated_p([list(diffs - inside)], number=float) > 0.05
    for outside in (low - step, high + step):
        assert enumerated_p([list(diffs - outside)], number=float) <= 0.05


def test_stratified_sign_flip_interval_inverts_the_stratified_test():
    rng = np.random.default_rng(12)
    strata = [rng.normal(0.1, 0.2, size=4), rng.normal(0.0, 0.05, size=5)]
    result = sign_flip_test(strata, permutations=10_000, rng=np.random.default_rng(0), alpha=0.1)
    low, high = result.ci
    for inside, outside in ((low + 1e-7, low - 1e-7), (high - 1e-7, high + 1e-7)):
        assert enumerated_p([list(s - inside) for s in strata], number=float) > 0.1
        assert enumerated_p([list(s - outside) for s in strata], number=float) <= 0.1


def test_sign_flip_mark_and_interval_always_agree():
    rng = np.random.default_rng(13)
    agreed = 0
    for _ in range(300):
        n = int(rng.integers(3, 60))
        # nDCG-like differences: many exact zeros and repeated values, sometimes a clear effect.
        diffs = rng.choice([0.0, 0.0, 0.0, 0.1, -0.1, 0.25, -0.25, 0.5, -0.5, 1.0], size=n) + rng.choice([0, 0.2])
        result = sign_flip_test([diffs], permutations=2_000, rng=rng)
        assert result.significant == (not result.ci[0] <= 0 <= result.ci[1])
        assert result.significant == (result.p <= 0.05)
        agreed += result.significant
    assert 30 < agreed < 270  # both outcomes occur, so the agreement was tested both ways


def test_sign_flip_exact_p_with_many_zero_differences_enumerates_the_non_zero_ones():
    # 8 non-zero differences among 24: 2**24 assignments are too many, 2**8 are not; the p-value stays exact.
    nonzero = np.random.default_rng(14).normal(0.1, 0.2, size=8)
    diffs = np.concatenate([nonzero, np.zeros(16)])
    result = sign_flip_test([diffs], permutations=10_000, rng=np.random.default_rng(0))
    assert result.exact
    assert result.p == enumerated_p([list(nonzero)], number=float)


def test_exact_enumeration_is_chunked_and_matches_a_convolution():
    # 20 non-zero integer-valued differences, all 2**20 assignments enumerated. The old code built a
    # 2**20 x 20 int64 matrix (167 MiB); the chunked one stays small. Independent oracle: the null
    # distribution of sum(s_i d_i) by polynomial multiplication (counts of each integer sum).
    import tracemalloc

    values = np.random.default_rng(15).integers(1, 10, size=20)
    counts = {0: 1}
    for v in values:
        nxt: dict[int, int] = {}
        for total, c in counts.items():
            for signed in (v, -v):
                nxt[total + signed] = nxt.get(total + signed, 0) + c
        counts = nxt
    observed = int(values.sum() - 2 * values[:7].sum())  # some negative signs, a p-value away from 0
    expected = sum(c for total, c in counts.items() if abs(total) >= abs(observed)) / 2**20
    diffs = values.astype(float) / 10
    diffs[:7] *= -1

    tracemalloc.start()
    result = sign_flip_test([diffs], permutations=2**20, rng=np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.exact and result.flips == 2**20
    assert result.p == pytest.approx(expected, abs=1e-12)
    assert peak < 40 * 2**20


# ---------------------------------------------------------------------------------------------
# The run-level t test


def satterthwaite_df(terms: list[tuple[float, float]]) -> float:
    """Satterthwaite's df by hand: V^2 / sum t^2 / nu, within [min nu, sum nu]."""
    terms = [(t, nu) for t, nu in terms if t > 0]
    variance = sum(t for t, _ in terms)
    df = variance**2 / sum(t * t / nu for t, nu in terms)
    return min(max(df, min(nu for _, nu in terms)), sum(nu for _, nu in terms))


def test_run_level_test_is_welch_on_run_means_when_runs_only_shift():
    # Each run adds a constant to every query, the same query effects on both sides: the per-query
    # differences are all equal (no interaction, no per-query noise), so the statistic is Welch's t on
    # the run means, with Welch's degrees of freedom (Satterthwaite's formula for two terms).
    from scipy import stats

    rng = np.random.default_rng(20)
    queries = rng.uniform(0, 1, size=40)
    system = queries + rng.normal(0.03, 0.01, size=(3, 1))
    baseline = queries + rng.normal(0.0, 0.02, size=(4, 1))
    result = run_level_test([system], [baseline], alpha=0.05)
    runs_s, runs_b = system.mean(axis=1), baseline.mean(axis=1)
    welch = stats.ttest_ind(runs_s, runs_b, equal_var=False)
    assert result.components.interaction == 0
    assert result.diff == pytest.approx(system.mean() - baseline.mean())
    assert result.diff / result.se == pytest.approx(welch.statistic)
    df = satterthwaite_df([(np.var(runs_s, ddof=1) / 3, 2), (np.var(runs_b, ddof=1) / 4, 3)])
    assert result.df == pytest.approx(df) and result.df == pytest.approx(welch.df)
    assert result.p == pytest.approx(welch.pvalue)
    assert result.p == pytest.approx(2 * stats.t.sf(abs(welch.statistic), df))
    half = stats.t.ppf(0.975, df) * result.se
    assert result.ci == (pytest.approx(result.diff - half), pytest.approx(result.diff + half))


def test_runs_that_only_shift_are_exactly_as_conservative_as_welchs_test():
    # Three runs a side that only shift: the run-level test is Welch's t (scipy), decision for decision, and both
    # reject about 3.5% of null comparisons (the bias-corrected df once lifted that to 5%, and was
    # anticonservative where an interaction joins the run shifts: tests/test_calibration.py). 6,000 comparisons.
    from scipy import stats

    rng = np.random.default_rng(24)
    queries = rng.uniform(0, 1, size=20)
    shifts = rng.normal(0, 0.01, size=(6_000, 2, 3, 1))
    ours = np.array([run_level_test([queries + s], [queries + b]).p for s, b in shifts])
    welch = stats.ttest_ind(shifts[:, 0, :, 0], shifts[:, 1, :, 0], axis=1, equal_var=False).pvalue
    assert ours == pytest.approx(welch, rel=1e-6)
    assert 0.025 <= np.mean(ours <= 0.05) <= 0.045


def test_run_level_test_is_the_paired_t_when_runs_agree():
    # Runs of one configuration are identical; the configurations differ query by query (interaction only):
    # the run terms vanish and the test is the paired t test on the queries, n - 1 degrees of freedom.
    from scipy import stats

    rng = np.random.default_rng(21)
    queries = rng.uniform(0, 1, size=35)
    system_scores = queries + rng.normal(0.02, 0.1, size=35)
    system, baseline = np.tile(system_scores, (3, 1)), np.tile(queries, (2, 1))
    result = run_level_test([system], [baseline], alpha=0.05)
    paired = stats.ttest_rel(system_scores, queries)
    assert result.df == pytest.approx(34)
    assert result.p == pytest.approx(paired.pvalue)
    assert result.ci == pytest.approx(tuple(paired.confidence_interval(0.95)))


def run_level_by_hand(system: list[np.ndarray], baseline: list[np.ndarray]) -> tuple[float, float, float]:
    """The run-level difference, standard error and df, from the formulas written out with plain loops."""
    strata, sides = len(system), (system, baseline)
    runs = [len(side[0]) for side in sides]
    between, residual = [], []
    for side, r in zip(sides, runs, strict=True):
        run_means = [sum(sum(scores[j]) / len(scores[j]) for scores in side) / strata for j in range(r)]
        centre = sum(run_means) / r
        between.append(sum((m - centre) ** 2 for m in run_means) / (r - 1))
        per_stratum = []
        for scores in side:
            n = len(scores[0])
            row = [sum(scores[j]) / n for j in range(r)]
            col = [sum(scores[j][i] for j in range(r)) / r for i in range(n)]
            grand = sum(row) / r
            ss = sum((scores[j][i] - row[j] - col[i] + grand) ** 2 for j in range(r) for i in range(n))
            per_stratum.append(ss / ((r - 1) * (n - 1)))
        residual.append(per_stratum)
    interaction, paired_terms = 0.0, []
    for k in range(strata):
        n = len(system[k][0])
        d = [
            sum(system[k][j][i] for j in range(runs[0])) / runs[0]
            - sum(baseline[k][j][i] for j in range(runs[1])) / runs[1]
            for i in range(n)
        ]
        q = statistics.variance(d)
        paired_terms.append((q / (strata**2 * n), n - 1))
        interaction += (q - residual[0][k] / runs[0] - residual[1][k] / runs[1]) / (strata**2 * n)
    interaction = max(interaction, 0.0)
    variance = between[0] / runs[0] + between[1] / runs[1] + interaction
    paired_df = sum(t for t, _ in paired_terms) ** 2 / sum(t * t / nu for t, nu in paired_terms)
    terms = [(b / r, r - 1) for b, r in zip(between, runs, strict=True)] + [(interaction, paired_df)]
    diff = sum(system[k].mean() - baseline[k].mean() for k in range(strata)) / strata
    return diff, math.sqrt(variance), satterthwaite_df(terms)


@pytest.mark.parametrize("interaction_sd", [0.0, 0.15])
def test_run_level_test_matches_the_formulas_by_hand_over_two_datasets(interaction_sd):
    from scipy import stats

    rng = np.random.default_rng(22)
    system, baseline = [], []
    for n in (12, 30):
        queries = rng.uniform(0, 1, size=n)
        for side, runs, shift in ((system, 3, 0.02), (baseline, 4, 0.0)):
            side.append(
                queries
                + shift
                + rng.normal(0, interaction_sd, size=n)
                + rng.normal(0, 0.01, size=(runs, 1))
                + rng.normal(0, 0.05, size=(runs, n))
            )
    result = run_level_test(system, baseline, alpha=0.05)
    diff, se, df = run_level_by_hand(system, baseline)
    assert (result.diff, result.se, result.df) == (pytest.approx(diff), pytest.approx(se), pytest.approx(df))
    assert (result.components.interaction > 0) == (interaction_sd > 0)
    assert result.p == pytest.approx(2 * stats.t.sf(abs(diff) / se, df))
    half = stats.t.ppf(0.975, df) * se
    assert result.ci == (pytest.approx(diff - half), pytest.approx(diff + half))
    assert result.significant == (result.p <= 0.05) == (not result.ci[0] <= 0 <= result.ci[1])


def test_run_level_variance_is_unbiased_under_the_crossed_model():
    # Simulate the model the docstring states: query, query x configuration, run shift, per-query run noise.
    # The mean of the estimated variance must match the variance of the estimate over repetitions.
    rng = np.random.default_rng(23)
    n, runs, repetitions = 40, 3, 3_000
    estimates, variances = [], []
    for _ in range(repetitions):
        queries = rng.normal(0, 1, size=n)
        sides = [
            queries
            + rng.normal(0, 0.3, size=n)
            + rng.normal(0, 0.1, size=(runs, 1))
            + rng.normal(0, 0.5, size=(runs, n))
            for _ in range(2)
        ]
        result = run_level_test([sides[0]], [sides[1]])
        estimates.append(result.diff)
        variances.append(result.se**2)
    # Truth: 2 (0.3^2 / n + 0.1^2 / R + 0.5^2 / (R n)). The estimate is unbiased but for the truncation of the
    # interaction at 0 (slightly upward); 3,000 repetitions measure its mean to about 1.5%.
    truth = 2 * (0.3**2 / n + 0.1**2 / runs + 0.5**2 / (runs * n))
    assert np.var(estimates) == pytest.approx(truth, rel=0.08)
    assert 0.96 * truth <= np.mean(variances) <= 1.06 * truth


def test_run_level_test_needs_two_runs_per_side():
    with pytest.raises(ValueError, match="at least 2 runs"):
        run_level_test([np.zeros((1, 5))], [np.zeros((3, 5))])


# ---------------------------------------------------------------------------------------------
# Power


@pytest.mark.parametrize("df", [3.0, 12.0, math.inf])
def test_detectable_difference_has_the_promised_power_by_simulation(df):
    # Independent check: draw t statistics (Z + ncp) / sqrt(chi2_df / df) at ncp = mdd / se and count rejections.
    from scipy import stats

    se = 0.01
    mdd = detectable_difference(se**2, df, alpha=0.05, power=0.8)
    rng = np.random.default_rng(30)
    z = rng.normal(size=400_000) + mdd / se
    t = z if math.isinf(df) else z / np.sqrt(rng.chisquare(df, size=z.size) / df)
    critical = stats.norm.ppf(0.975) if math.isinf(df) else stats.t.ppf(0.975, df)
    assert np.mean(np.abs(t) > critical) == pytest.approx(0.8, abs=0.004)
    if math.isinf(df):
        # The normal case by hand: Phi(ncp - 1.96) + Phi(-ncp - 1.96) = 0.8, about z(0.975) + z(0.8) = 2.80.
        ncp = mdd / se
        assert stats.norm.cdf(ncp - 1.959964) + stats.norm.cdf(-ncp - 1.959964) == pytest.approx(0.8, abs=1e-6)


def components(between: float, interaction: float = 0.0, interaction_df: float = math.inf) -> VarianceComponents:
    return VarianceComponents(
        runs=(3, 3),
        between_runs=(between, between),
        query_noise=(0.0, 0.0),
        interaction=interaction,
        interaction_df=interaction_df,
    )


def test_runs_needed_is_the_first_number_of_runs_with_80_percent_power():
    from scipy import stats

    c = components(between=0.0004, interaction=1e-6, interaction_df=200)
    needed = runs_needed(c, target=0.01)
    assert needed.runs is not None and needed.text == str(needed.runs)

    def power(r: int) -> float:
        # By hand: variance 2 S / R + I, Satterthwaite df, power from scipy.stats' non-central t.
        v = 2 * 0.0004 / r + 1e-6
        df = v**2 / (2 * (0.0004 / r) ** 2 / (r - 1) + 1e-12 / 200)
        critical = stats.t.ppf(0.975, df)
        return stats.nct.sf(critical, df, 0.01 / math.sqrt(v)) + stats.nct.cdf(-critical, df, 0.01 / math.sqrt(v))

    assert power(needed.runs) >= 0.8 > power(needed.runs - 1)
    # Normal theory gives the ballpark: R = 2 S (z + z)^2 / (target^2 - (z + z)^2 I).
    assert needed.runs >= 2 * 0.0004 * 2.8016**2 / (0.01**2 - 2.8016**2 * 1e-6)


def test_runs_needed_says_when_query_sampling_alone_is_too_wide_or_runs_too_many():
    # Query sampling alone: 2.8 * sqrt(I) = 0.014 > 0.01, which no number of runs of these queries can beat.
    assert runs_needed(components(between=1e-4, interaction=2.5e-5, interaction_df=300), 0.01).text == "not reachable"
    assert runs_needed(components(between=1e-4, interaction=2.5e-5, interaction_df=300), 0.02).runs is not None
    # Reachable in principle, but past 100 runs per side.
    assert runs_needed(components(between=1e-3), 0.005).text == ">100"
    assert runs_needed(components(between=1e-3), 0.005, max_runs=1_000).runs > 100


# ---------------------------------------------------------------------------------------------
# compare_runs: which test, and its power line


def test_compare_runs_uses_the_run_level_t_with_two_runs_a_side_and_the_sign_flip_test_with_one():
    rng = np.random.default_rng(40)
    strata = [rng.uniform(0, 1, size=(3, 30)), rng.uniform(0, 1, size=(3, 50))]
    other = [s + rng.normal(0.02, 0.05, size=s.shape) for s in strata]
    runs = compare_runs(other, strata, permutations=1_000, rng=rng, target_diff=0.01)
    assert (runs.test, runs.unit, runs.exact, runs.flips) == ("run_t", "run", False, None)
    assert runs.df is not None and runs.components is not None
    assert runs.mdd == pytest.approx(detectable_difference(runs.se**2, runs.df))

    single = compare_runs([s[:1] for s in other], strata, permutations=1_000, rng=rng, target_diff=0.01)
    assert (single.test, single.unit, single.df, single.components) == ("sign_flip", "query", None, None)
    assert single.runs_needed.runs is None and single.runs_needed.text == "unknown"
    # The query-sampling standard error of a stratified mean of paired differences, by hand.
    diffs = [o[0] - s.mean(axis=0) for o, s in zip(other, strata, strict=True)]
    assert single.se == pytest.approx(math.sqrt(sum(np.var(d, ddof=1) / d.size for d in diffs)) / 2)
    assert single.diff == pytest.approx(np.mean([d.mean() for d in diffs]))
