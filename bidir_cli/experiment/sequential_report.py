"""The report's "Sequential design" section: the looks, each arm's decision, the stage-wise inference at the stop,
the expected runs from the design, and the statistic's path against the bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..compare.comparison import ALPHA, POWER
from ..compare.stats.sequential import alternative_drift, equivalent_z, expected_runs
from .sequential import ArmState, analyse, bounds

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
    seq, design = exp.spec.sequential, bounds(exp)
    states = analyse(exp, chosen)
    arms = len(states)
    futility = seq.futility == "beta-spending"
    null_runs = expected_runs(design, seq.looks, 0.0)
    target_runs = expected_runs(design, seq.looks, alternative_drift(design.alpha, POWER))
    md = ["## Sequential design", "",
          f"Looks at {', '.join(map(str, seq.looks))} runs per arm (information fraction: runs / {seq.looks[-1]}), "
          f"{SPENDING_NAMES[seq.spending]} alpha spending at {ALPHA:g} two-sided"
          + (f", split among the {arms} arms ({design.alpha:.4g} each)" if arms > 1 else "")
          + (f", a non-binding beta-spending futility bound for a difference of {exp.spec.target_diff:g} at the "
             f"design's {POWER:.0%} power" if futility else ", no futility bound")
          + ". The primary comparison, fixed in the plan: each arm against the baseline on the mean row of "
          f"`{exp.suites[0]}`. Runs per arm expected from the design: {null_runs:.1f} under no difference, "
          f"{target_runs:.1f} under the target difference (if {seq.looks[-1]} runs give it {POWER:.0%} power), "
          f"against {seq.looks[-1]} for the fixed design. The bounds apply to the run-level t statistic as nominal "
          "levels (its p-value against the bound's); a partial look is never analysed.", ""]  # fmt: skip
    record: dict[str, Any] = {"looks": seq.looks, "spending": seq.spending, "futility": seq.futility,
                              "alpha_per_arm": design.alpha, "efficacy_bounds": list(design.efficacy),
                              "futility_bounds": list(design.futility) if design.futility else None,
                              "expected_runs": {"no difference": null_runs, "target difference": target_runs},
                              "arms": {}}  # fmt: skip
    lines = {}
    for arm, state in states.items():
        o = state.outcome
        lines[arm] = verdict_line(exp, state)
        md += [f"### {arm} vs {exp.spec.baseline}", "", lines[arm].replace("**", ""), "",
               "| look | runs per arm | difference | repeated 95% CI | p | efficacy bound (nominal p) | "
               "futility bound (nominal p) | decision |", "|---:|---:|---:|---|---:|---:|---:|---|"]  # fmt: skip
        for k, look in enumerate(o.looks, 1):
            futile = f"{look.futility_p:.3g}" if look.futility_p is not None else "-"
            md.append(f"| {k} | {look.runs} | {look.diff:+.4f} | [{look.rci[0]:+.4f}, {look.rci[1]:+.4f}] | "
                      f"{look.p:.3g} | {look.efficacy_p:.3g} | {futile} | {look.decision} |")  # fmt: skip
        md.append("")
        record["arms"][arm] = {"decision": o.decision, "stop_look": state.stop_look, "p": o.p, "estimate": o.estimate,
                               "ci": list(o.ci) if o.ci else None, "looks": [look.__dict__ for look in o.looks]}  # fmt: skip
    if path_plot(exp, states, folder / "sequential-path.png"):
        md += ["![the statistic's path against the bounds](sequential-path.png)", ""]
    return md, record, lines


def path_plot(exp, states: dict[str, ArmState], path: Path) -> bool:
    """Each arm's statistic (as a standard normal Z) at its looks, against the efficacy and futility bounds."""
    from matplotlib.figure import Figure

    seq, design = exp.spec.sequential, bounds(exp)
    if not any(s.outcome.looks for s in states.values()):
        return False
    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.add_subplot()
    ax.plot(seq.looks, design.efficacy, "k--", label="efficacy bound")
    ax.plot(seq.looks, [-c for c in design.efficacy], "k--")
    if design.futility:
        ax.plot(seq.looks, design.futility, "k:", label="futility bound")
        ax.plot(seq.looks, [-b for b in design.futility], "k:")
    for arm, state in states.items():
        looks = state.outcome.looks
        ax.plot([x.runs for x in looks], [equivalent_z(x.diff, x.p) for x in looks], "o-", label=arm)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("runs per arm")
    ax.set_ylabel(f"run-level statistic as Z ({exp.spec.baseline} = 0)")
    ax.set_xticks(seq.looks)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True
