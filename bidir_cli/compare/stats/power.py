"""Power of the t tests: the minimum detectable difference, and the runs per side a target difference needs.

Both are properties of the design (runs, queries, measured variances), not of the observed
difference: the power at the observed difference is a function of the p-value and adds nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

if TYPE_CHECKING:
    from .run_level import VarianceComponents


def power_of_t_test(difference, variance, df, alpha: float = 0.05):
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


def detectable_difference(variance: float, df: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The minimum detectable difference: the true difference a two-sided t test detects with ``power``.

    It is a property of the design (runs, queries, measured variances), not of the observed
    difference: the power at the observed difference is a function of the p-value and adds nothing.
    """
    if variance <= 0:
        return 0.0

    def shortfall(ncp: float) -> float:
        return float(power_of_t_test(ncp, 1.0, df, alpha)) - power

    # The normal-theory answer, z(1 - alpha/2) + z(power), is close; widen the bracket until it holds the
    # root, then close in on it by regula falsi with the Illinois step (power grows with the non-centrality,
    # so the bracket always holds the root; a dozen evaluations reach a relative error of 1e-12).
    low, high = 0.0, float(special.ndtri(1 - alpha / 2) + special.ndtri(power)) + 1.0
    f_low, f_high = shortfall(low), shortfall(high)
    while f_high < 0:
        low, f_low, high = high, f_high, 2 * high
        f_high = shortfall(high)
    side = 0
    for _ in range(200):
        if high - low <= 1e-12 * high:
            break
        middle = high - f_high * (high - low) / (f_high - f_low)
        f_middle = shortfall(middle)
        if f_middle >= 0:
            high, f_high = middle, f_middle
            if side == 1:
                f_low /= 2  # the same end moved twice: halve the other's weight (Illinois)
            side = 1
        else:
            low, f_low = middle, f_middle
            if side == -1:
                f_high /= 2
            side = -1
        if f_middle == 0:
            break
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
    alpha: float = 0.05,
    power: float = 0.8,
    max_runs: int = 100,
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
