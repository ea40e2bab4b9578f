"""Group-sequential boundaries: Lan-DeMets alpha spending with a non-binding beta-spending futility bound.

At look k of K the standardized statistic ``Z_k`` has seen the information fraction ``t_k``: runs at the look over
the most runs, pre-registered (``information: runs``), or the variance the difference would have at the most runs
over its variance at the look, both from the look's own variance components (``information: variance``, see
:meth:`Design.fractions`; the spending functions then still spend at runs / most runs, :meth:`Design.bounds`).
Under a drift ``theta`` (``E[Z_k] = theta sqrt(t_k)``) the statistics form a Brownian motion observed at the
fractions: ``S_k = Z_k sqrt(t_k)`` has independent normal increments of variance ``t_k - t_{k-1}`` and mean
``theta (t_k - t_{k-1})``.

* Efficacy (two-sided, symmetric): reject at look k when ``|Z_k| >= c_k``, with ``c_k`` chosen so that the chance
  of a first crossing at look k under no difference is ``alpha(t_k) - alpha(t_{k-1})``. Spending functions (Lan
  and DeMets 1983; Kim and DeMets 1987), each side spending ``alpha / 2``: O'Brien-Fleming type
  ``2 - 2 Phi(z_{1-alpha/4} / sqrt(t))`` a side, Pocock type ``(alpha / 2) ln(1 + (e - 1) t)`` a side.
* Futility (non-binding): stop for futility at look k when ``|Z_k| < b_k``, with ``b_k`` chosen so that under the
  target drift the chance of stopping for futility by look k is ``beta(t_k)`` (the same family of spending
  function). The efficacy bounds are computed without it, so ignoring a futility stop never raises the
  false-positive rate; at the last look ``b_K = c_K``.

The probabilities are computed by recursive numerical integration of the continuation region's sub-density on a
grid (Armitage, McPherson and Rowe 1969; Jennison and Turnbull 2000, ch. 19): deterministic, the same numbers on
every run. scipy has no group-sequential design; the R packages that do (gsDesign, ldbounds) are not Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize, special

SPENDING = ("obrien-fleming", "pocock")
INFORMATION = ("runs", "variance")
GAP = 0.01
"""The least information fraction a look adds (``information: variance``): an estimate that falls (noise) or a
look that adds nearly nothing still has an increment the grid below resolves (its sd, 0.1, spans 8 grid points)."""
GRID = 2001
"""Points of the grid the sub-density is carried on at each look (|S| up to 12 standard deviations)."""


def spent(level: float, fraction: float, spending: str) -> float:
    """The error spent by information fraction ``fraction`` (0 at 0, ``level`` at 1), two-sided: each side spends
    half by the one-sided function, as gsDesign and Jennison and Turnbull do (so O'Brien-Fleming type at 0.05 is
    ``2 (2 - 2 Phi(z_{1 - 0.0125} / sqrt(t)))``; Pocock type is the same either way)."""
    if fraction <= 0:
        return 0.0
    if spending == "obrien-fleming":
        side = level / 2
        return float(2 * (2 - 2 * special.ndtr(special.ndtri(1 - side / 2) / math.sqrt(min(fraction, 1.0)))))
    if spending == "pocock":
        return float(level * math.log(1 + (math.e - 1) * min(fraction, 1.0)))
    raise ValueError(f"spending: {spending!r} is not one of {', '.join(SPENDING)}")


@dataclass(frozen=True)
class Bounds:
    """A design's boundaries on the Z scale, one per look (``futility`` None without a futility bound)."""

    fractions: tuple[float, ...]
    efficacy: tuple[float, ...]
    futility: tuple[float, ...] | None
    alpha: float

    def nominal_p(self) -> list[float]:
        """Each efficacy bound as a two-sided nominal p-value: reject at look k when the look's p <= it."""
        return [float(2 * special.ndtr(-c)) for c in self.efficacy]


