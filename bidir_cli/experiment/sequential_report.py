"""The report's "Sequential design" section: the looks, each arm's decision, the stage-wise inference at the stop,
the expected runs from the design, and the statistic's path against the bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..compare.comparison import ALPHA, POWER
from ..compare.stats.sequential import alternative_drift, equivalent_z, expected_runs
from .identity import portable
from .sequential import ArmState, analyse, design

SPENDING_NAMES = {"obrien-fleming": "O'Brien-Fleming-type", "pocock": "Pocock-type"}


def verdict_line(exp, state: ArmState) -> str:
    """An arm's sequential verdict, first among the verdict lines: where it stopped, why, and the stage-wise
    inference (its p-value is at most the design's alpha exactly when it stopped for efficacy)."""
    seq, o = exp.spec.sequential, state.outcome
    base = f"**{state.arm} vs {exp.spec.baseline}, sequential design**"
    if o.decision == "continue":
        return (f"{base}: {len(o.looks)} of {len(seq.looks)} looks analysed, no decision yet; the next look needs "
                f"{state.runs_wanted} runs per arm")  # fmt: skip
    why = {"efficacy": "for efficacy (the run-level p crossed the look's bound)",
           "futility": "for futility (the difference is unlikely to reach the bound by the last look)",
           "none": "at the last look without crossing the efficacy bound: no difference established"}[o.decision]  # fmt: skip
    last = o.looks[-1]
    return (f"{base}: stopped at look {len(o.looks)} of {len(seq.looks)} ({last.runs} runs per arm, "
            f"{last.runs} of the {seq.looks[-1]} it could have used) {why}; stage-wise p = {o.p:.3g}, median-unbiased "
            f"difference {o.estimate:+.4f}, stage-wise 95% CI [{o.ci[0]:+.4f}, {o.ci[1]:+.4f}].")  # fmt: skip


def section(exp, chosen: dict, folder: Path) -> tuple[list[str], dict[str, Any], dict[str, str]]:
    """(markdown lines, the summary's ``sequential`` record, each arm's verdict line)."""
    seq, plan = exp.spec.sequential, design(exp)
    states = analyse(exp, chosen)
    arms = len(states)
    futility = seq.futility == "beta-spending"
    by_variance = seq.information == "variance"
    null_runs = expected_runs(plan.planned, seq.looks, 0.0)
    target_runs = expected_runs(plan.planned, seq.looks, alternative_drift(plan.alpha, POWER))
    information = (f"the variance of the difference at {seq.looks[-1]} runs over its variance at the look, both from "
                   f"the look's variance components, for the looks' correlation; alpha is spent at runs / "
                   f"{seq.looks[-1]}, and the expected runs below take that too" if by_variance
                   else f"runs / {seq.looks[-1]}")  # fmt: skip
    md = ["## Sequential design", "",
          f"Looks at {', '.join(map(str, seq.looks))} runs per arm (information fraction: {information}), "
          f"{SPENDING_NAMES[seq.spending]} alpha spending at {ALPHA:g} two-sided"
          + (f", split among the {arms} arms ({plan.alpha:.4g} each)" if arms > 1 else "")
          + (f", a non-binding beta-spending futility bound for a difference of {exp.spec.target_diff:g} at the "
             f"design's {POWER:.0%} power" if futility else ", no futility bound")
          + ". The primary comparison, fixed in the plan: each arm against the baseline on the mean row of "
          f"`{portable(exp.suites[0], exp.root)}`. Runs per arm expected from the design: {null_runs:.1f} under no difference, "
          f"{target_runs:.1f} under the target difference (if {seq.looks[-1]} runs give it {POWER:.0%} power), "
          f"against {seq.looks[-1]} for the fixed design. The bounds apply to the run-level t statistic as nominal "
          "levels (its p-value against the bound's); a partial look is never analysed.", ""]  # fmt: skip
    record: dict[str, Any] = {"looks": seq.looks, "spending": seq.spending, "futility": seq.futility,
                              "information": seq.information, "alpha_per_arm": plan.alpha,
                              "efficacy_bounds": list(plan.planned.efficacy),  # at runs / most runs
                              "futility_bounds": list(plan.planned.futility) if plan.planned.futility else None,
                              "expected_runs": {"no difference": null_runs, "target difference": target_runs},
                              "arms": {}}  # fmt: skip
    lines = {}
    for arm, state in states.items():
        o = state.outcome
        lines[arm] = verdict_line(exp, state)
        fraction = " information fraction |" if by_variance else ""
        md += [f"### {arm} vs {exp.spec.baseline}", "", lines[arm].replace("**", ""), "",
               f"| look | runs per arm |{fraction} difference | repeated 95% CI | p | efficacy bound (nominal p) | "
               "futility bound (nominal p) | decision |",
               "|---:|---:|" + ("---:|" if by_variance else "") + "---:|---|---:|---:|---:|---|"]  # fmt: skip
        for k, look in enumerate(o.looks, 1):
            futile = f"{look.futility_p:.3g}" if look.futility_p is not None else "-"
            fraction = f" {look.fraction:.3f} |" if by_variance else ""
            md.append(f"| {k} | {look.runs} |{fraction} {look.diff:+.4f} | [{look.rci[0]:+.4f}, {look.rci[1]:+.4f}] | "
                      f"{look.p:.3g} | {look.efficacy_p:.3g} | {futile} | {look.decision} |")  # fmt: skip
        md.append("")
        record["arms"][arm] = {"decision": o.decision, "stop_look": state.stop_look, "p": o.p, "estimate": o.estimate,
                               "ci": list(o.ci) if o.ci else None, "looks": [look.__dict__ for look in o.looks]}  # fmt: skip
    if path_plot(exp, states, folder / "sequential-path.png"):
        md += ["![the statistic's path against the bounds](sequential-path.png)", ""]
    return md, record, lines


def path_plot(exp, states: dict[str, ArmState], path: Path) -> bool:
    """Each arm's statistic (as a standard normal Z) at its looks, against the efficacy and futility bounds (the
    planned ones; with ``information: variance`` also each arm's, at its measured fractions, as crosses)."""
    from matplotlib.figure import Figure

    seq, planned = exp.spec.sequential, design(exp).planned
    if not any(s.outcome.looks for s in states.values()):
        return False
    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.add_subplot()
    label = " (at runs / most runs)" if seq.information == "variance" else ""
    ax.plot(seq.looks, planned.efficacy, "k--", label=f"efficacy bound{label}")
    ax.plot(seq.looks, [-c for c in planned.efficacy], "k--")
    if planned.futility:
        ax.plot(seq.looks, planned.futility, "k:", label=f"futility bound{label}")
        ax.plot(seq.looks, [-b for b in planned.futility], "k:")
    for arm, state in states.items():
        looks = state.outcome.looks
        line = ax.plot([x.runs for x in looks], [equivalent_z(x.diff, x.p) for x in looks], "o-", label=arm)[0]
        if seq.information == "variance":
            bound = state.outcome.bounds.efficacy[: len(looks)]
            ax.plot([x.runs for x in looks] * 2, [*bound, *(-c for c in bound)], "x", color=line.get_color(),
                    label=f"{arm}'s efficacy bounds")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("runs per arm")
    ax.set_ylabel(f"run-level statistic as Z ({exp.spec.baseline} = 0)")
    ax.set_xticks(seq.looks)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True
