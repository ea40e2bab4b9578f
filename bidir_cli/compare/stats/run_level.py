"""The run-level t test for several runs per side: the unit of replication is the training run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special


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

    def record(self) -> dict[str, Any]:
        """As plain JSON (``bidir compare --format json``'s ``variance_components``; ``run_shift`` is derived)."""
        return {"runs": list(self.runs), "between_runs": list(self.between_runs), "run_shift": list(self.run_shift),
                "query_noise": list(self.query_noise), "interaction": self.interaction,
                "interaction_df": self.interaction_df}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> VarianceComponents:
        """The components :meth:`record` wrote."""
        return cls(tuple(record["runs"]), tuple(record["between_runs"]), tuple(record["query_noise"]),
                   record["interaction"], record["interaction_df"])  # fmt: skip

    @property
    def run_shift(self) -> tuple[float, float]:
        """Per side, the variance of a run's shift of all its queries (``between_runs - query_noise``, at least 0)."""
        return tuple(max(0.0, b - q) for b, q in zip(self.between_runs, self.query_noise, strict=True))

    def variance(self, runs_system: int, runs_baseline: int) -> float:
        """The variance of the estimated difference with this many runs per side (and the same queries)."""
        s, b = self.between_runs
        return s / runs_system + b / runs_baseline + self.interaction

    def df(self, runs_system: int, runs_baseline: int) -> float:
        """Degrees of freedom of :meth:`variance` with this many runs per side: Satterthwaite's.

        Satterthwaite matches ``sum_j t_j`` (``t_j = a_j X_j``, a mean square ``X_j`` with ``nu_j``
        degrees of freedom) to a scaled chi-square, ``df = (sum_j t_j)^2 / sum_j t_j^2 / nu_j``, exactly
        ``nu`` for one term, kept within ``[min nu_j, sum nu_j]`` (over the terms present), the range the
        exact answer lies in. ``runs_system`` and ``runs_baseline`` may be numpy arrays (every R at once).

        Plugging the estimates in overstates each square (``E[t_j^2] = (E t_j)^2 (nu_j + 2) / nu_j``), and
        an earlier version corrected that (``V^2 / sum_j t_j^2 / (nu_j + 2) - 2``). The correction made the
        test anticonservative where it matters: with 3 runs a side, run shifts and a query x configuration
        term, its median df was 8-9 where this formula gives 5-6, and 6.1-6.5% of null comparisons were
        called significant (20,000 replicates, an independent simulation; reproduced by
        scripts/calibrate_stats.py). The plain formula gives 4.5-5.2% there, and is conservative (about
        3.5%, as Welch's t is) where runs only shift: the safe side.
        """
        s, b = self.between_runs
        terms = [(s / runs_system, runs_system - 1.0), (b / runs_baseline, runs_baseline - 1.0)]
        if self.interaction > 0:
            terms.append((self.interaction, self.interaction_df))
        variance = self.variance(runs_system, runs_baseline)
        denominator = sum(t**2 / nu for t, nu in terms)
        low = np.min([np.where(np.asarray(t) > 0, nu, np.inf) for t, nu in terms], axis=0)
        high = np.sum([np.where(np.asarray(t) > 0, nu, 0.0) for t, nu in terms], axis=0)
        # A zero denominator (no variance at all) gives infinite df.
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(denominator > 0, np.divide(variance**2, denominator), np.inf)
        # Below 1 degree of freedom the scaled chi-square behind the formula means nothing.
        return np.maximum(np.clip(df, np.minimum(low, high), high), 1.0)[()]


@dataclass(frozen=True)
class RunLevelResult:
    """A run-level t test of a zero difference and its dual t interval.

    Attributes:
        diff: The estimated difference, system minus baseline (stratified mean of run-averaged scores).
        se: Its standard error, ``sqrt(components.variance(*components.runs))``.
        df: Degrees of freedom of the t distribution (Satterthwaite's).
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

    def variance(self, runs_system: int, runs_baseline: int) -> float:
        """The variance the difference would have with this many runs per side (the same queries)."""
        return self.components.variance(runs_system, runs_baseline)


def run_level_test(system: Sequence[np.ndarray], baseline: Sequence[np.ndarray], alpha: float = 0.05) -> RunLevelResult:
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
    are orthogonal contrasts of the table), so Satterthwaite's approximation applies to the sum of
    the terms ``S_c / R_c`` (``R_c - 1`` degrees of freedom each) and the interaction (with the
    degrees of freedom of the paired variance ``sum_k w_k^2 Q_k / n_k`` it is estimated from), with
    (:meth:`VarianceComponents.df`, which says why its plug-in squares are not bias-corrected).
    Satterthwaite's formula applied to the difference ``Q_k - E_sk / R_s
    - E_bk / R_b`` itself would collapse whenever the interaction is small next to the per-query
    noise (a small difference of two noisy terms), again conservative without being any more
    valid; the subtracted ``E_ck`` have ``(R_c - 1)(n_k - 1)`` degrees of freedom, far more than
    ``Q_k``. Few runs give few degrees of freedom and a wide interval when runs differ; when runs
    agree, the query terms dominate and df approaches the queries'. The test ``t = D / se`` and the
    interval ``D -/+ t(1 - alpha/2, df) se`` use the same ``se`` and ``df``: they are duals.

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
