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
  standard error and one number of degrees of freedom (Satterthwaite's).
* :func:`sign_flip_test`, when a side holds a single run: the paired randomization test on
  per-query differences, with the interval obtained by inverting it. It covers query sampling
  only: one run per side says nothing about how much another run would differ.

:func:`compare_runs` picks the test and adds the power line: the smallest difference the
comparison detects with 80% power (:func:`detectable_difference`) and the runs per side a target
difference needs (:func:`runs_needed`). ``sequential.py`` holds the group-sequential design (alpha and beta
spending, the looks' information) that sequential experiments apply to the run-level statistic at each look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..comparison import ALPHA, POWER  # one definition, with the comparison types
from .power import RunsNeeded, detectable_difference, power_of_t_test, runs_needed
from .run_level import RunLevelResult, VarianceComponents, run_level_test
from .sign_flip import SignFlipResult, sign_flip_test

__all__ = [
    "ALPHA",
    "MAX_RUNS",
    "POWER",
    "DifferenceTest",
    "RunLevelResult",
    "RunsNeeded",
    "SignFlipResult",
    "VarianceComponents",
    "compare_runs",
    "detectable_difference",
    "holm",
    "power_of_t_test",
    "run_level_test",
    "runs_needed",
    "seed_mean_std",
    "sign_flip_test",
]

MAX_RUNS = 100  # runs per side beyond which runs_needed answers ">MAX_RUNS"


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
