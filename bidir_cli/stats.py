"""Significance tests, confidence intervals and power for ``bidir compare``.

The question is always about configurations: does configuration B score higher than configuration
A, over training runs and over queries like these? Scores come split into *strata* (one per
dataset); each side of a comparison holds, per stratum, a ``(runs, queries)`` array of per-query
scores, the same queries in the same order on both sides. A statistic over several strata is the
mean over strata of each stratum's mean, so that every dataset weighs the same, exactly as the
"mean" row of a results table does; one stratum is the ordinary per-dataset case.

Two tests, each with the confidence interval that is its exact dual (the interval holds the
differences the test does not reject, so a significance mark and an interval never disagree):

* :func:`run_level_test`, when both sides hold at least two runs. The unit of replication is the
  training run; the error term holds run-to-run variation, per-query run noise and query
  sampling, including a query x configuration interaction. A t test and t interval from one
  standard error and one (Satterthwaite) number of degrees of freedom.
* :func:`sign_flip_test`, when a side holds a single run: the paired randomization test on
  per-query differences, with the interval obtained by inverting it. It covers query sampling
  only: one run per side says nothing about how much another run would differ.

:func:`compare_runs` picks the test and adds the power line: the smallest difference the
comparison detects with 80% power (:func:`detectable_difference`) and the runs per side a target
difference needs (:func:`runs_needed`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

# Rows of sign assignments per chunk are sized so that one chunk holds about this many numbers (8 MiB),
# which keeps memory flat however many queries or permutations are asked for.
_CHUNK_ELEMENTS = 1 << 20

# Interval ends within this fraction of max |difference| count as equal: sums of the same numbers in
# another order differ by float rounding, and an exact tie (common with nDCG, whose per-query values
# repeat) must never be lost to it.
_TIE_TOLERANCE = 1e-9

ALPHA = 0.05  # two-sided level of every test; its intervals cover 1 - ALPHA
POWER = 0.8  # the power that the minimum detectable difference and the runs needed are for
MAX_RUNS = 100  # runs per side beyond which runs_needed answers ">MAX_RUNS"


# ---------------------------------------------------------------------------------------------
# One run on a side: the paired sign-flip test and its inverted interval


@dataclass(frozen=True)
class SignFlipResult:
    """The outcome of a paired randomization test and its dual interval.

    Attributes:
        p: Two-sided p-value.
        exact: True when the p-value is exact (every sign assignment of the non-zero differences
            was enumerated), False for a Monte Carlo estimate.
        flips: Sign assignments evaluated.
        ci: The differences ``delta`` that the test does not reject when applied to
            ``diffs - delta``, at level ``alpha``: the confidence interval that is the test's dual
            (ends may be infinite when there are too few queries to reject anything).
        significant: The test rejects a zero difference (p <= alpha); exactly when ``ci`` excludes 0.
    """

    p: float
    exact: bool
    flips: int
    ci: tuple[float, float]
    significant: bool


def sign_flip_test(
    diffs: Sequence[np.ndarray], permutations: int, rng: np.random.Generator, alpha: float = ALPHA
) -> SignFlipResult:
    """Two-sided paired randomization (sign-flip) test of a zero mean difference, and its dual interval.

    Under the null hypothesis the two systems are exchangeable on every query, so each per-query
    difference is as likely to have had the opposite sign. The statistic is the absolute mean over
    strata of the per-stratum mean difference: ``|sum_i w_i d_i|`` with ``w_i = 1 / (strata *
    queries in i's stratum)``; flipping signs query by query flips them within every stratum.

    Sign assignments (rows of 0/1 flips, the observed assignment among them) are evaluated in
    chunks of about 8 MiB, so memory stays flat for any ``permutations``:

    * if ``2**n <= permutations`` (n queries), all ``2**n`` assignments are enumerated;
    * else, if ``2**m <= permutations`` (m queries whose difference is not zero), all ``2**m``
      assignments of those queries are enumerated ``permutations // 2**m`` times, the zero
      differences getting random signs (they matter for the interval only);
    * otherwise ``permutations`` random assignments are drawn and ``p = (count + 1) /
      (permutations + 1)``, the Monte Carlo p-value that counts the observed assignment and so
      never reports 0 (Phipson & Smyth 2010).

    In the first two cases ``p = count / rows`` is exact: a zero difference flipped changes
    nothing, so the null distribution over all ``2**n`` assignments is the one over ``2**m``,
    repeated.

    The interval inverts the same test with the same assignments: ``delta`` is in it when the
    test applied to ``d - delta`` does not reject. For one assignment that flips the queries F,
    the flipped statistic ``|sum_i w_i s_i (d_i - delta)|`` reaches the observed one exactly for
    ``delta`` between the weighted mean of ``d`` over F and over the other queries (solve
    ``|a - b delta| = |A - W delta|``; the point estimate ``A / W`` lies between the two roots).
    The count of assignments at least as extreme is thus a sum of indicators of intervals that all
    hold the estimate, and the non-rejected set is the interval from the ``need``-th smallest
    lower root to the ``need``-th largest upper root, ``need`` being the smallest count the test
    does not reject. Rejection and "0 outside the interval" are one integer comparison.

    Args:
        diffs: Per-query differences (system minus baseline), one 1-D array per stratum.
        permutations: Sign assignments to evaluate when enumeration would take more.
        rng: Source of the random signs.
        alpha: Two-sided level of the test; the interval covers ``1 - alpha``.

    Returns:
        The p-value, whether it is exact, the interval and the decision.
    """
    strata = [np.asarray(x, dtype=float).ravel() for x in diffs]
    d = np.concatenate(strata)
    w = np.concatenate([np.full(s.size, 1.0 / (len(strata) * s.size)) for s in strata])
    n = d.size
    total_weight = float(w.sum())
    observed = float(w @ d)
    tolerance = _TIE_TOLERANCE * float(np.abs(d).max())
    smallest = float(w.min()) / 2  # below this, a flipped weight is zero: no query (or every query) flipped
    # The queries whose difference is not zero first (m of them): an assignment is then a row of n bits,
    # bit j flipping query j, packed little-endian into bytes (bit j is bit j % 8 of byte j // 8).
    order = np.argsort(d == 0, kind="stable")
    m = int(np.count_nonzero(d))
    width = (n + 7) // 8
    # Look-up tables, entry 256 j + b: the sum of w*d (and of w) over the queries of byte j whose bits are set
    # in b. A row's flipped sums are then `width` look-ups, not n multiplications (and no BLAS threads to
    # contend for the cores). Built bit by bit: the entries with bit k set are those without it, plus query k.
    tables = []
    for vector in (w * d, w):
        padded = np.zeros(width * 8)
        padded[:n] = vector[order]
        table = np.zeros((width, 1))
        for k in range(8):
            table = np.concatenate([table, table + padded[k::8, None]], axis=1)
        tables.append(table.ravel())
    byte_offset = 256 * np.arange(width, dtype=np.intp)

    if n < 63 and 1 << n <= permutations:
        rows, exact, pattern_bits = 1 << n, True, n
    elif m < 63 and 1 << m <= permutations:
        rows, exact, pattern_bits = (permutations >> m) << m, True, m
    else:
        rows, exact, pattern_bits = permutations, False, 0
    # p = (count + extra) / denominator; the test does not reject while count >= need.
    extra, denominator = (0, rows) if exact else (1, permutations + 1)
    need = math.floor(alpha * denominator - extra) + 1
    # In the byte holding bit pattern_bits, the bits below it come from the enumerated pattern.
    pattern_mask = np.zeros(width, dtype=np.uint8)
    pattern_mask[: pattern_bits // 8] = 0xFF
    if pattern_bits % 8:
        pattern_mask[pattern_bits // 8] = (1 << pattern_bits % 8) - 1

    count = 0
    lows, highs = np.empty(0), np.empty(0)
    chunk = max(1, _CHUNK_ELEMENTS // (2 * width))
    for start in range(0, rows, chunk):
        size = min(chunk, rows - start)
        # Random bytes: fair coins, eight per byte; padding bits past n weigh nothing.
        flips = np.frombuffer(rng.bytes(size * width), dtype=np.uint8).reshape(size, width) if pattern_bits < n else 0
        if exact:
            # Row t enumerates the pattern t mod 2**pattern_bits (t = 0 is the observed assignment).
            pattern = np.arange(start, start + size, dtype=np.int64) % (1 << pattern_bits)
            enumerated = pattern.astype("<u8").view(np.uint8).reshape(size, 8)
            enumerated = np.pad(enumerated, ((0, 0), (0, max(0, width - 8))))[:, :width]
            flips = (enumerated & pattern_mask) | (flips & ~pattern_mask)
        index = flips + byte_offset
        flipped_wd, flipped_w = (np.take(table, index).sum(axis=1) for table in tables)
        with np.errstate(divide="ignore", invalid="ignore"):
            flipped_mean = flipped_wd / flipped_w
            kept_mean = (observed - flipped_wd) / (total_weight - flipped_w)
        low = np.minimum(flipped_mean, kept_mean) - tolerance
        high = np.maximum(flipped_mean, kept_mean) + tolerance
        # No query flipped, or every one: the statistic equals the observed one whatever delta is.
        everywhere = (flipped_w < smallest) | (flipped_w > total_weight - smallest)
        low[everywhere], high[everywhere] = -np.inf, np.inf
        count += int(np.count_nonzero((low <= 0) & (high >= 0)))
        if need > 0:
            lows = np.concatenate([lows, low])
            highs = np.concatenate([highs, high])
            if lows.size > need:
                lows = np.partition(lows, need - 1)[:need]
                highs = np.partition(highs, highs.size - need)[-need:]

    ci = (float(lows.max()), float(highs.min())) if need > 0 else (-math.inf, math.inf)
    return SignFlipResult(p=(count + extra) / denominator, exact=exact, flips=rows, ci=ci, significant=count < need)


def bootstrap_ci(
    system: Sequence[np.ndarray],
    baseline: Sequence[np.ndarray],
    resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean difference, system minus baseline.

    Each resample draws, in this order:

    1. the seeds of each side, with replacement, independently for the two sides (their runs are
       not paired) and once for all strata (one run covers every dataset), so that seed-to-seed
       noise is part of the interval; with one seed this step changes nothing;
    2. the queries of each stratum, with replacement, the same queries for both sides (the scores
       are paired by query).

    The statistic of a resample is the mean over strata of the mean over its queries of the
    difference of the seed-averaged scores: the quantity the table reports.

    Args:
        system: Per-query scores of the system, one ``(seeds, queries)`` array per stratum.
        baseline: The baseline's scores, the same shape per stratum but for the number of seeds.
        resamples: Bootstrap resamples to draw.
        rng: Source of the resampling.
        level: Coverage of the interval.

    Returns:
        The interval's lower and upper ends.
    """
    system = [np.atleast_2d(np.asarray(s, dtype=float)) for s in system]
    baseline = [np.atleast_2d(np.asarray(b, dtype=float)) for b in baseline]
    system_seeds, baseline_seeds = system[0].shape[0], baseline[0].shape[0]
    stats = np.empty(resamples)
    rows = max(1, _CHUNK_ELEMENTS // max(s.shape[1] for s in system))
    for start in range(0, resamples, rows):
        size = min(rows, resamples - start)
        # Resampling seeds with replacement = weighting each seed by how often it was drawn.
        system_weights = rng.multinomial(system_seeds, np.full(system_seeds, 1 / system_seeds), size=size)
        baseline_weights = rng.multinomial(baseline_seeds, np.full(baseline_seeds, 1 / baseline_seeds), size=size)
        total = np.zeros(size)
        for s, b in zip(system, baseline, strict=True):
            queries = rng.integers(0, s.shape[1], size=(size, s.shape[1]))
            # Each seed's mean over the resampled queries, then the seed-weighted difference (all linear,
            # so this equals resampling the queries of the seed-averaged differences).
            system_means = np.stack([scores[queries].mean(axis=1) for scores in s], axis=1)
            baseline_means = np.stack([scores[queries].mean(axis=1) for scores in b], axis=1)
            total += (system_weights * system_means).sum(axis=1) / system_seeds
            total -= (baseline_weights * baseline_means).sum(axis=1) / baseline_seeds
        stats[start : start + size] = total / len(system)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction for a family of tests (Holm 1979).

    Sorted ascending, the i-th smallest p-value (i from 0) is rejected when it and every smaller
    one satisfy ``p <= alpha / (m - i)``. Equivalently, its adjusted p-value is
    ``max over j <= i of min(1, (m - j) * p_(j))`` and it is rejected when that is ``<= alpha``;
    this controls the family-wise error rate at ``alpha`` under any dependence between the tests.

    Args:
        pvalues: One p-value per test in the family.
        alpha: Family-wise error rate.

    Returns:
        The adjusted p-values and which tests are rejected, both in the input's order.
    """
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted, adjusted <= alpha


def seed_mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1) of one value across seeds; no deviation for one seed."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


# ---------------------------------------------------------------------------------------------
# Several runs on each side: the run-level t test


@dataclass(frozen=True)
class VarianceComponents:
    """The measured variances behind a run-level comparison, in the units of the compared score.

    The model: the score of query i under run r of configuration c is ``mu_c + query_i +
    interaction_ci + run_cr + noise_cri``, with independent zero-mean terms: a query's difficulty
    (shared by both configurations, so it cancels in the paired difference), a query x
    configuration interaction (some queries favour one configuration), a run's shift of all its
    queries, and per-query run noise. It is not a normality assumption: any exchangeable array of
    runs x queries decomposes this way (an ANOVA or Hoeffding decomposition); the variances may
    differ between the two configurations.

    Attributes:
        runs: Runs of (system, baseline).
        between_runs: Per side, the sample variance over its runs of a run's score (the row's
            stratified mean): an unbiased estimate of run-shift variance plus per-query run noise
            over the number of queries, ``R - 1`` degrees of freedom.
        query_noise: Per side, the per-query run noise's share of ``between_runs``: the residual
            mean square of the runs x queries table (its run and query means removed) over the
            queries, stratified. What is left of ``between_runs`` is the runs' shift.
        interaction: The query x configuration interaction's variance over the number of queries
            (stratified), truncated at 0: what query sampling adds to the error beyond the runs.
        interaction_df: Degrees of freedom of ``interaction``: those of the paired variance of the
            queries it is estimated from (about the number of queries; infinite when it is 0).
            See :func:`run_level_test` for why not Satterthwaite's for the difference itself.
    """

    runs: tuple[int, int]
    between_runs: tuple[float, float]
    query_noise: tuple[float, float]
    interaction: float
    interaction_df: float

    @property
    def run_shift(self) -> tuple[float, float]:
        """Per side, the variance of a run's shift of all its queries (``between_runs - query_noise``, at least 0)."""
        return tuple(max(0.0, b - q) for b, q in zip(self.between_runs, self.query_noise, strict=True))

    def variance(self, runs_system: int, runs_baseline: int) -> float:
        """The variance of the estimated difference with this many runs per side (and the same queries)."""
        s, b = self.between_runs
        return s / runs_system + b / runs_baseline + self.interaction

    def df(self, runs_system: int, runs_baseline: int) -> float:
        """Satterthwaite's degrees of freedom of :meth:`variance` with this many runs per side."""
        s, b = self.between_runs
        denominator = (s / runs_system) ** 2 / (runs_system - 1) + (b / runs_baseline) ** 2 / (runs_baseline - 1)
        if self.interaction > 0:
            denominator += self.interaction**2 / self.interaction_df
        variance = self.variance(runs_system, runs_baseline)
        # np.divide: runs may be numpy arrays (every R at once); a zero denominator gives infinite df.
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(denominator > 0, np.divide(variance**2, denominator), np.inf)
        # Below 1 degree of freedom the scaled chi-square behind Satterthwaite's formula means nothing.
        return np.maximum(df, 1.0)[()]


@dataclass(frozen=True)
class RunLevelResult:
    """A run-level t test of a zero difference and its dual t interval.

    Attributes:
        diff: The estimated difference, system minus baseline (stratified mean of run-averaged scores).
        se: Its standard error, ``sqrt(components.variance(*components.runs))``.
        df: Satterthwaite degrees of freedom of the t distribution.
        p: Two-sided p-value of ``diff / se`` against t with ``df`` degrees of freedom.
        ci: ``diff -/+ t(1 - alpha/2, df) * se``: the differences the test does not reject.
        significant: ``p <= alpha``, exactly when ``ci`` excludes 0.
        components: The variances ``se`` is made of.
    """

    diff: float
    se: float
    df: float
    p: float
    ci: tuple[float, float]
    significant: bool
    components: VarianceComponents


def run_level_test(
    system: Sequence[np.ndarray], baseline: Sequence[np.ndarray], alpha: float = ALPHA
) -> RunLevelResult:
    """Test a zero difference between two configurations with several runs each; the unit is the run.

    The target is the expected difference in the (stratified) mean score between the two
    configurations, over training runs and over queries like these. With ``R_c`` runs of side c,
    strata k of ``n_k`` queries weighted ``w_k = 1/K``, the estimate ``D`` (the difference of the
    run-averaged stratified means) has, under the model of :class:`VarianceComponents`,

        Var(D) = sum_c (run_c + noise_c) / R_c + interaction,

    with ``run_c`` the variance of a run's shift of its stratified mean, ``noise_c = sum_k w_k^2
    noise_ck / n_k`` and ``interaction = sum_k w_k^2 interaction_k / n_k``. Three moments estimate it
    without double counting (their expectations in brackets):

    * ``S_c``, the variance over side c's runs of a run's stratified mean
      [``run_c + noise_c``], ``R_c - 1`` degrees of freedom;
    * ``E_ck``, the residual mean square of side c's runs x queries table in stratum k
      [``noise_ck``], ``(R_c - 1)(n_k - 1)`` degrees of freedom;
    * ``Q_k``, the variance over stratum k's queries of the difference of run-averaged scores
      [``interaction_k + noise_sk / R_s + noise_bk / R_b``; a run's shift is the same for every
      query, so it is not in it], ``n_k - 1`` degrees of freedom.

    ``S_c / R_c`` already holds the per-query run noise; ``Q_k`` holds it again, so the interaction
    is ``sum_k w_k^2 (Q_k - E_sk / R_s - E_bk / R_b) / n_k``, truncated at 0 (a little
    conservative: never below Welch's variance of the run means). Then

        Var(D) estimate = S_s / R_s + S_b / R_b + interaction,

    unbiased (before the truncation) under the model whatever the sizes of its terms: with runs
    that only shift it is Welch's t on the run means, with runs that agree it is the paired t on
    the queries. The moments are independent under normality (run means, query means and residuals
    are orthogonal contrasts of the table), so Satterthwaite's degrees of freedom apply: ``df =
    Var^2 / sum_j (a_j X_j)^2 / nu_j`` over the terms ``a_j X_j`` (``X_j`` a mean square with
    ``nu_j`` degrees of freedom): ``S_c / R_c`` with ``R_c - 1``, and the interaction with the
    degrees of freedom of the paired variance ``sum_k w_k^2 Q_k / n_k`` it is estimated from.
    Satterthwaite's formula applied to the difference ``Q_k - E_sk / R_s - E_bk / R_b`` itself
    collapses whenever the interaction is small next to the per-query noise (a small difference of
    two noisy terms), which made the test conservative (3 vs 3 runs with per-query noise only: a
    false-positive rate of 0.027, Welch's own being 0.035) without making it any more valid; the
    subtracted ``E_ck`` have ``(R_c - 1)(n_k - 1)`` degrees of freedom, far more than ``Q_k``.
    Few runs give few degrees of freedom and a wide interval when runs differ (Welch's t is itself
    conservative with 3 runs a side: a false-positive rate of about 0.035); when runs agree, the
    query terms dominate and df approaches the queries'. The test ``t = D / se`` and the interval
    ``D -/+ t(1 - alpha/2, df) se`` use the same ``se`` and ``df``: they are duals.

    A crossed mixed model fitted by REML targets the same variance, but took minutes per comparison
    here and has no small-sample correction; these moments take microseconds and the calibration
    (scripts/calibrate_stats.py) shows their false-positive rate and coverage at 3 and 5 runs.

    Args:
        system: The system's per-query scores, one ``(runs, queries)`` array per stratum, at least 2 runs.
        baseline: The baseline's, the same queries per stratum, at least 2 runs.
        alpha: Two-sided level of the test; the interval covers ``1 - alpha``.

    Returns:
        The difference, its standard error, degrees of freedom, p-value, interval and variance components.
    """
    system = [np.atleast_2d(np.asarray(s, dtype=float)) for s in system]
    baseline = [np.atleast_2d(np.asarray(b, dtype=float)) for b in baseline]
    runs = (system[0].shape[0], baseline[0].shape[0])
    if min(runs) < 2 or any(s.shape[0] != runs[0] for s in system) or any(b.shape[0] != runs[1] for b in baseline):
        raise ValueError(f"run_level_test needs at least 2 runs per side, the same in every stratum (got {runs})")
    weight = 1.0 / len(system)

    between, noise = [], []
    residual: list[list[float]] = []  # per side, per stratum: E_ck
    for side in (system, baseline):
        run_means = weight * sum(scores.mean(axis=1) for scores in side)
        between.append(float(np.var(run_means, ddof=1)))
        residual.append([_residual_mean_square(scores) for scores in side])
        noise.append(sum(weight**2 * e / s.shape[1] for e, s in zip(residual[-1], side, strict=True)))

    # The interaction: per stratum, Q_k minus the per-query run noise it holds.
    paired: list[tuple[float, int]] = []  # (w_k^2 Q_k / n_k, n_k - 1): the paired variance of the queries
    interaction = 0.0
    for k, (s, b) in enumerate(zip(system, baseline, strict=True)):
        queries = s.shape[1]
        if queries < 2:
            continue  # one query: no spread to measure
        scale = weight**2 / queries
        paired.append((scale * float(np.var(s.mean(axis=0) - b.mean(axis=0), ddof=1)), queries - 1))
        interaction += paired[-1][0] - scale * (residual[0][k] / runs[0] + residual[1][k] / runs[1])
    if interaction > 0:
        # The degrees of freedom of the paired variance it comes from (see the docstring).
        interaction_df = sum(t for t, _ in paired) ** 2 / sum(t**2 / nu for t, nu in paired)
    else:
        interaction, interaction_df = 0.0, math.inf

    components = VarianceComponents(
        runs=runs,
        between_runs=(between[0], between[1]),
        query_noise=(noise[0], noise[1]),
        interaction=interaction,
        interaction_df=interaction_df,
    )
    diff = weight * sum(float(s.mean() - b.mean()) for s, b in zip(system, baseline, strict=True))
    variance = components.variance(*runs)
    df = float(components.df(*runs))
    if variance <= 0:
        # Every run and query agree exactly: the difference is known without error.
        return RunLevelResult(diff, 0.0, df, 1.0 if diff == 0 else 0.0, (diff, diff), diff != 0, components)
    se = math.sqrt(variance)
    p = float(2 * special.stdtr(df, -abs(diff) / se))
    half_width = float(special.stdtrit(df, 1 - alpha / 2)) * se
    return RunLevelResult(diff, se, df, p, (diff - half_width, diff + half_width), p <= alpha, components)


def _residual_mean_square(scores: np.ndarray) -> float:
    """The residual mean square of a runs x queries table: its run and query means removed (0 without residual df)."""
    runs, queries = scores.shape
    if runs < 2 or queries < 2:
        return 0.0
    residuals = scores - scores.mean(axis=1, keepdims=True) - scores.mean(axis=0, keepdims=True) + scores.mean()
    return float(np.sum(residuals**2) / ((runs - 1) * (queries - 1)))


# ---------------------------------------------------------------------------------------------
# Power


def power_of_t_test(difference, variance, df, alpha: float = ALPHA):
    """Probability that a two-sided t test of level ``alpha`` rejects when the true difference is ``difference``.

    The statistic ``D / se`` then follows a non-central t with ``df`` degrees of freedom and
    non-centrality ``difference / sqrt(variance)``. Takes numbers or numpy arrays (broadcast).
    """
    critical = special.stdtrit(df, 1 - alpha / 2)
    ncp = np.abs(difference) / np.sqrt(variance)
    return _upper_tail(critical, df, ncp) + _upper_tail(critical, df, -ncp)


def _upper_tail(x, df, ncp):
    """P(T > x) for a non-central t; scipy.special.nctdtr (microseconds), scipy.stats.nct where it gives NaN.

    nctdtr returns NaN far in a tail (e.g. df 4, non-centrality 60); scipy.stats.nct.sf is right there but
    a hundred times slower, so it only fills those gaps.
    """
    tail = 1 - special.nctdtr(df, ncp, x)
    if np.ndim(tail) == 0 and not math.isnan(tail):
        return float(tail)
    x, df, ncp = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, df, ncp)))
    tail = np.array(tail, dtype=float)
    gaps = np.isnan(tail)
    if gaps.any():
        from scipy import stats

        tail[gaps] = stats.nct.sf(x[gaps], df[gaps], ncp[gaps])
    return tail[()]


