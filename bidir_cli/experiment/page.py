"""``bidir results-page``: several experiments on one page (docs/results.md), built from their report.md and
summary.json files: a summary table and lines first, then sections (other scripts' output), then each report with
its headings one level down and its links rewritten to resolve from the page's folder. The summary table can also
be put into another file (a README) between its markers.
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

from ..compare.comparison import MEAN
from ..errors import InputError
from ..runs.atomic import atomic_write_text
from ..runs.rundir import RunDir
from .cells import meta_or_none
from .records import Summary


def write_results_page(
    experiments: list[str], title: str, sections: list[Path], output: Path | None, table_into: Path | None
) -> str:
    """The page (returned; written to ``output`` when given), and its table put into ``table_into``.

    Each of ``experiments`` is an output folder with its report, or ``FILE=FOLDER``: an experiment file and its
    output folder, whose report is rebuilt when every cell is complete and which is listed as not complete
    otherwise (one definition of complete: every cell done, as ``--plan`` has nothing to run)."""
    if table_into and output is None:
        raise InputError("--table-into needs --output: its table links to the page")
    folders, waiting = complete_experiments(experiments)
    rebuilt = [f / "rebuilt.md" for f in folders if (f / "rebuilt.md").is_file()]
    text = results_page(folders, title, [*rebuilt, *sections], page_dir=output.parent if output else None,
                        waiting=waiting)  # fmt: skip
    if output:
        atomic_write_text(output, text)
    if table_into:
        link = Path(os.path.relpath(output.resolve(), table_into.resolve().parent)).as_posix()
        put_table(table_into, headline_table(folders, link))
    return text


def complete_experiments(experiments: list[str]) -> tuple[list[Path], list[str]]:
    """The folders to report (an experiment given as FILE=FOLDER has its report rebuilt first) and a line for
    each experiment that is not complete."""
    from .cells import Experiment
    from .report import write_report

    folders, waiting = [], []
    for item in experiments:
        if "=" not in item:
            folders.append(Path(item))
            continue
        file, folder = (Path(x) for x in item.split("=", 1))
        if not (folder / "runs").is_dir():
            waiting.append(f"`{file}`: no cell has run")
            continue
        exp = Experiment(file, folder)
        if exp.complete():
            write_report(exp)
            folders.append(folder)
        else:
            done = sum(exp.state(c) == "done" for c in exp.cells())
            waiting.append(f"`{file}`: running, {done} cells complete so far; reported once every cell is")
    return folders, waiting


def results_page(
    dirs: list[Path],
    title: str = "Results",
    sections: list[Path] | None = None,
    page_dir: Path | None = None,
    waiting: list[str] | None = None,
) -> str:
    """Several experiments on one page (docs/results.md): a summary built from each ``summary.json`` (the verdicts
    with their tests and intervals, the confirmation, the training cost), then ``sections`` (markdown files, e.g. a
    script's output), then each report.md with its headings one level down. Relative links and images of a report
    or section are rewritten to resolve from ``page_dir``, the page's own folder (default: the current one)."""
    parts = [f"# {title}", "", "## Summary", "", *headline_table(dirs, ""), ""]
    reports = []
    for folder in dirs:
        report, summary = folder / "report.md", folder / "summary.json"
        if not report.is_file() or not summary.is_file():
            raise InputError(f"{folder}: no report.md (run `bidir experiment FILE --report-only` first)")
        parts += _summary_lines(folder, Summary.load(summary))
        reports.append(relink(report.read_text(encoding="utf-8"), folder, page_dir or Path.cwd()))
    if waiting:
        parts += ["## Not complete yet", "", *(f"- {line}" for line in waiting), ""]
    for section in sections or []:
        if not section.is_file():
            raise InputError(f"--section {section}: no such file")
        parts += [relink(section.read_text(encoding="utf-8"), section.parent, page_dir or Path.cwd()).rstrip("\n"), ""]
    for text in reports:
        parts += ["\n".join(("#" + line if line.startswith("#") else line) for line in text.splitlines()), ""]
    return "\n".join(parts)


TABLE_START, TABLE_END = "<!-- bidir results-page: table -->", "<!-- bidir results-page: end of table -->"


def headline_table(dirs: list[Path], page: str) -> list[str]:
    """One row per trained arm of each experiment against its baseline, on the first test suite and the first
    held-out suite (its confirmation): the mean difference, its interval and p, from each summary.json. The
    experiment's name links to its report on the page (``page``: the page's path from where the table is shown,
    empty on the page itself). A sequential experiment's arm that stopped shows its stage-wise figures on the test
    suite (the median-unbiased difference, its stage-wise interval and p) and the runs it used of the most."""
    lines = ["| experiment | difference | runs per arm | mean nDCG@10 difference [95% CI] | p | held out: difference "
             "[95% CI] | p |", "|---|---|---:|---|---:|---|---:|"]  # fmt: skip

    def figures(comparison: dict[str, Any], arm: str) -> tuple[str, str]:
        d = next(r for r in comparison["rows"] if r["name"] == MEAN)["differences"][arm]
        return f"{d['diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", f"{d['p']:.3g}"

    for folder in dirs:
        summary = Summary.load(folder / "summary.json")
        suite, comparison = next(iter(summary.comparisons.items()))
        held_out = next(iter((summary.confirmation or {}).get("comparisons", {}).values()), None)
        runs = {c["name"]: c["runs"] for c in comparison["columns"]}
        for arm in (a for a in summary.arms if a != summary.baseline):
            test, p = figures(comparison, arm)
            used = str(runs[arm])
            stopped = (summary.sequential or {}).get("arms", {}).get(arm)
            if stopped and stopped["estimate"] is not None:
                low, high = stopped["ci"]
                test = f"{stopped['estimate']:+.4f} [{low:+.4f}, {high:+.4f}] (sequential, stage-wise)"
                p, used = f"{stopped['p']:.3g}", f"{used} of {len(summary.seeds)}"
            held, held_p = figures(held_out, arm) if held_out else ("not run", "")
            name = summary.experiment
            lines.append(f"| [{name}]({page}#experiment-{name}) | {arm} - {summary.baseline} | {used} | "
                         f"{test} | {p} | {held} | {held_p} |")  # fmt: skip
    return lines


def put_table(path: Path, table: list[str]) -> None:
    """Replace the block between the table markers of ``path`` (a README, say) with ``table``."""
    text = path.read_text(encoding="utf-8")
    if text.count(TABLE_START) != 1 or text.count(TABLE_END) != 1:
        raise InputError(f"--table-into {path}: needs one line {TABLE_START} and one {TABLE_END} around the table")
    before, rest = text.split(TABLE_START)
    after = rest.split(TABLE_END)[1]
    atomic_write_text(path, before + TABLE_START + "\n" + "\n".join(table) + "\n" + TABLE_END + after)


LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


def relink(text: str, source_dir: Path, page_dir: Path) -> str:
    """Markdown links and images relative to ``source_dir`` rewritten relative to ``page_dir`` (absolute ones, web
    addresses and anchors unchanged)."""

    def move(match: re.Match) -> str:
        label, target = match.groups()
        if target.startswith(("#", "/")) or "://" in target:
            return match.group(0)
        moved = os.path.relpath((source_dir / target).resolve(), page_dir.resolve())
        return f"{label}({Path(moved).as_posix()})"

    return LINK.sub(move, text)


def _dataset_lines(suite: str, comparison: dict[str, Any], baseline: str, fixed: str = "") -> list[str]:
    """The trained arms' per-dataset differences that are significant, and whether they survive Holm's correction
    (``fixed``: a label for a sequential experiment's, which treat the runs as fixed in advance)."""
    lines = []
    for arm in (c["name"] for c in comparison["columns"] if c["name"] not in (baseline, "base")):
        found = [(row["name"], row["differences"][arm]) for row in comparison["rows"] if row["name"] != MEAN
                 and arm in row["differences"] and row["differences"][arm]["significant"]]  # fmt: skip
        described = ", ".join(
            f"{name} {d['diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], p = {d['p']:.3g}, "
            + ("also after Holm's correction" if d["holm_significant"] else "not after Holm's correction")
            for name, d in found
        )
        lines.append(
            f"- on `{suite}`, {fixed}{arm} vs {baseline} per dataset (p <= {comparison['alpha']}): "
            f"{described or 'none'}"
        )
    return lines


def _summary_lines(folder: Path, summary: Summary) -> list[str]:
    """One experiment in the page's summary: its size, its verdicts, its confirmation, its cost per run."""
    seeds = f"{len(summary.seeds)} seeds per arm"
    if summary.sequential:  # the runs its looks used, of the most it could have
        used = max((arm["looks"][-1]["runs"] for arm in summary.sequential["arms"].values() if arm["looks"]), default=0)
        seeds = f"a sequential design: {used} of at most {len(summary.seeds)} runs per arm"
    md = [f"**{summary.experiment}** (`{summary.file}`, {seeds}; report below):", ""]
    md += [f"- **read first**: {x}" for x in summary.limitations]
    if summary.seeds_vary:
        md += [f"- {summary.seeds_vary}"]
    if summary.missing:
        md += [f"- **incomplete**: {len(summary.missing)} cell(s) missing; the numbers use the completed cells"]
    for suite, lines in summary.verdicts.items():
        md += [f"- on `{suite}`: {line}" for line in lines]
        fixed = "fixed-design figures, " if summary.sequential else ""
        md += _dataset_lines(suite, summary.comparisons[suite], summary.baseline, fixed)
    confirmation = summary.confirmation
    if confirmation:
        for suite, lines in confirmation["verdicts"].items():
            md += [f"- confirmation (held out, evaluated once) on `{suite}`: {line}" for line in lines]
    else:
        md += ["- confirmation on the held-out suites: not run yet"]
    cost = {}
    for run in sorted((folder / "runs").glob("*-seed*")):
        meta = meta_or_none(RunDir(run))
        if meta and meta.status == "completed" and meta.wall_time_s:
            cost.setdefault(run.name.rsplit("-seed", 1)[0], []).append(meta.wall_time_s)
    if cost:
        md += ["- wall time of `bidir train` per run (mean; meta.json): " + ", ".join(
            f"{arm} {statistics.mean(v):.0f} s" for arm, v in cost.items()) + _wall_time_tests(cost, summary.baseline)]  # fmt: skip
    return md + [""]


def _wall_time_tests(cost: dict[str, list[float]], baseline: str) -> str:
    """Each arm's mean wall time minus the baseline's, with Welch's t test: the runs shared a machine with other
    work, so this is no controlled timing, and a difference is only a difference with its p."""
    from scipy.stats import ttest_ind

    parts = []
    for arm, times in cost.items():
        if arm != baseline and baseline in cost and min(len(times), len(cost[baseline])) >= 2:
            p = ttest_ind(times, cost[baseline], equal_var=False).pvalue
            parts.append(f"{arm} - {baseline} {statistics.mean(times) - statistics.mean(cost[baseline]):+.0f} s "
                         f"(Welch t test p = {p:.2g})")  # fmt: skip
    if not parts:
        return ""
    return "; " + ", ".join(parts) + " (cells ran beside other work on a shared machine: not a controlled timing)"
