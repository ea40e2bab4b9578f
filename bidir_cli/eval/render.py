"""Rendering results: ``bidir eval``'s table, and a :class:`~bidir_cli.comparison.Comparison` as a rich
table, markdown, csv, json, or a PNG plot.

Every renderer is a pure function of what it renders: the text ones return a string (the rich ones
print to the console they are given), so tests can call them without a terminal. :data:`FORMATS` is the
one table of ``bidir compare``'s output formats. numpy and matplotlib are imported only when needed, so
that ``bidir --help`` (which lists the formats) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from .metrics import GRADED_METRIC, SHOWN_METRICS

if TYPE_CHECKING:
    from ..runs.results import EvalResult
from ..runs.settings import EvalSettings


def results_console() -> Console:
    """A console on standard output; a pipe or file has no width, so the table is not squeezed into 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _metric_cell(metrics: dict[str, float], name: str) -> str:
    """A metric's value, or "-" where a dataset merged from an older results file lacks it."""
    return f"{metrics[name]:.4f}" if name in metrics else "-"


def render_eval(result: EvalResult, console: Console) -> None:
    """The results table: one row per dataset and their mean; with mteb, both backends' nDCG@10; with
    ``--graded``, graded nDCG@10 too."""
    with_mteb = any("mteb" in d.extra for d in result.datasets.values())
    columns = SHOWN_METRICS + ((GRADED_METRIC,) if result.settings.get("graded") else ())
    table = Table()
    table.add_column("dataset")
    table.add_column("docs", justify="right")
    table.add_column("queries", justify="right")
    for name in columns:
        table.add_column(name, justify="right")
    if with_mteb:
        table.add_column("mteb ndcg@10", justify="right")
        table.add_column("|diff|", justify="right")
    table.add_column("time (s)", justify="right")

    def mteb_cells(ours: float, theirs: float | None) -> list[str]:
        return ["-", "-"] if theirs is None else [f"{theirs:.4f}", f"{abs(ours - theirs):.1e}"]

    for d in result.datasets.values():
        theirs = d.extra.get("mteb", {}).get("ndcg@10")
        row = [
            d.name,
            str(d.counts["corpus"]),
            str(d.counts["queries"]),
            *(_metric_cell(d.metrics, m) for m in columns),
        ]
        table.add_row(*row, *(mteb_cells(d.metrics["ndcg@10"], theirs) if with_mteb else []), f"{d.time_s:.1f}")
    if len(result.datasets) > 1:
        mean = result.mean
        theirs = [d.extra.get("mteb", {}).get("ndcg@10") for d in result.datasets.values()]
        mteb_mean = sum(theirs) / len(theirs) if with_mteb and None not in theirs else None
        table.add_section()
        table.add_row(
            "mean",
            "",
            "",
            *(_metric_cell(mean, m) for m in columns),
            *(mteb_cells(mean["ndcg@10"], mteb_mean) if with_mteb else []),
            f"{sum(d.time_s for d in result.datasets.values()):.1f}",
        )
    settings = EvalSettings.from_record(result.settings).parts()  # what names its file (dim64, bf16, ...)
    where = f" ({', '.join(settings)})" if settings else ""
    console.print(f"{result.model.get('name')} on {result.suite['name']}{where}", highlight=False)
    console.print(table)
