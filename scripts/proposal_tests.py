"""What the proposal's NanoBEIR table can say: its 13 dataset differences under several tests, and against the
run-to-run variation that bidir's own experiments measured.

    python scripts/proposal_tests.py [--reference ../shared/reference/README.md] [--runs docs/experiments/static ...]
        [--suite NAME] [--output FILE]

The table (CMNBRL against CMNRL, one run each, NanoBEIR nDCG@10) has no per-query scores, so each dataset is one
observation: the tests are the exact sign-flip test of the 13 differences (bidir's own, every one of the 8,192 sign
assignments), the Wilcoxon signed-rank test, the sign test and the one-sample t test (scipy), and the sign-flip test
without the dataset with the largest difference. With --runs (an experiment folder of ``bidir experiment``; may be
given once per experiment), the seed-to-seed standard deviation of each arm's mean nDCG@10 over its runs says how
far one run per loss can be trusted: the difference of two single runs varies by about sqrt(2) times it.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bidir_cli.compare.stats.sign_flip import sign_flip_test  # noqa: E402
from bidir_cli.experiment.records import Summary  # noqa: E402
from bidir_cli.runs.results import EvalResult  # noqa: E402

SECTION = "## The proposal's result"


def read_table(path: Path) -> tuple[dict[str, tuple[float, float]], tuple[str, str]]:
    """The proposal's rows (dataset -> (bidirectional, standard)) and its two column names, from the reference."""
    text = path.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :].split("\n## ", 1)[0]
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines() if line.startswith("|")
    ]
    header, body = rows[0], [r for r in rows[2:] if r[0] != "Avg"]
    return {r[0]: (float(r[1]), float(r[2])) for r in body}, (header[1], header[2])


def sign_flip_p(diffs: np.ndarray) -> float:
    result = sign_flip_test([diffs], permutations=2 ** len(diffs), rng=np.random.default_rng(0))
    assert result.exact
    return result.p


def run_sd(folder: Path, suite: str) -> dict[str, tuple[int, float]]:
    """Each arm's number of runs and the standard deviation of its runs' mean nDCG@10 on the suite."""
    means: dict[str, list[float]] = {}
    for run in sorted((folder / "runs").glob("*-seed*")):
        results = run / "eval" / f"{suite}.json"
        if results.is_file():
            arm = re.sub(r"-seed\d+$", "", run.name)
            means.setdefault(arm, []).append(EvalResult.load(results).mean["ndcg@10"])
    return {arm: (len(v), statistics.stdev(v)) for arm, v in means.items() if len(v) > 1}


