"""An experiment's sequential design, read from its cells alone: which looks each arm has been analysed at, its
decision, and the runs each arm needs now (the next look's, or none once it is decided).

The primary comparison is pre-registered: each arm against the baseline on the mean row of the first test suite,
in the experiment's metric, at ``ALPHA / k`` for k arms (Bonferroni inside the spending function). A look is
analysed only when every cell it needs is complete; each arm stops on its own, and the baseline runs while any arm
continues. The run-level statistic and its bounds: :mod:`bidir_cli.compare.stats.sequential`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..compare.comparison import ALPHA, MEAN, POWER
from ..compare.stats.sequential import Design, Outcome, alternative_drift, sequential_test


@dataclass(frozen=True)
class ArmState:
    arm: str
    outcome: Outcome
    runs_wanted: int  # runs this arm needs now: the next look's while it continues, its stopping look's after

    @property
    def stop_look(self) -> int | None:
        """The 1-based look it stopped at, or None while it continues."""
        return len(self.outcome.looks) if self.outcome.decision != "continue" else None


def design(exp) -> Design:
    """The experiment's sequential design: ``ALPHA`` split among the arms compared with the baseline."""
    seq = exp.spec.sequential
    alpha = ALPHA / (len(exp.spec.arms) - 1)
    drift = alternative_drift(alpha, POWER) if seq.futility == "beta-spending" else None
    return _design(tuple(seq.looks), alpha, seq.spending, drift, seq.information)


@lru_cache(maxsize=32)
def _design(*fields) -> Design:
    """One Design per distinct design, so its planned bounds are computed once per process."""
    return Design(*fields)


def analyse(exp, chosen: dict) -> dict[str, ArmState]:
    """Each non-baseline arm's sequential state, from the complete cells of the first test suite."""
    from .comparisons import comparisons

    seq, plan = exp.spec.sequential, design(exp)
    suite, baseline = exp.suites[0], exp.spec.baseline

    def cells(arm: str) -> list:  # every seed's cell, in seed order: a look takes the first ones
        return [exp._cell(f"{arm}-seed{s}", arm, s, chosen[arm], exp.suites, "test") for s in exp.spec.seed_list]

    baseline_cells = cells(baseline)
    states = {}
    for arm in (a for a in exp.spec.arms if a != baseline):
        arm_cells, results = cells(arm), []
        for runs in seq.looks:
            needed = arm_cells[:runs] + baseline_cells[:runs]
            if any(exp.state(c) != "done" for c in needed):
                break  # a look waits for every cell it needs: a partial look is never analysed
            comparison = next(iter(comparisons(exp, [suite], needed).values()))
            results.append(comparison.differences[MEAN][arm])
            if sequential_test(results, plan, estimate=False).decision != "continue":  # the decision only
                break
        outcome = sequential_test(results, plan)
        at = len(results) - 1 if outcome.decision != "continue" else len(results)
        states[arm] = ArmState(arm, outcome, seq.looks[at])
    return states


def runs_wanted(exp, chosen: dict) -> dict[str, int]:
    """Runs each arm needs now; the baseline as many as the arm that needs the most."""
    states = analyse(exp, chosen)
    wanted = {arm: s.runs_wanted for arm, s in states.items()}
    return wanted | {exp.spec.baseline: max(wanted.values())}


def status_line(exp, chosen: dict) -> str:
    """``--status``: each arm's look and what the next look needs."""
    looks = exp.spec.sequential.looks
    parts = []
    for arm, s in analyse(exp, chosen).items():
        done = len(s.outcome.looks)
        if s.stop_look is not None:
            parts.append(f"{arm}: stopped at look {s.stop_look} of {len(looks)} ({s.outcome.decision})")
        else:
            parts.append(f"{arm}: {done} of {len(looks)} looks analysed; look {done + 1} needs {s.runs_wanted} runs "
                         f"of {arm} and {exp.spec.baseline}")  # fmt: skip
    return "sequential design: " + "; ".join(parts)
