"""Rendering results: ``bidir eval``'s table, and a :class:`~bidir_cli.comparison.Comparison` as a rich
table, markdown, csv, json, or a PNG plot.

Every renderer is a pure function of what it renders: the text ones return a string (the rich ones
print to the console they are given), so tests can call them without a terminal. :data:`FORMATS` is the
one table of ``bidir compare``'s output formats. numpy and matplotlib are imported only when needed, so
that ``bidir --help`` (which lists the formats) stays fast.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .comparison import MEAN, TESTS

if TYPE_CHECKING:
    from .comparison import Comparison, MetaRow


SIGNIFICANT = "*"  # p <= alpha


HOLM = "†"  # still significant after Holm's correction across the datasets


# The plot's size, fixed so that it is the same however many datasets there are (labels rotate to fit).
PLOT_DPI = 100


PLOT_SIZE_PX = (1200, 800)


# A cell is (text, bold); a row is a list of cells.
Row = list[tuple[str, bool]]


def _value(x: float) -> str:
    return f"{x:.4f}"


def _signed(x: float) -> str:
    return f"{x:+.4f}"


def _p(p: float) -> str:
    return f"{p:.3g}"


def _unit(kind: str, magnitude: float) -> tuple[float, str]:
    """The divisor and unit that show a measurement of this size readably."""
    if kind == "duration":
        return (1, "s") if magnitude < 60 else (60, "min") if magnitude < 3600 else (3600, "h")
    if kind == "bytes":
        return (2**30, "GiB") if magnitude >= 2**30 else (2**20, "MiB")
    return (1, "")


def _meta_text(row: MetaRow, values: list[Any]) -> str:
    """A meta row's cell: a measurement's mean (± std over seeds, in the same unit), or a setting's distinct values."""
    if row.kind == "setting":
        shown = ("–" if v is None else v if isinstance(v, str) else json.dumps(v) for v in values)
        return ", ".join(dict.fromkeys(shown))
    from .stats import seed_mean_std

    present = [v for v in values if v is not None]
    if not present:
        return "–"
    mean, std = seed_mean_std(present)
    divisor, unit = _unit(row.kind, mean)
    text = f"{mean / divisor:,.2f}" if std is None else f"{mean / divisor:,.2f} ± {std / divisor:,.2f}"
    return f"{text} {unit}".rstrip()


def _marks(c: Comparison, row: str, name: str) -> str:
    d = c.differences[row][name]
    return (SIGNIFICANT if d.significant else "") + (HOLM if d.holm_significant else "")


def _grid(c: Comparison) -> tuple[list[tuple[str, str]], list[list[Row]]]:
    """Headers with their alignment, and the body in sections: datasets, the mean, meta rows."""
    headers = [("dataset", "left"), ("queries", "right")]
    headers += [(col.name, "right") for col in c.columns]
    for name in c.others:
        headers += [(f"Δ {name}", "right"), (f"{c.level:.0%} CI", "left"), ("p", "right"), ("MDD", "right")]
        headers += [(f"runs for {c.target_diff:g}", "right")]

    def metric_row(row: str) -> Row:
        cells = c.cells[row]
        best = max(cell.value for cell in cells.values())
        out: Row = [(row, False), (str(c.queries[row]), False)]
        for col in c.columns:
            cell = cells[col.name]
            text = _value(cell.value) if cell.std is None else f"{_value(cell.value)} ± {_value(cell.std)}"
            out.append((text, cell.value == best))
        for name in c.others:
            d = c.differences[row][name]
            marks = _marks(c, row, name)
            out += [
                (_signed(d.diff) + (f" {marks}" if marks else ""), False),
                (f"[{_signed(d.ci[0])}, {_signed(d.ci[1])}]", False),
                (_p(d.p), False),
                (_value(d.mdd), False),
                (d.runs_needed_text, False),
            ]
        return out

    def meta_row(row: MetaRow) -> Row:
        blanks = [("", False)] * (5 * len(c.others))
        return [
            (row.name, False),
            ("", False),
            *((_meta_text(row, row.values[col.name]), False) for col in c.columns),
            *blanks,
        ]

    sections = [[metric_row(d) for d in c.datasets], [metric_row(MEAN)], [meta_row(r) for r in c.meta_rows]]
    return headers, [s for s in sections if s]


