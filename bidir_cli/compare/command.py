"""``bidir compare``: the command: load the columns, build the comparison, render it (and its plot).

A *column* of the comparison is one run (a run directory or a results file) or a named group of
runs of the same configuration with different seeds. Every number in the comparison is computed
from the per-query scores in the results files; no model is ever loaded, so the command is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from ..runs.settings import DEFAULT_SETTINGS, EvalSettings
from .build import build_comparison, load_columns
from .comparison import TARGET_DIFF, Comparison


def compare_command(
    inputs: list[str],
    *,
    groups: list[str],
    baseline: str | None,
    metric: str,
    fmt: str,
    plot: Path | None,
    suite: str | None,
    permutations: int,
    seed: int,
    settings: EvalSettings = DEFAULT_SETTINGS,
    mixed_settings: bool = False,
    target_diff: float = TARGET_DIFF,
) -> Comparison:
    """Load the inputs, compare them, print the result to stdout and notes to stderr."""
    from . import render

    if fmt not in render.FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (choose from {', '.join(render.FORMATS)})")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot: {plot} should end in .png (the plot is saved as a PNG image)")
    if not target_diff > 0:
        raise InputError(f"--target-diff: {target_diff} should be a positive difference in {metric}")
    columns = load_columns(inputs, groups, suite, settings)
    comparison = build_comparison(
        columns,
        baseline=baseline,
        metric=metric,
        permutations=permutations,
        seed=seed,
        mixed_settings=mixed_settings,
        target_diff=target_diff,
    )
    for note in comparison.notes:  # a note that starts "warning: " is printed as one
        print(f"bidir: {note}" if note.startswith("warning: ") else f"bidir: note: {note}", file=sys.stderr)
    render.FORMATS[fmt](comparison, sys.stdout)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        width, height = render.save_plot(comparison, plot)
        print(f"bidir: wrote {plot} ({width}x{height} px)", file=sys.stderr)
    return comparison