def untrained_against_baseline(folder: Path, suite: str) -> tuple[str, float, float] | None:
    """The experiment's own test of its untrained model against the baseline arm (summary.json's mean row):
    (baseline, difference, p), or None when it has no base column."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary = Summary.load(path)
    base = summary.mean_difference(suite, "base")
    return (summary.baseline, base["diff"], base["p"]) if base else None


def first_test_suite(folder: Path) -> str:
    """The experiment's first test suite (its summary.json's first comparison), the one its verdict is about."""
    return next(iter(Summary.load(folder / "summary.json").comparisons))


def report(reference: Path, runs: list[Path], suite: str | None = None) -> str:
    table, (bidirectional, standard) = read_table(reference)
    diffs = np.array([b - s for b, s in table.values()])
    names = list(table)
    largest = names[int(np.argmax(diffs))]
    without = np.array([d for name, d in zip(names, diffs) if name != largest])
    positive, negative = int((diffs > 0).sum()), int((diffs < 0).sum())
    mean_diff = statistics.mean(b for b, _ in table.values()) - statistics.mean(s for _, s in table.values())
    rows = [
        ("sign-flip (exact, 2^13 assignments; bidir's)", sign_flip_p(diffs)),
        ("Wilcoxon signed-rank (exact)", stats.wilcoxon(diffs, method="exact").pvalue),
        (
            f"sign test ({positive} of {positive + negative} positive)",
            stats.binomtest(positive, positive + negative).pvalue,
        ),
        ("one-sample t test", stats.ttest_1samp(diffs, 0.0).pvalue),
        (f"sign-flip without {largest} (exact, 2^{len(without)})", sign_flip_p(without)),
    ]
    md = [
        "## What this says about the proposal's NanoBEIR result",
        "",
        f"Written by `python scripts/proposal_tests.py{''.join(f' --runs {r}' for r in runs)}`. The proposal's table ({reference.name} in ../shared/reference): {bidirectional} against {standard}, one run "
        f"each, NanoBEIR nDCG@10 on {len(diffs)} datasets; mean difference {mean_diff:+.4f}. {bidirectional} is higher on "
        f"{positive} datasets and lower on {negative}; the largest difference is {largest} ({diffs.max():+.4f}). Without "
        "per-query scores each dataset is one observation; four tests of the same 13 numbers:",
        "",
        "| test of the 13 dataset differences | p (two-sided) |",
        "|---|---:|",
        *(f"| {name} | {p:.2f} |" for name, p in rows),
        "",
        (
            "No test finds the difference significant at 0.05"
            if min(p for _, p in rows) > 0.05
            else "Only some of the tests find the difference significant at 0.05"
        )
        + f"; the sign-flip test's p = {rows[0][1]:.2f} hinges on {largest}: without it, p = {rows[-1][1]:.2f}. The "
        "per-dataset rows (50 queries each) cannot be tested at all without per-query scores.",
    ]
    suites = {folder: suite or first_test_suite(folder) for folder in runs}
    measured = [(folder, sds) for folder in runs if (sds := run_sd(folder, suites[folder]))]
    for folder, sds in measured:
        suite = suites[folder]
        worst = max(sd for _, sd in sds.values())
        spread = math.sqrt(2) * worst
        described = "; ".join(f"{arm} {sd:.4f} over {n} runs" for arm, (n, sd) in sds.items())
        md += [
            "",
            f"Run-to-run variation, from `{folder}` (mean nDCG@10 on `{suite}`, one value per training run, seeds "
            f"differing only): standard deviation {described}. With the larger, {worst:.4f}, the difference of two "
            f"single runs varies by about sqrt(2) x {worst:.4f} = {spread:.4f}; the proposal's {mean_diff:+.4f} is "
            f"{abs(mean_diff) / spread:.1f} such standard deviations from zero.",
        ]
        untrained = untrained_against_baseline(folder, suite)
        if untrained and untrained[2] > 0.05:
            baseline, diff, p = untrained
            varies = Summary.load(folder / "summary.json").seeds_vary or ""
            md[-1] += (
                f" Here the fine-tuned runs score like the untrained model on average (the untrained model minus "
                f"{baseline}: {diff:+.4f}, p = {p:.3f}), yet they moved: each changed many queries' scores and is "
                'several times farther from the untrained model than from its sister seeds ("How far the runs '
                'moved" below). Their spread is small because they share their start and their data. '
                f"{varies} So this is the spread of runs that share a training sample: a lower bound for runs that "
                "also differ in their data, not fine-tuning's in general."
            )
    if measured:
        md += [
            "",
            "No setup here is the proposal's (its transformer and training data, NanoBEIR): these are orders of "
            "magnitude, not its error bar. One run per loss cannot tell a difference of this size from a lucky seed "
            "unless its own seeds vary far less.",
        ]
    return "\n".join(md) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=Path("../shared/reference/README.md"))
    parser.add_argument(
        "--runs", type=Path, action="append", default=[], help="an experiment folder whose seeds give the run-to-run SD"
    )
    parser.add_argument("--suite", help="the results file of each run to read (default: each experiment's first "
                        "test suite)")  # fmt: skip
    parser.add_argument("--output", type=Path, help="write the markdown here (default: stdout)")
    args = parser.parse_args()
    text = report(args.reference, args.runs, args.suite)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
