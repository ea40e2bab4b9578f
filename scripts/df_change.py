"""Which committed p-values moved when the run-level test's degrees of freedom became plain Satterthwaite.

    python scripts/df_change.py configs/experiments/static.yaml=docs/experiments/static ... [--output FILE]

Until issue 31 the run-level t test (several runs a side) used Satterthwaite's degrees of freedom with the plug-in
squares bias-corrected, ``df = V^2 / sum_j t_j^2 / (nu_j + 2) - 2``; an independent simulation found it
anticonservative with 3 runs a side when runs shift and queries interact with the configuration (0.064 of null
comparisons significant). Now ``df = V^2 / sum_j t_j^2 / nu_j`` (bidir_cli/compare/stats/run_level.py). This script
rebuilds every run-level difference of each experiment's report (test suites, then the confirmation suites), once
with the code as it is and once with the superseded formula written out below, from the committed per-query
results, and prints a markdown section: every mean row, and each dataset row whose verdict at 0.05 changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bidir_cli.compare.comparison import MEAN  # noqa: E402
from bidir_cli.compare.stats import run_level  # noqa: E402
from bidir_cli.experiment.cells import Experiment  # noqa: E402
from bidir_cli.experiment.comparisons import comparisons  # noqa: E402


def superseded_df(self: run_level.VarianceComponents, runs_system, runs_baseline):
    """The degrees of freedom before issue 31: Satterthwaite's with the plug-in squares bias-corrected."""
    s, b = self.between_runs
    terms = [(s / runs_system, runs_system - 1.0), (b / runs_baseline, runs_baseline - 1.0)]
    if self.interaction > 0:
        terms.append((self.interaction, self.interaction_df))
    variance = self.variance(runs_system, runs_baseline)
    denominator = sum(t**2 / (nu + 2) for t, nu in terms)
    low = np.min([np.where(np.asarray(t) > 0, nu, np.inf) for t, nu in terms], axis=0)
    high = np.sum([np.where(np.asarray(t) > 0, nu, 0.0) for t, nu in terms], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, np.divide(variance**2, denominator) - 2, np.inf)
    return np.maximum(np.clip(df, np.minimum(low, high), high), 1.0)[()]


def differences(exp: Experiment) -> dict[tuple[str, str, str], object]:
    """(suite, row, arm) -> Difference of every run-level test in the report and its confirmation."""
    done = [c for c in exp.cells() if exp.state(c) == "done"]
    suites = exp.suites + (exp.spec.confirm if (exp.dir / "confirmation.json").exists() else [])
    found = {}
    for suite, comparison in comparisons(exp, suites, done).items():
        for row, by_arm in comparison.differences.items():
            for arm, d in by_arm.items():
                if d.test == "run_t":
                    found[(suite, row, arm)] = d
    return found


def section(experiments: list[tuple[Path, Path]]) -> str:
    md = ["## The degrees of freedom corrected: which p-values moved", "",
          "The run-level t test's degrees of freedom are now plain Satterthwaite's; the bias-corrected version "
          "the committed reports used was anticonservative with few runs when runs shift and queries interact "
          "(docs/compare.md). Each run-level difference recomputed both ways from the committed per-query results "
          "by `scripts/df_change.py`: every mean row, and the dataset rows whose verdict at 0.05 changed.", "",
          "| experiment | suite | row | arm | runs | df before -> now | p before -> now | verdict |",
          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    largest = (0.0, "")
    for file, folder in experiments:
        exp = Experiment(file, folder)
        now = differences(exp)
        current = run_level.VarianceComponents.df
        run_level.VarianceComponents.df = superseded_df
        try:
            before = differences(exp)
        finally:
            run_level.VarianceComponents.df = current
        for key, d in now.items():
            old = before[key]
            suite, row, arm = key
            changed = old.significant != d.significant
            if row != MEAN and abs(d.p - old.p) > largest[0]:
                largest = (abs(d.p - old.p), f"{exp.spec.name}, {suite}, {row}, {arm}: {old.p:.3g} -> {d.p:.3g}")
            if row != MEAN and not changed:
                continue
            verdict = ("**changed**: " if changed else "") + ("significant" if d.significant else "not significant")
            runs = " vs ".join(str(r) for r in (d.components or {}).get("runs", ()))
            md.append(f"| {exp.spec.name} | {suite} | {row} | {arm} | {runs} | {old.df:.1f} -> {d.df:.1f} | "
                      f"{old.p:.3g} -> {d.p:.3g} | {verdict} |")  # fmt: skip
    changed = sum(1 for line in md if "**changed**" in line)
    md += [
        "",
        f"Verdicts that changed: {changed}. The largest move of a dataset row's p-value: {largest[1] or 'none'}.",
    ]
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="+", help="FILE=FOLDER of each committed experiment")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    text = section([tuple(Path(x) for x in item.split("=", 1)) for item in args.experiments])
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