def legend(c: Comparison) -> list[str]:
    """What the numbers and marks mean, one sentence a line; for each compared column, the test it got."""
    groups = [col for col in c.columns if col.group]
    lines = [f"{c.metric}, the mean over each dataset's queries; the mean row weighs every dataset equally."]
    if groups:
        sizes = ", ".join(f"{col.name}: {len(col.sources)} runs" for col in groups)
        lines.append(f"Groups ({sizes}) show the mean ± standard deviation over their runs.")
    if not c.others:
        return lines
    runs = {col.name: len(col.sources) for col in c.columns}
    for name in c.others:
        test = c.differences[MEAN][name].test
        title, unit, covers = TESTS[test]
        how = (
            f"{runs[name]} vs {runs[c.baseline]} runs, Satterthwaite degrees of freedom"
            if test == "run_t"
            else f"{c.permutations:,} random sign flips, or all of them when there are fewer"
        )
        lines.append(f"Δ {name}: {name} minus {c.baseline}, {title} (unit: the {unit}; {how}); it covers {covers}.")
    lines += [
        f"{c.level:.0%} CI: the differences the test does not reject, so it excludes 0 exactly when p ≤ {c.alpha:g}; "
        "the mean row's test is stratified by dataset.",
        f"MDD: the smallest true difference detected with {c.power:.0%} power (two-sided, α {c.alpha:g}), over what the "
        f"test covers; runs for {c.target_diff:g}: runs per side for {c.power:.0%} power at a difference of "
        f"{c.target_diff:g} (not reachable: query sampling alone is too wide; unknown: one run on a side).",
        f"{SIGNIFICANT} p ≤ {c.alpha:g}; {HOLM} also significant after Holm's correction across the "
        f"{len(c.datasets)} datasets.",
    ]
    return lines


def render_table(c: Comparison, console: Console) -> None:
    """Print the comparison as a rich table, best value per row in bold, the legend as its caption.

    The console is widened if it is too narrow for the table's natural width.
    """
    headers, sections = _grid(c)
    table = Table(
        title=Text(f"{c.metric}: baseline {c.baseline}"),
        caption=Text("\n".join(legend(c))),
        caption_justify="left",
        box=box.SIMPLE_HEAD,  # light rules: more of a narrow terminal for the numbers
    )
    for header, align in headers:
        table.add_column(Text(header), justify=align)
    for i, section in enumerate(sections):
        if i:
            table.add_section()
        for row in section:
            table.add_row(*(Text(text, style="bold" if bold else "") for text, bold in row))
    # Wrapping or cutting cells garbles numbers (rich cuts words when a table is pressed hard), so the table
    # always gets its natural width, even past a narrow terminal's edge.
    console.width = max(console.width, Measurement.get(console, console.options.update_width(10_000), table).maximum)
    console.print(table)


def _md(text: str) -> str:
    """Escape what markdown would read as emphasis, code, html or a cell boundary."""
    return re.sub(r"([\\`*_|<])", r"\\\1", text)


def render_markdown(c: Comparison) -> str:
    """A GitHub-flavoured markdown table (best value per row in bold) and its legend, pasteable as is."""
    headers, sections = _grid(c)
    lines = [
        "| " + " | ".join(_md(h) for h, _ in headers) + " |",
        "|" + "|".join("---:" if align == "right" else "---" for _, align in headers) + "|",
    ]
    for section in sections:
        for row in section:
            lines.append("| " + " | ".join(f"**{_md(t)}**" if bold else _md(t) for t, bold in row) + " |")
    return "\n".join(lines) + "\n\n" + "".join(f"- {_md(line)}\n" for line in legend(c))