class _Walk:
    """The sub-density of ``S_k`` on the continuation region, carried from look to look."""

    def __init__(self, drift: float) -> None:
        self.drift = drift
        self.fraction = 0.0
        self.points: np.ndarray | None = None  # None: S = 0 with probability 1 (before the first look)
        self.weights: np.ndarray | None = None  # density x quadrature weight at each point

    def _moments(self, fraction: float) -> tuple[np.ndarray, np.ndarray, float]:
        step = fraction - self.fraction
        points = np.zeros(1) if self.points is None else self.points
        weights = np.ones(1) if self.weights is None else self.weights
        return points + self.drift * step, weights, math.sqrt(step)  # the centres of the next look's normals

    def outside(self, fraction: float, low: float, high: float) -> tuple[float, float]:
        """The chances of a first arrival below ``low`` and above ``high`` (Z scale) at ``fraction``."""
        centre, weights, sd = self._moments(fraction)
        scale = math.sqrt(fraction)
        below = special.ndtr((low * scale - centre) / sd)
        above = special.ndtr((centre - high * scale) / sd)
        return float(weights @ below), float(weights @ above)

    def inside(self, fraction: float, low: float, high: float) -> float:
        """The chance of a first arrival strictly between ``low`` and ``high`` (Z scale) at ``fraction``."""
        centre, weights, sd = self._moments(fraction)
        scale = math.sqrt(fraction)
        between = special.ndtr((high * scale - centre) / sd) - special.ndtr((low * scale - centre) / sd)
        return float(weights @ between)

    def advance(self, fraction: float, regions: list[tuple[float, float]]) -> None:
        """Keep the paths that land in ``regions`` (Z-scale intervals) at ``fraction``: the next sub-density."""
        centre, weights, sd = self._moments(fraction)
        scale = math.sqrt(fraction)
        points, quadrature = [], []
        for low, high in regions:
            if high <= low:
                continue
            n = max(3, int(GRID * (high - low) / 24) | 1)  # odd, for Simpson's rule
            grid = np.linspace(low * scale, high * scale, n)
            simpson = np.ones(n)
            simpson[1:-1:2], simpson[2:-1:2] = 4, 2
            points.append(grid)
            quadrature.append(simpson * (grid[1] - grid[0]) / 3)
        if not points:  # every path has stopped
            self.points, self.weights, self.fraction = np.zeros(0), np.zeros(0), fraction
            return
        grid, rule = np.concatenate(points), np.concatenate(quadrature)
        density = np.exp(-0.5 * ((grid[:, None] - centre[None, :]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        self.points, self.weights, self.fraction = grid, rule * (density @ weights), fraction


def efficacy_bounds(
    fractions: Sequence[float], alpha: float = 0.05, spending: str = "obrien-fleming",
    spend_at: Sequence[float] | None = None,
) -> list[float]:  # fmt: skip
    """Two-sided symmetric efficacy bounds (Z scale) that spend ``alpha`` by ``spending`` over ``fractions``; a
    prefix of the looks (last fraction below 1) gives the bounds of those looks, which never depend on later ones.
    ``spend_at``: the spending function's times, when they are not the information fractions (the statistics'
    correlations are always the fractions')."""
    fractions = _checked(fractions, whole=False)
    times = fractions if spend_at is None else [float(x) for x in spend_at]
    walk, bounds, before = _Walk(0.0), [], 0.0
    for t, at in zip(fractions, times, strict=True):
        target = spent(alpha, at, spending) - before
        bound = optimize.brentq(lambda c, t=t, g=target: sum(walk.outside(t, -c, c)) - g, 0.0, 40.0, xtol=1e-10)
        bounds.append(float(bound))
        before += target
        walk.advance(t, [(-bound, bound)])
    return bounds


def futility_bounds(
    fractions: Sequence[float], efficacy: Sequence[float], drift: float, beta: float = 0.2,
    spending: str = "obrien-fleming", spend_at: Sequence[float] | None = None,
) -> list[float]:  # fmt: skip
    """Inner bounds ``b_k`` (stop for futility when ``|Z_k| < b_k``) spending ``beta`` under ``drift`` (the target
    difference over the standard error at the most runs), never above the efficacy bound; ``b_K = c_K`` at the last
    look (fraction 1); a prefix of the looks gives theirs. ``spend_at`` as for :func:`efficacy_bounds`."""
    fractions = _checked(fractions, whole=False)
    times = fractions if spend_at is None else [float(x) for x in spend_at]
    walk, bounds, before = _Walk(drift), [], 0.0
    for t, at, c in zip(fractions, times, efficacy, strict=True):
        if t == 1.0:
            bounds.append(float(c))
            break
        target = spent(beta, at, spending) - before
        if walk.inside(t, -c, c) <= target:
            bound = float(c)
        else:
            bound = optimize.brentq(lambda b, t=t, g=target: walk.inside(t, -b, b) - g, 0.0, c, xtol=1e-10)
        bounds.append(float(bound))
        before += walk.inside(t, -bound, bound)
        walk.advance(t, [(-c, -bound), (bound, c)])
    return bounds


def crossing(
    fractions: Sequence[float], efficacy: Sequence[float], futility: Sequence[float] | None, drift: float
) -> tuple[list[float], list[float]]:
    """Per look, the chances of stopping there for efficacy and for futility (futility honoured) under ``drift``."""
    fractions = _checked(fractions)
    walk, win, lose = _Walk(drift), [], []
    for k, (t, c) in enumerate(zip(fractions, efficacy, strict=True)):
        b = futility[k] if futility is not None else 0.0
        win.append(sum(walk.outside(t, -c, c)))
        lose.append(walk.inside(t, -b, b) if b > 0 else 0.0)
        walk.advance(t, [(-c, -b), (b, c)] if b > 0 else [(-c, c)])
    return win, lose


def design_bounds(
    fractions: Sequence[float], alpha: float = 0.05, spending: str = "obrien-fleming",
    futility_drift: float | None = None, beta: float = 0.2, spend_at: Sequence[float] | None = None,
) -> Bounds:  # fmt: skip
    efficacy = efficacy_bounds(fractions, alpha, spending, spend_at)
    futility = None
    if futility_drift is not None:
        futility = tuple(futility_bounds(fractions, efficacy, futility_drift, beta, spending, spend_at))
    return Bounds(tuple(_checked(fractions, whole=False)), tuple(efficacy), futility, alpha)


def _checked(fractions: Sequence[float], whole: bool = True) -> list[float]:
    """The fractions as floats: increasing from above 0 to 1 (``whole``) or to at most 1 (the looks so far)."""
    values = [float(t) for t in fractions]
    if (not values or any(b <= a for a, b in zip([0.0, *values], values, strict=False)) or values[-1] > 1 + 1e-12
            or (whole and abs(values[-1] - 1) > 1e-12)):  # fmt: skip
        raise ValueError(f"information fractions must increase from above 0 to 1 (got {values})")
    return values


@dataclass(frozen=True)
class Design:
    """A group-sequential design: the looks (runs per arm), the level, the spending function, the futility bound's
    drift (None: no futility bound), and how a look's information fraction is measured."""

    looks: tuple[int, ...]
    alpha: float = 0.05
    spending: str = "obrien-fleming"
    futility_drift: float | None = None
    information: str = "runs"

    def __post_init__(self) -> None:
        if self.information not in INFORMATION:
            raise ValueError(f"information: {self.information!r} is not one of {', '.join(INFORMATION)}")

    @cached_property
    def planned(self) -> Bounds:
        """The bounds at the planned fractions, runs / most runs: the design's own figures (expected runs)."""
        return design_bounds([n / self.looks[-1] for n in self.looks], self.alpha, self.spending, self.futility_drift)

    def fractions(self, results: Sequence) -> list[float]:
        """The information fraction of each analysed look (``results[k]``: the run-level test at ``looks[k]``, with
        a ``variance(runs, runs)`` method for ``variance``).

        ``runs``: ``n_k / N``. ``variance``: ``Var_k(D_N) / Var_k(D_{n_k})``, the variance the difference would have
        at the most runs ``N`` over its variance now, both from look k's own variance components (the information
        is the inverse variance; the last look's fraction is 1). Where runs only shift this is ``n_k / N``; where a
        query x configuration term dominates, more runs add little information, the fraction is near 1 and the
        looks' statistics are nearly the same, which the later bounds then use (:meth:`bounds`; with ``runs`` such
        designs are conservative: 0.024 for Pocock with 4 looks, docs/compare.md). Each fraction is at least
        ``n_k / N`` and rises by at least ``GAP``.
        """
        most, last = self.looks[-1], len(self.looks) - 1
        found: list[float] = []
        for k, r in enumerate(results[: len(self.looks)]):
            runs = self.looks[k] / most
            if self.information == "runs" or k == last:
                found.append(1.0 if k == last else runs)
                continue
            now = r.se**2
            t = r.variance(most, most) / now if now > 0 else runs
            found.append(min(max(t, runs, found[-1] + GAP if found else 0.0), 1 - GAP * (last - k)))
        return found

    def bounds(self, results: Sequence) -> Bounds:
        """The bounds of the analysed looks: the planned ones (``runs``), or (``variance``) for statistics correlated
        as the measured fractions say, still spending alpha (and beta) at runs / most runs. The spending times stay
        the pre-registered ones, so what a look may spend never rides on a noisy estimate (at the first look the
        bound is the planned one; measured with 3 runs, a spending time of ~0.9 let O'Brien-Fleming call 0.064 of
        null experiments significant); only the later bounds use how much the looks share."""
        if self.information == "runs":
            return self.planned
        fractions = self.fractions(results)
        spend_at = [n / self.looks[-1] for n in self.looks[: len(fractions)]]
        return design_bounds(fractions, self.alpha, self.spending, self.futility_drift, spend_at=spend_at)


def alternative_drift(alpha: float, power: float) -> float:
    """The drift (Z at the last look) a fixed two-sided level-``alpha`` test detects with ``power``: the design's
    target difference over its standard error at the most runs, by the design's own premise."""
    return float(special.ndtri(1 - alpha / 2) + special.ndtri(power))


def expected_runs(bounds: Bounds, looks: Sequence[int], drift: float) -> float:
    """Runs per arm expected under ``drift``, futility stops honoured (a futility bound is non-binding for the
    error rate, but a user who honours it saves runs)."""
    win, lose = crossing(bounds.fractions, bounds.efficacy, bounds.futility, drift)
    stop = [w + f for w, f in zip(win, lose, strict=True)]
    stop[-1] = 1 - sum(stop[:-1])
    return float(sum(p * n for p, n in zip(stop, looks, strict=True)))


def _upper_ordering(bounds: Bounds, look: int, z: float, drift: float) -> float:
    """P(stage-wise ordering at least (look, z)) under ``drift``: an upper efficacy crossing at an earlier look, or
    reaching ``look`` and Z >= z there. Futility is non-binding, so it does not enter."""
    walk, total = _Walk(drift), 0.0
    for j in range(look):
        t, c = bounds.fractions[j], bounds.efficacy[j]
        total += walk.outside(t, -c, c)[1]
        walk.advance(t, [(-c, c)])
    return total + walk.outside(bounds.fractions[look], -math.inf, z)[1]


def stagewise(bounds: Bounds, look: int, z: float, level: float = 0.05) -> tuple[float, float, tuple[float, float]]:
    """At a stop at ``look`` (0-based) with statistic ``z``: the stage-wise (ordering) two-sided p-value, the
    median-unbiased drift and its ``1 - level`` interval (drift: E[Z at the last look]; Jennison and Turnbull
    2000, ch. 8). The p-value is at most ``bounds.alpha`` exactly when ``z`` crossed an efficacy bound."""
    upper = _upper_ordering(bounds, look, z, 0.0)
    p = min(1.0, 2 * min(upper, 1 - upper))

    def solve(target: float) -> float:
        return float(optimize.brentq(lambda d: _upper_ordering(bounds, look, z, d) - target, -60, 60, xtol=1e-8))

    return p, solve(0.5), (solve(level / 2), solve(1 - level / 2))


@dataclass(frozen=True)
class Look:
    """One analysis: the run-level test on the runs so far, against the look's bounds as nominal levels."""

    runs: int
    fraction: float  # its information fraction (Design.fractions)
    diff: float
    se: float
    df: float
    p: float
    efficacy_p: float  # reject at this look when p <= it
    futility_p: float | None  # stop for futility when p > it (not at the last look)
    rci: tuple[float, float]  # the repeated confidence interval
    decision: str  # efficacy, futility, continue, or none (the last look without efficacy)


@dataclass(frozen=True)
class Outcome:
    """The looks analysed so far and, once stopped, the stage-wise inference at the stop."""

    looks: list[Look]
    bounds: Bounds
    decision: str  # efficacy, futility, none (every look without efficacy) or continue
    p: float | None = None  # stage-wise two-sided p-value (ordering by stage, then statistic)
    estimate: float | None = None  # median-unbiased difference
    ci: tuple[float, float] | None = None  # its stage-wise interval


def equivalent_z(diff: float, p: float) -> float:
    """The standard normal statistic with the two-sided p-value ``p`` and the sign of ``diff``: the run-level t
    with its degrees of freedom, on the scale the bounds are on (so a decision by p and by Z agree)."""
    return math.copysign(float(special.ndtri(1 - max(p, 1e-300) / 2)), diff if diff != 0 else 1.0)


def sequential_test(results: Sequence, design: Design, estimate: bool = True) -> Outcome:
    """Walk the looks: ``results[k]`` is the run-level test (``diff``, ``se``, ``df``, ``p``, and ``variance(n, m)``
    for ``information: variance``) on the first ``design.looks[k]`` runs a side. Stops at the first efficacy or futility
    decision, or at the last look; with fewer results than looks and no decision, the outcome is ``continue``.
    ``estimate=False`` leaves out the median-unbiased estimate and its interval (the stage-wise p stays): what a
    calibration of many thousand replicates needs."""
    looks = design.looks
    bounds = design.bounds(results)
    nominal = bounds.nominal_p()
    futility = [float(2 * special.ndtr(-b)) for b in bounds.futility] if bounds.futility else None
    analysed: list[Look] = []
    for k, r in enumerate(results[: len(looks)]):
        last = k == len(looks) - 1
        half = float(special.stdtrit(r.df, 1 - nominal[k] / 2)) * r.se if r.se > 0 else 0.0
        if r.p <= nominal[k]:
            decision = "efficacy"
        elif futility is not None and not last and r.p > futility[k]:
            decision = "futility"
        else:
            decision = "none" if last else "continue"
        analysed.append(Look(looks[k], bounds.fractions[k], r.diff, r.se, r.df, r.p, nominal[k], None if last or futility is None
                             else futility[k], (r.diff - half, r.diff + half), decision))  # fmt: skip
        if decision != "continue" and not estimate:
            upper = _upper_ordering(bounds, k, equivalent_z(r.diff, r.p), 0.0)
            return Outcome(analysed, bounds, decision, min(1.0, 2 * min(upper, 1 - upper)))
        if decision != "continue":
            p, drift, (low, high) = stagewise(bounds, k, equivalent_z(r.diff, r.p), bounds.alpha)
            # A drift is E[Z] at the last look; at look k, E[Z_k] = drift sqrt(t_k) = difference / se_k.
            scale = math.sqrt(bounds.fractions[k]) * r.se
            return Outcome(analysed, bounds, decision, p, drift * scale, (low * scale, high * scale))
    return Outcome(analysed, bounds, "continue")