def detectable_difference(variance: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The minimum detectable difference: the true difference a two-sided t test detects with ``power``.

    It is a property of the design (runs, queries, measured variances), not of the observed
    difference: the power at the observed difference is a function of the p-value and adds nothing.
    """
    if variance <= 0:
        return 0.0

    def shortfall(ncp: float) -> float:
        return float(power_of_t_test(ncp, 1.0, df, alpha)) - power

    # The normal-theory answer, z(1 - alpha/2) + z(power), is close; widen the bracket until it holds the
    # root, then bisect (power grows with the non-centrality; 50 halvings leave a relative error of 1e-15).
    low, high = 0.0, float(special.ndtri(1 - alpha / 2) + special.ndtri(power)) + 1.0
    while shortfall(high) < 0:
        low, high = high, 2 * high
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (low, middle) if shortfall(middle) >= 0 else (middle, high)
    return high * math.sqrt(variance)


@dataclass(frozen=True)
class RunsNeeded:
    """Runs per side for a target difference: ``runs`` when within reach, else why not, in ``text``.

    ``text`` is the number, ``">N"`` (more than the ``N`` runs looked at), ``"not reachable"``
    (query sampling alone, the interaction that more runs of the same queries cannot average away,
    keeps the power below the target), or ``"unknown"`` (one run on a side: run-to-run variance
    not measured).
    """

    runs: int | None
    text: str


def runs_needed(
    components: VarianceComponents,
    target: float,
    alpha: float = ALPHA,
    power: float = POWER,
    max_runs: int = MAX_RUNS,
) -> RunsNeeded:
    """The fewest runs per side (the same on both, at least 2) whose run-level test has ``power`` at ``target``.

    With R runs per side on the same queries the variance is ``components.variance(R, R)`` and the
    degrees of freedom ``components.df(R, R)`` (the run terms with R - 1 each): the measured
    components, projected.
    """
    limit = components.interaction
    if limit > 0 and power_of_t_test(target, limit, components.interaction_df, alpha) < power:
        return RunsNeeded(None, "not reachable")

    def enough(r: int) -> bool:
        variance = components.variance(r, r)
        return variance <= 0 or power_of_t_test(target, variance, components.df(r, r), alpha) >= power

    if not enough(max_runs):
        return RunsNeeded(None, f">{max_runs}")
    # Power grows with the runs (the variance falls, the degrees of freedom rise): bisect for the first enough.
    low, high = 1, max_runs  # not enough(low) (fewer than 2 runs has no run-level test), enough(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return RunsNeeded(high, str(high))


# ---------------------------------------------------------------------------------------------
# The comparison of two columns


@dataclass(frozen=True)
class DifferenceTest:
    """One difference (system minus baseline) with its test, dual interval and power line.

    Attributes:
        test: ``"run_t"`` (run-level t, :func:`run_level_test`) or ``"sign_flip"`` (paired
            per-query randomization test, :func:`sign_flip_test`).
        unit: The unit of replication the error is over: ``"run"`` or ``"query"``.
        diff: The difference of the (stratified, run-averaged) means.
        p: Two-sided p-value.
        ci: The test's dual interval at ``1 - alpha``.
        significant: ``p <= alpha``; exactly when ``ci`` excludes 0.
        se: Standard error of ``diff``; for the sign-flip test, the query-sampling one (the paired
            standard error of the per-query differences).
        df: Degrees of freedom of the run-level t; None for the sign-flip test.
        exact: The sign-flip p-value is exact (enumerated); False for the run-level t.
        flips: Sign assignments evaluated (sign-flip only).
        mdd: The minimum detectable difference at ``POWER``: with runs, over runs and queries; with one
            run on a side, over query sampling only (the paired t test's, with ``sum (n_k - 1)``
            degrees of freedom).
        runs_needed: Runs per side for ``POWER`` at the target difference.
        components: The variance components (run-level t only).
    """

    test: str
    unit: str
    diff: float
    p: float
    ci: tuple[float, float]
    significant: bool
    se: float
    df: float | None
    exact: bool
    flips: int | None
    mdd: float
    runs_needed: RunsNeeded
    components: VarianceComponents | None


def compare_runs(
    system: Sequence[np.ndarray],
    baseline: Sequence[np.ndarray],
    *,
    permutations: int,
    rng: np.random.Generator,
    target_diff: float,
    alpha: float = ALPHA,
    power: float = POWER,
    max_runs: int = MAX_RUNS,
) -> DifferenceTest:
    """Compare two columns on one row: the run-level t with 2+ runs per side, else the paired sign-flip test.

    Args:
        system: The system's per-query scores, one ``(runs, queries)`` array per stratum.
        baseline: The baseline's, the same queries per stratum (any number of runs).
        permutations: Sign assignments for the sign-flip test (unused with runs).
        rng: Source of the random signs.
        target_diff: The difference that ``runs_needed`` is for.
        alpha: Two-sided level of the test; the interval covers ``1 - alpha``.
        power: The power that ``mdd`` and ``runs_needed`` are for.
        max_runs: ``runs_needed`` looks no further than this many runs per side.
    """
    system = [np.atleast_2d(np.asarray(s, dtype=float)) for s in system]
    baseline = [np.atleast_2d(np.asarray(b, dtype=float)) for b in baseline]
    if min(system[0].shape[0], baseline[0].shape[0]) >= 2:
        result = run_level_test(system, baseline, alpha)
        c = result.components
        return DifferenceTest(
            test="run_t",
            unit="run",
            diff=result.diff,
            p=result.p,
            ci=result.ci,
            significant=result.significant,
            se=result.se,
            df=result.df,
            exact=False,
            flips=None,
            mdd=detectable_difference(c.variance(*c.runs), result.df, alpha, power),
            runs_needed=runs_needed(c, target_diff, alpha, power, max_runs),
            components=c,
        )

    diffs = [s.mean(axis=0) - b.mean(axis=0) for s, b in zip(system, baseline, strict=True)]
    test = sign_flip_test(diffs, permutations, rng, alpha)
    weight = 1.0 / len(diffs)
    # The paired (query-sampling) variance of the stratified mean difference, and its degrees of freedom.
    terms = [(weight**2 * float(np.var(x, ddof=1)) / x.size, x.size - 1) for x in diffs if x.size > 1]
    variance = sum(t for t, _ in terms)
    denominator = sum(t**2 / nu for t, nu in terms)
    df = variance**2 / denominator if denominator > 0 else math.inf
    return DifferenceTest(
        test="sign_flip",
        unit="query",
        diff=weight * sum(float(x.mean()) for x in diffs),
        p=test.p,
        ci=test.ci,
        significant=test.significant,
        se=math.sqrt(variance),
        df=None,
        exact=test.exact,
        flips=test.flips,
        mdd=detectable_difference(variance, df, alpha, power),
        runs_needed=RunsNeeded(None, "unknown"),
        components=None,
    )
