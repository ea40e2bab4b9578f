"""What the committed experiments' figures rest on, computed from their files: a section of docs/results.md.

For each experiment given (its file and output folder), from the cells' results files (per-query nDCG@10):

- **How far the runs moved**: for each arm, the share of queries whose score changed from the untrained model's,
  the mean absolute per-query change from it, and the same distance between runs of the arm (sister seeds). A run
  that stayed where it started is as far from the untrained model as from its sisters; a run that moved but whose
  sisters moved alike is several times farther from the start than from them.
- **Each arm against the untrained model**: bidir's comparison with the untrained model as the baseline.
- **Per-dataset verdicts with the queries held fixed**: bidir's per-dataset tests treat a dataset's queries as a
  sample (their variance is in the interval). Held fixed, a dataset's difference is tested on the runs' means only
  (Welch's t test), then Holm's correction over the datasets; the table sets both side by side.
- **The development suite against the test suites**: for a selection on a development suite, the documents
  relevant to test queries that are also relevant to development queries of the same corpus (read from the
  suites' qrels).

    python scripts/reading_notes.py configs/experiments/static.yaml=docs/experiments/static ... --output FILE
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bidir_cli.compare.comparison import MEAN, Column  # noqa: E402
from bidir_cli.compare.stats import holm  # noqa: E402
from bidir_cli.eval.metrics import PRIMARY_METRIC  # noqa: E402
from bidir_cli.eval.suites import resolve_suite  # noqa: E402
from bidir_cli.experiment.cells import Cell, Experiment  # noqa: E402
from bidir_cli.experiment.records import Summary  # noqa: E402
from bidir_cli.runs.results import EvalResult  # noqa: E402
from bidir_cli.runs.settings import DEFAULT_SETTINGS  # noqa: E402


def per_query(result: EvalResult) -> dict[str, np.ndarray]:
    """Dataset -> the per-query primary metric, in the file's query order."""
    return {name: np.asarray(d.per_query[PRIMARY_METRIC], dtype=float) for name, d in result.datasets.items()}


def runs_by_arm(exp: Experiment, suite: str) -> tuple[dict[str, list[dict[str, np.ndarray]]], dict | None]:
    """Each arm's runs (per-query scores on ``suite``, seeded cells only) and the untrained model's (or None)."""
    arms: dict[str, list[dict[str, np.ndarray]]] = {}
    base = None
    for cell in exp.test_cells():
        result = exp.result(cell, suite)
        if result is None:
            continue
        if cell.kind == "base":
            base = per_query(result)
        else:
            arms.setdefault(cell.arm, []).append(per_query(result))
    return arms, base


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, float]:
    """(share of queries whose score differs, mean absolute per-query difference), over every query of every
    dataset the two share (the same query order: the same dataset files)."""
    x = np.concatenate([a[d] for d in sorted(a) if d in b])
    y = np.concatenate([b[d] for d in sorted(a) if d in b])
    return float(np.mean(x != y)), float(np.mean(np.abs(x - y)))


def movement_rows(exp: Experiment, suite: str) -> list[str]:
    arms, base = runs_by_arm(exp, suite)
    if base is None:
        return []
    rows = []
    for arm, runs in arms.items():
        to_base = [distance(run, base) for run in runs]
        sisters = [distance(a, b)[1] for a, b in itertools.combinations(runs, 2)]
        share = f"{min(s for s, _ in to_base):.0%}-{max(s for s, _ in to_base):.0%}"
        moved = float(np.mean([m for _, m in to_base]))
        apart = float(np.mean(sisters)) if sisters else float("nan")
        rows.append(f"| {exp.spec.name} | `{resolve_suite(suite).name}` | {arm} | {len(runs)} | {share} | "
                    f"{moved:.4f} | {apart:.4f} | {moved / apart:.1f} |")  # fmt: skip
    return rows


def against_base_rows(exp: Experiment, suite: str) -> list[str]:
    from bidir_cli.compare.build import build_comparison, load_source

    name = resolve_suite(suite).name
    cells: dict[str, list[Cell]] = {}
    for cell in exp.test_cells():
        if exp.result(cell, suite) is not None:
            cells.setdefault("base" if cell.kind == "base" else cell.arm, []).append(cell)
    if "base" not in cells:
        return []
    columns = [
        Column(arm, [load_source(exp.run_dir(c).path, name, DEFAULT_SETTINGS) for c in group], group=arm != "base")
        for arm, group in sorted(cells.items(), key=lambda item: item[0] != "base")
    ]
    comparison = build_comparison(columns, baseline="base", metric=PRIMARY_METRIC, permutations=10_000, seed=0)
    rows = []
    for arm in comparison.others:
        d = comparison.differences[MEAN][arm]
        rows.append(f"| {exp.spec.name} | `{name}` | {arm} - untrained | {d.diff:+.4f} | [{d.ci[0]:+.4f}, "
                    f"{d.ci[1]:+.4f}] | {d.p:.3g} | {d.test} |")  # fmt: skip
    return rows


