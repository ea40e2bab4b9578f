"""Group-sequential boundaries (bidir_cli/compare/stats/sequential.py) against published values and a simulation.

The published values are gsDesign's two-sided symmetric Lan-DeMets O'Brien-Fleming bounds at alpha 0.05 (0.025 a
side; `gsDesign(k = 4, test.type = 2, sfu = sfLDOF)`, and k = 3); the simulation draws Brownian paths at the looks and counts
first crossings, which must match what each bound spends.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from bidir_cli.compare.stats.sequential import (
    Design,
    alternative_drift,
    crossing,
    design_bounds,
    efficacy_bounds,
    expected_runs,
    futility_bounds,
    sequential_test,
    spent,
    stagewise,
)

FOUR = [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    ("fractions", "published"),
    [(FOUR, [4.3326, 2.9631, 2.3590, 2.0141]), ([1 / 3, 2 / 3, 1.0], [3.7103, 2.5114, 1.9930])],
)
def test_obrien_fleming_bounds_equal_the_published_ones(fractions, published):
    assert efficacy_bounds(fractions, 0.05, "obrien-fleming") == pytest.approx(published, abs=1e-4)


def test_one_look_is_the_fixed_design():
    assert efficacy_bounds([1.0], 0.05, "pocock") == pytest.approx([1.959964], abs=1e-6)
    assert efficacy_bounds([1.0], 0.05, "obrien-fleming") == pytest.approx([1.959964], abs=1e-6)


def paths(drift: float, fractions: list[float], n: int, seed: int) -> np.ndarray:
    """Z at each look of ``n`` Brownian paths with drift ``drift`` (E[Z_k] = drift sqrt(t_k))."""
    rng = np.random.default_rng(seed)
    steps = np.diff([0.0, *fractions])
    s = np.cumsum(rng.normal(drift * steps, np.sqrt(steps), size=(n, len(fractions))), axis=1)
    return s / np.sqrt(fractions)


def first_stops(z: np.ndarray, efficacy, futility) -> tuple[np.ndarray, np.ndarray]:
    """Per look, the share of paths first stopping there for efficacy and for futility."""
    alive = np.ones(len(z), bool)
    win, lose = [], []
    for k in range(z.shape[1]):
        up = alive & (np.abs(z[:, k]) >= efficacy[k])
        down = alive & ~up & (np.abs(z[:, k]) < (futility[k] if futility is not None else 0.0))
        win.append(up.mean())
        lose.append(down.mean())
        alive &= ~(up | down)
    return np.array(win), np.array(lose)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_each_look_spends_what_the_spending_function_says_in_a_simulation(spending):
    n = 400_000
    bounds = efficacy_bounds(FOUR, 0.05, spending)
    win, _ = first_stops(paths(0.0, FOUR, n, seed=1), bounds, None)
    wanted = np.diff([0.0, *(spent(0.05, t, spending) for t in FOUR)])
    assert win == pytest.approx(wanted, abs=4 * math.sqrt(0.05 / n) + 1e-5)
    assert win.sum() == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / n))
    assert crossing(FOUR, bounds, None, 0.0)[0] == pytest.approx(wanted, abs=1e-7)


def test_a_non_binding_futility_bound_spends_beta_under_the_target_and_only_lowers_the_false_positive_rate():
    n = 400_000
    drift = 2.8016  # 80% power for the fixed design at the last look
    design = design_bounds(FOUR, 0.05, "obrien-fleming", futility_drift=drift, beta=0.2)
    assert design.efficacy == pytest.approx(efficacy_bounds(FOUR))  # non-binding: efficacy bounds unchanged
    assert design.futility[-1] == design.efficacy[-1]
    assert all(b <= c for b, c in zip(design.futility, design.efficacy, strict=True))
    win, lose = first_stops(paths(drift, FOUR, n, seed=2), design.efficacy, design.futility)
    assert np.cumsum(lose)[:-1] == pytest.approx([spent(0.2, t, "obrien-fleming") for t in FOUR[:-1]], abs=0.004)
    expected_win, expected_lose = crossing(FOUR, design.efficacy, design.futility, drift)
    assert win == pytest.approx(expected_win, abs=0.003) and lose == pytest.approx(expected_lose, abs=0.003)
    assert abs(sum(expected_win) - 0.8) < 0.05  # power within 0.05 of the fixed design's
    null_win, _ = crossing(FOUR, design.efficacy, design.futility, 0.0)
    assert sum(null_win) < 0.05  # honouring futility stops can only lower the false-positive rate
    assert futility_bounds(FOUR, design.efficacy, drift) == pytest.approx(list(design.futility))


def test_fractions_must_rise_to_one():
    with pytest.raises(ValueError, match="must increase from above 0 to 1"):
        efficacy_bounds([0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match="is not one of"):
        spent(0.05, 0.5, "haybittle")


def result(diff: float, se: float, df: float = 8.0):
    from scipy import stats

    return SimpleNamespace(diff=diff, se=se, df=df, p=float(2 * stats.t.sf(abs(diff / se), df)))


def test_the_decision_procedure_walks_the_looks_and_its_stagewise_p_agrees_with_each_decision():
    design = Design((4, 8, 12, 16), 0.05, "obrien-fleming", futility_drift=alternative_drift(0.05, 0.8))
    nominal = design.planned.nominal_p()
    # Fewer looks than the design and no decision: continue; a partial look is not the caller's to pass.
    middle = result(0.02, 0.01)  # t = 2 with 8 df: p 0.08, between the bounds at looks 1 and 2
    assert nominal[0] < middle.p < 1 - 1e-9 and middle.p > nominal[1]
    outcome = sequential_test([middle, middle], design)
    assert outcome.decision == "continue" and outcome.p is None and [x.decision for x in outcome.looks] == [
        "continue", "continue"]  # fmt: skip
    # A large difference at look 2: efficacy, stage-wise p at most alpha, the interval away from 0.
    strong = result(0.05, 0.01)
    outcome = sequential_test([middle, strong, middle], design)
    assert outcome.decision == "efficacy" and len(outcome.looks) == 2 and outcome.p <= 0.05
    assert outcome.ci[0] > 0 and outcome.ci[0] < outcome.estimate < outcome.ci[1]
    # Nothing at look 1: futility (non-binding); at the last look without efficacy: none, stage-wise p above alpha.
    nothing = result(0.0001, 0.01)  # p 0.99: above look 2's futility level (look 1's is 0.995 under O'Brien-Fleming)
    outcome = sequential_test([middle, nothing, middle], design)
    assert outcome.decision == "futility" and len(outcome.looks) == 2 and outcome.p > 0.05
    weak = [middle, middle, middle, result(0.019, 0.01)]
    outcome = sequential_test(weak, design)
    assert outcome.decision == "none" and outcome.p > 0.05
    # The repeated interval at each look uses the look's nominal level with the statistic's df.
    look = outcome.looks[0]
    half = stats_t_quantile(look.df, 1 - nominal[0] / 2) * look.se
    assert look.rci == pytest.approx((look.diff - half, look.diff + half))


def stats_t_quantile(df: float, q: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, df))


def test_stagewise_p_at_the_first_look_is_the_fixed_p_and_the_expected_runs_fall_below_the_most():
    design = design_bounds(FOUR, 0.05, "obrien-fleming", futility_drift=alternative_drift(0.05, 0.8))
    p, drift, (low, high) = stagewise(design, 0, 3.0)
    assert p == pytest.approx(2 * (1 - 0.9986501019683699), rel=1e-6)  # 2 (1 - Phi(3))
    assert low < drift < high
    assert expected_runs(design, [4, 8, 12, 16], 0.0) < 16 and expected_runs(design, [4, 8, 12, 16], 2.8) < 16
    no_futility = design_bounds(FOUR, 0.05, "obrien-fleming")
    # Under no difference and without futility, look k stops with what it spends: alpha(t_k) - alpha(t_{k-1}).
    stops = np.diff([0.0, *(spent(0.05, t, "obrien-fleming") for t in FOUR[:-1])])
    by_hand = float(stops @ [4, 8, 12] + 16 * (1 - stops.sum()))
    assert expected_runs(no_futility, [4, 8, 12, 16], 0.0) == pytest.approx(by_hand, abs=1e-6)


def components_result(between: float, interaction: float, runs: int):
    """A run-level result whose variance components say: ``between`` per side over the runs, ``interaction``."""
    from bidir_cli.compare.stats.run_level import VarianceComponents

    parts = VarianceComponents((runs, runs), (between, between), (0.0, 0.0), interaction, 100.0)
    return SimpleNamespace(diff=0.0, se=math.sqrt(parts.variance(runs, runs)), df=50.0, p=1.0, variance=parts.variance)


def test_information_from_the_variance_is_runs_over_most_when_runs_only_shift_and_near_one_when_queries_dominate():
    looks = (4, 8, 12, 16)
    design = Design(looks, 0.05, "pocock", information="variance")
    assert design.fractions([components_result(0.3, 0.0, n) for n in looks]) == pytest.approx(FOUR)
    # Var(D_n) = 2 * 0.02 / n + 0.1: by hand, Var(D_16) / Var(D_n), rising by at least GAP, below 1 before the end.
    dominated = design.fractions([components_result(0.02, 0.1, n) for n in looks])
    by_hand = [(0.04 / 16 + 0.1) / (0.04 / n + 0.1) for n in looks]
    assert dominated[0] == pytest.approx(by_hand[0]) and dominated[-1] == 1.0
    assert dominated[1:3] == pytest.approx([min(by_hand[1], 0.98), min(by_hand[2], 0.99)])
    assert all(b - a >= 0.01 - 1e-12 for a, b in zip(dominated, dominated[1:], strict=False))
    # The bounds of the looks so far are the first bounds of the whole design: a look never depends on later ones.
    prefix = design.bounds([components_result(0.02, 0.1, n) for n in looks[:2]])
    whole = design.bounds([components_result(0.02, 0.1, n) for n in looks])
    assert prefix.efficacy == pytest.approx(whole.efficacy[:2], abs=1e-9)
    # Alpha is still spent at runs / most runs: the first look's bound is the planned one, whatever its fraction
    # (spent at a measured ~0.9, a noisy estimate from 3 runs decided how much a look could spend).
    assert whole.efficacy[0] == pytest.approx(Design(looks, 0.05, "pocock").planned.efficacy[0], abs=1e-9)
    assert whole.efficacy[1] != pytest.approx(Design(looks, 0.05, "pocock").planned.efficacy[1], abs=1e-3)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_bounds_at_the_measured_information_spend_alpha_where_runs_over_most_spends_less(spending):
    """Z at each look of a difference whose variance is ``a / n + b`` (a part that more runs average away, one they
    do not): the looks are correlated as ``sqrt(I_j / I_k)``; simulated directly, the bounds at the fractions
    Design.fractions measures spend 0.05, those at runs / most runs less (for Pocock well under 0.04)."""
    looks, a, b, n = (4, 8, 12, 16), 0.08, 0.3, 400_000
    info = np.array([1 / (a / m + b) for m in looks])
    z = paths(0.0, list(info / info[-1]), n, seed=3)  # Brownian motion at the true fractions is the canonical form
    results = [components_result(a / 2, b, m) for m in looks]
    measured = Design(looks, 0.05, spending, information="variance").bounds(results)
    win, _ = first_stops(z, measured.efficacy, None)
    assert win.sum() == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / n) + 0.002)
    by_runs, _ = first_stops(z, Design(looks, 0.05, spending).planned.efficacy, None)
    assert by_runs.sum() < win.sum() - 0.004 and (spending == "obrien-fleming" or by_runs.sum() < 0.04)