def render_csv(c: Comparison) -> str:
    """One line per (row, column) of the metric rows, every number at full precision.

    The baseline's difference fields, and the mean row's Holm fields, are empty; so is ``df`` for the
    sign-flip test. Numeric columns hold numbers or nothing: ``runs_needed`` is empty when no count can be given,
    and ``runs_needed_note`` says why (``>N``, ``not reachable``, ``unknown``).
    """
    header = ["row", "column", "queries", "value", "std", "seeds", "diff", "ci_low", "ci_high", "p", "p_exact"]
    header += ["p_holm", "significant", "holm_significant", "test", "unit", "se", "df", "mdd", "runs_needed"]
    header += ["runs_needed_note"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in c.rows:
        for col in c.columns:
            cell = c.cells[row][col.name]
            line = [row, col.name, c.queries[row], cell.value, cell.std, len(cell.seeds)]
            d = c.differences[row].get(col.name)
            if d is not None:
                line += [d.diff, d.ci[0], d.ci[1], d.p, d.exact, d.p_holm, d.significant, d.holm_significant]
                note = None if d.runs_needed is not None else d.runs_needed_text
                line += [d.test, d.unit, d.se, d.df, d.mdd, d.runs_needed, note]
            line += [None] * (len(header) - len(line))
            writer.writerow(["" if v is None else v for v in line])
    return out.getvalue()


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """Every number of the comparison as plain JSON types (an infinite one, such as an open interval end, as null)."""
    return _finite(
        {
            "metric": c.metric,
            "baseline": c.baseline,
            "alpha": c.alpha,
            "level": c.level,
            "power": c.power,
            "target_diff": c.target_diff,
            "permutations": c.permutations,
            "seed": c.seed,
            "columns": [
                {"name": col.name, "group": col.group, "runs": [str(s.path) for s in col.sources]} for col in c.columns
            ],
            "datasets": c.datasets,
            "left_out": c.left_out,
            "rows": [
                {
                    "name": row,
                    "queries": c.queries[row],
                    "cells": {
                        name: {"value": cell.value, "std": cell.std, "seeds": cell.seeds}
                        for name, cell in c.cells[row].items()
                    },
                    "differences": {
                        name: {
                            "diff": d.diff,
                            "ci_low": d.ci[0],
                            "ci_high": d.ci[1],
                            "p": d.p,
                            "p_exact": d.exact,
                            "significant": d.significant,
                            "p_holm": d.p_holm,
                            "holm_significant": d.holm_significant,
                            "test": d.test,
                            "unit": d.unit,
                            "covers": d.covers,
                            "se": d.se,
                            "df": d.df,
                            "mdd": d.mdd,
                            "runs_needed": d.runs_needed,
                            "runs_needed_text": d.runs_needed_text,
                            "variance_components": d.components,
                        }
                        for name, d in c.differences[row].items()
                    },
                }
                for row in c.rows
            ],
            "meta_rows": [{"name": r.name, "kind": r.kind, "values": r.values} for r in c.meta_rows],
        }
    )


def _finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float, however deep, replaced by None (JSON has no infinity)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render_json(c: Comparison) -> str:
    return json.dumps(comparison_dict(c), indent=2, allow_nan=False) + "\n"


def save_plot(c: Comparison, path: Path) -> tuple[int, int]:
    """Save a grouped bar chart as a PNG of :data:`PLOT_SIZE_PX` pixels; return its size.

    Top: each column's value per dataset and for the mean (whiskers: std over seeds, for groups).
    Bottom, when there is a baseline to compare with: each difference from it with its test's
    interval (an open end is not drawn), marked as in the table. The paired interval is the one to read: intervals of the
    values themselves would overlap even where the paired difference is clear.
    """
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global backend, no display needed

    fig = Figure(figsize=(PLOT_SIZE_PX[0] / PLOT_DPI, PLOT_SIZE_PX[1] / PLOT_DPI), dpi=PLOT_DPI, layout="constrained")
    axes = fig.subplots(2 if c.others else 1, 1, sharex=True, squeeze=False)[:, 0]
    rows = c.rows
    x = np.arange(len(rows))

    width = 0.8 / len(c.columns)
    for k, col in enumerate(c.columns):
        cells = [c.cells[row][col.name] for row in rows]
        errors = [cell.std or 0.0 for cell in cells] if col.group else None
        label = f"{col.name} (baseline)" if col.name == c.baseline else col.name
        axes[0].bar(
            x + (k - (len(c.columns) - 1) / 2) * width,
            [cell.value for cell in cells],
            width,
            yerr=errors,
            capsize=2,
            label=label,
        )
    axes[0].set_ylabel(c.metric)
    axes[0].legend(fontsize="small")

    if c.others:
        width = 0.8 / len(c.others)
        colors = [f"C{k}" for k, col in enumerate(c.columns) if col.name != c.baseline]
        for k, (name, color) in enumerate(zip(c.others, colors, strict=True)):
            diffs = [c.differences[row][name] for row in rows]
            centre = x + (k - (len(c.others) - 1) / 2) * width
            values = np.array([d.diff for d in diffs])
            errors = np.array([[d.diff - d.ci[0] for d in diffs], [d.ci[1] - d.diff for d in diffs]])
            errors[~np.isfinite(errors)] = 0.0
            axes[1].bar(centre, values, width, yerr=errors, capsize=2, color=color, label=f"{name} − {c.baseline}")
            for xi, d, row in zip(centre, diffs, rows, strict=True):
                marks = _marks(c, row, name)
                if marks:
                    top = d.ci[1] if math.isfinite(d.ci[1]) else d.diff
                    axes[1].annotate(marks, (xi, top), ha="center", va="bottom", fontsize="small")
        axes[1].axhline(0, color="black", linewidth=0.8)
        axes[1].set_ylabel(f"Δ {c.metric} ({c.level:.0%} CI)")
        axes[1].legend(fontsize="small")

    axes[-1].set_xticks(x, rows, rotation=45, ha="right")
    fig.savefig(path, format="png", dpi=PLOT_DPI)
    return PLOT_SIZE_PX


FORMATS: dict[str, Callable[[Comparison, TextIO], None]] = {
    "table": lambda c, out: render_table(c, Console(file=out, highlight=False)),
    "markdown": lambda c, out: out.write(render_markdown(c)),
    "csv": lambda c, out: out.write(render_csv(c)),
    "json": lambda c, out: out.write(render_json(c)),
}