def fixed_queries_rows(exp: Experiment, suite: str, summary_rows: dict[str, dict]) -> list[str]:
    """Per dataset and arm: bidir's run-level p (queries a sample) and Holm, against Welch's t test on the runs'
    means (queries fixed) and Holm; only datasets where one of them is below 0.05."""
    from scipy.stats import ttest_ind

    arms, _ = runs_by_arm(exp, suite)
    baseline = arms.get(exp.spec.baseline, [])
    rows = []
    for arm, runs in arms.items():
        if arm == exp.spec.baseline or min(len(runs), len(baseline)) < 2:
            continue
        datasets = sorted(runs[0])
        fixed = [float(ttest_ind([r[d].mean() for r in runs], [r[d].mean() for r in baseline], equal_var=False).pvalue)
                 for d in datasets]  # fmt: skip
        fixed_holm = holm(fixed)[0]
        for d, p, p_holm in zip(datasets, fixed, fixed_holm, strict=True):
            ours = summary_rows[d]["differences"][arm]
            if min(ours["p"], p) <= 0.05:
                rows.append(f"| {exp.spec.name} | {arm} - {exp.spec.baseline} | {d} | {ours['diff']:+.4f} | "
                            f"{ours['p']:.3g} / {ours['p_holm']:.3g} | {p:.3g} / {p_holm:.3g} |")  # fmt: skip
    return rows


def overlap_lines(exp: Experiment) -> list[str]:
    """Documents relevant to a test query that are also relevant to a development query, per test dataset whose
    corpus is a development dataset's corpus."""
    if exp.spec.select is None:
        return []
    dev = resolve_suite(exp.spec.select.suite).load()
    lines = []
    for test in resolve_suite(exp.suites[0]).load():
        for d in dev:
            if d.corpus_ids != test.corpus_ids or d.corpus_texts != test.corpus_texts:
                continue
            test_relevant = set().union(*(test.relevant(q) for q in test.query_ids))
            dev_relevant = set().union(*(d.relevant(q) for q in d.query_ids))
            shared = test_relevant & dev_relevant
            lines.append(
                f"- {exp.spec.name}: the development suite's `{d.name}` shares its corpus with the test dataset "
                f"`{test.name}` ({len(test.corpus_ids):,} documents): {len(shared)} of the {len(test_relevant)} documents "
                f"relevant to `{test.name}`'s test queries are relevant to development queries too, so the setting "
                f"chosen there was chosen partly on `{test.name}`'s relevant documents."
            )
    return lines


def report(experiments: list[tuple[Path, Path]]) -> str:
    loaded = [Experiment(file, folder) for file, folder in experiments]
    command = " ".join(f"{f}={d}" for f, d in experiments)
    md = ["## Reading the results: what the figures rest on", "",
          f"Written by `python scripts/reading_notes.py {command}` from the cells' results files.", ""]  # fmt: skip
    movement = [
        row for exp in loaded for suite in [*exp.suites, *exp.spec.confirm] for row in movement_rows(exp, suite)
    ]
    if movement:
        md += ["### How far the runs moved", "",
               "Per query (nDCG@10), each run against the untrained model and against its sister seeds (the other "
               "runs of its arm), over every query of the suite. A run that stayed where it started would be as close "
               "to the untrained model as to its sisters; the ratio says how many times farther it moved than its "
               "sisters differ from one another.", "",
               "| experiment | suite | arm | runs | queries changed | mean abs change from untrained | mean abs "
               "difference between sister seeds | ratio |", "|---|---|---|---:|---:|---:|---:|---:|", *movement, ""]  # fmt: skip
    against = [
        row for exp in loaded for suite in [*exp.suites, *exp.spec.confirm] for row in against_base_rows(exp, suite)
    ]
    if against:
        md += ["### Each arm against the untrained model", "",
               "bidir's comparison with the untrained model (one run) as the baseline: the paired sign-flip test over "
               "queries, which covers query sampling only.", "",
               "| experiment | suite | difference | mean nDCG@10 | 95% CI | p | test |", "|---|---|---|---:|---|---:|---|",
               *against, ""]  # fmt: skip
    fixed = []
    for exp in loaded:
        summary = Summary.load(exp.dir / "summary.json")
        for suite, comparison in summary.comparisons.items():
            rows = {r["name"]: r for r in comparison["rows"]}
            fixed += fixed_queries_rows(exp, next(s for s in exp.suites if resolve_suite(s).name == suite), rows)
    if fixed:
        md += ["### Per-dataset verdicts with the queries held fixed", "",
               "bidir's per-dataset tests (run-level t) treat a dataset's queries as a sample of the queries that "
               "could have been asked: their variance is in the interval. Held fixed (the question is then only "
               "about these queries), a dataset's difference is tested on the runs' means alone (Welch's t test). "
               "Datasets where either p is at most 0.05; p / Holm-adjusted p over the tier's datasets:", "",
               "| experiment | difference | dataset | mean | p / Holm, queries a sample (bidir) | p / Holm, queries "
               "fixed |", "|---|---|---|---:|---:|---:|", *fixed, ""]  # fmt: skip
    overlap = [line for exp in loaded for line in overlap_lines(exp)]
    if overlap:
        md += ["### The development suite and the test suite", "", *overlap, ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiments", nargs="+", help="FILE=FOLDER: an experiment file and its output folder")
    parser.add_argument("--output", type=Path, help="write the section here (default: standard output)")
    args = parser.parse_args(argv)
    pairs = [tuple(map(Path, item.split("=", 1))) for item in args.experiments]
    text = report(pairs)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
