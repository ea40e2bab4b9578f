"""An experiment's comparisons (one per suite: a column per arm, its completed seeds) and their verdict sentences:
what the report, the selection tables and the sequential analysis read. Imports no other experiment module, so
those may all use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..compare.comparison import MEAN, TESTS, Column, Comparison
from ..eval.metrics import PRIMARY_METRIC
from ..runs.settings import DEFAULT_SETTINGS

if TYPE_CHECKING:
    from .cells import Cell, Experiment


def comparisons(exp: Experiment, suites: list[str], cells: list[Cell]) -> dict[str, Comparison]:
    """One comparison per suite: a column per arm (its completed seeds; the base model too)."""
    from ..compare.build import build_comparison, load_source
    from ..eval.suites import resolve_suite

    out = {}
    for suite in suites:
        name = resolve_suite(suite).name
        columns = []
        for arm in [exp.spec.baseline, *(a for a in exp.spec.arms if a != exp.spec.baseline), "base"]:
            runs = [c for c in cells if (c.arm == arm and c.kind == "test") or (arm == "base" and c.kind == "base")]
            sources = [load_source(exp.run_dir(c).path, name, DEFAULT_SETTINGS) for c in runs if exp.result(c, suite)]
            if sources:
                columns.append(Column(arm, sources, group=True))
        if len(columns) >= 2 and columns[0].name == exp.spec.baseline:
            out[name] = build_comparison(
                columns, baseline=exp.spec.baseline, metric=PRIMARY_METRIC, permutations=10_000, seed=0,
                target_diff=exp.spec.target_diff,
            )  # fmt: skip
    return out


def verdict_lines(c: Comparison) -> list[str]:
    """One sentence per arm: the mean difference, its interval, its test and what the comparison could detect."""
    lines = []
    for arm in c.others:
        d = c.differences[MEAN][arm]
        mark = "significant" if d.significant else "not significant"
        runs = d.runs_needed if d.runs_needed is not None else d.runs_needed_text
        lines.append(
            f"**{arm} vs {c.baseline}**: mean {c.metric} difference {d.diff:+.4f}, {c.level:.0%} CI "
            f"[{d.ci[0]:+.4f}, {d.ci[1]:+.4f}], p = {d.p:.3g} ({mark}; {TESTS[d.test][0]}, unit: {d.unit}, covering "
            f"{TESTS[d.test][2]}); minimum detectable difference {d.mdd:.4f} (80% power); runs per arm needed for "
            f"a {c.target_diff:g} difference: {runs}."
        )
    return lines
