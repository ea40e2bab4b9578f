"""The report's selection tables (one per stage), the floor for "trained enough", and each chosen setting against
the untrained model on the development suite."""

from __future__ import annotations

from pathlib import Path

from ..compare.comparison import Column
from ..runs.rundir import RunDir
from ..runs.settings import DEFAULT_SETTINGS
from .cells import Cell, Experiment
from .selection import extended, walk


def selection_table(exp: Experiment) -> list[str]:
    select = exp.spec.select
    if select is None:
        return []
    chosen = exp.chosen() or {}
    cells = exp.selection_cells()
    scores = {c.name: r.mean[select.metric] for c in cells if (r := exp.result(c, select.suite))}
    stages = select.all_stages
    lines: list[str] = []
    for s, stage in enumerate(stages, 1):
        who = f"on the baseline arm, {exp.spec.baseline}, for every arm" if stage.shared else "per arm"
        title = f"Chosen {who}" if len(stages) == 1 else f"Stage {s} of {len(stages)}: chosen {who}"
        after = "" if s == 1 else ", at the choices of the stages before"
        keys = list(stage.grid)
        lines += ([""] if s > 1 else []) + [
            f"{title} on `{Path(select.suite).name}` (seed {select.seed}, {select.metric}, mean over datasets{after}):",
            "", "| arm | " + " | ".join(keys) + f" | {select.metric} | chosen |", "|---|" + "---|" * (len(keys) + 2)]  # fmt: skip
        prefix = "select-" if len(stages) == 1 else f"select{s}-"
        mine = [c for c in cells if c.name.startswith(prefix)]
        for cell in mine:
            score = f"{scores[cell.name]:.4f}" if cell.name in scores else "pending"
            values = {k: cell.overrides[k] for k in keys}
            picked = bool(chosen) and {k: chosen.get(cell.arm, {}).get(k) for k in keys} == values
            grown = [k for k in keys if cell.overrides[k] not in stage.grid[k]]
            edge = [k for k in keys if picked and (cell.overrides[k] in (stage.grid[k][0], stage.grid[k][-1]) or grown)]
            notes = []
            if edge and len(stage.grid[edge[0]]) > 1:
                extensible = (
                    select.extend_edges and not grown and extended(stage.grid[edge[0]], values[edge[0]]) is not None
                )
                notes.append("edge of the grid: " + ", ".join(edge) + (" (extended once)" if grown else "")
                             if not extensible else "edge of the grid: extended one step")  # fmt: skip
            others = [scores[c.name] for c in mine if c.arm == cell.arm and c.name != cell.name and c.name in scores]
            if picked and cell.name in scores and others:  # one run per setting: how far from the next best
                notes.append(f"{scores[cell.name] - max(others):+.4f} over the next best, one run each")
            flag = f" ({'; '.join(notes)})" if notes else ""
            row = " | ".join(str(cell.overrides[k]) + (" (extension)" if k in grown else "") for k in keys)
            lines.append(f"| {cell.arm} | {row} | {score} | {'yes' + flag if picked else ''} |")
    base = next((c for c in exp.test_cells() if c.kind == "base"), None)
    if base and (result := exp.result(base, select.suite)):
        lines.append(
            "| base (untrained) | "
            + " | ".join("-" for _ in stages[-1].grid)
            + f" | {result.mean[select.metric]:.4f} | |"
        )
        lines += ["", *_against_base(exp, base)]
    return lines + floor_lines(exp)


def floor_lines(exp: Experiment) -> list[str]:
    """Trained enough? The chosen setting of the floor's arm against the reference run on the development suite."""
    floor = exp.spec.select.floor
    picked = walk(exp).picked if floor else None
    cell = picked[floor.arm] if picked else None
    if floor is None or cell is None or (mine := exp.result(cell, exp.spec.select.suite)) is None:
        return []
    from ..eval.suites import resolve_suite

    metric = exp.spec.select.metric
    _, reference = RunDir(Path(floor.reference)).find_results(
        resolve_suite(exp.spec.select.suite).name, DEFAULT_SETTINGS
    )
    gap = mine.mean[metric] - reference.mean[metric]
    verdict = ("trained enough by the plan's rule" if gap >= -floor.within else
               "**below the floor: the comparison is of undertrained models**")  # fmt: skip
    return ["", f"Trained enough? {floor.arm}'s chosen setting scores {mine.mean[metric]:.4f} on the development suite, "
            f"the reference (`{Path(floor.reference).name}`, fixed in the plan) {reference.mean[metric]:.4f}: "
            f"{gap:+.4f}, floor {-floor.within:+.4f}: {verdict}."]  # fmt: skip


def _against_base(exp: Experiment, base: Cell) -> list[str]:
    """Did training change the model? Each arm's chosen selection run against the untrained model on the
    development suite (one run each: the paired test over its queries, which covers query sampling only)."""
    from ..compare.build import build_comparison, load_source
    from ..eval.suites import resolve_suite
    from .comparisons import verdict_lines

    suite = resolve_suite(exp.spec.select.suite).name
    columns = [Column("base", [load_source(exp.run_dir(base).path, suite, DEFAULT_SETTINGS)])]
    selection = walk(exp)
    picked = {cell.name for cell in (selection.picked or {}).values()}
    for cell in selection.cells:  # in the selection's order, each picked cell once
        if cell.name in picked and exp.result(cell, exp.spec.select.suite):
            columns.append(
                Column(f"{cell.arm} ({cell.name})", [load_source(exp.run_dir(cell).path, suite, DEFAULT_SETTINGS)])
            )
    if len(columns) < 2:
        return []
    comparison = build_comparison(columns, baseline="base", metric=exp.spec.select.metric, permutations=10_000, seed=0,
                                  target_diff=exp.spec.target_diff)  # fmt: skip
    return ["Each chosen setting against the untrained model on the development suite:", "",
            *(f"- {line}" for line in verdict_lines(comparison))]  # fmt: skip
