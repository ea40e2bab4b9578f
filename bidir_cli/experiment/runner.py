"""Running an experiment's cells: the one way a cell is run (:func:`cell_commands`: train, or save the untrained
model for the base cell, then evaluate), used by the run itself, ``--plan``, ``--verify`` and ``--rebuild``.

Every command is a ``bidir train`` or ``bidir eval`` invocation through the experiment's executor, its output
appended to the cell's log: anything a cell does can be done by hand (``--plan`` prints it).
"""

from __future__ import annotations

import shlex
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..console import log
from ..runs.rundir import RunDir
from .cells import Cell, Experiment, in_seed_order


def cell_commands(exp: Experiment, cell: Cell, state: str, output: Path | None = None) -> list[list[str]]:
    """The bidir commands that bring ``cell`` from ``state`` to complete (into ``output`` instead of its own run
    directory when given): train (resume; for the base cell save the untrained model), then evaluate every suite
    the training did not (a trained cell's run evaluates its first suite itself; the untrained model none)."""
    run = output or exp.run_dir(cell).path
    if state == "evaluate":
        return exp.eval_args(cell, exp.missing(cell), run)
    train = exp.train_args(cell, resume=state == "resume", output=output, overwrite=state == "redo")
    evaluated_by_train = 0 if cell.kind == "base" else 1
    return [train, *exp.eval_args(cell, cell.suites[evaluated_by_train:], run)]


def execute(exp: Experiment, cell: Cell, commands: list[list[str]], logfile: Path) -> None:
    """Run a cell's commands in order through the executor, appending their output to ``logfile``."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("a", encoding="utf-8") as f:
        for command in commands:
            f.write(f"$ {shlex.join(exp.shown(command))}\n")
            f.flush()
            status = exp.executor.run(command, exp.env(), f)
            if status:
                raise RuntimeError(f"cell {cell.name}: bidir {command[0]} ... exited {status}; see {logfile}")


def run_cell(exp: Experiment, cell: Cell, *, output: Path | None = None) -> None:
    """Bring one cell to complete (or, with ``output``, run it afresh there: ``--verify``, ``--rebuild``)."""
    state = "new" if output else exp.state(cell)
    if state == "done":
        return
    logfile = exp.log_path(cell) if not output else output.parent / f"{cell.name}.log"
    execute(exp, cell, cell_commands(exp, cell, state, output), logfile)
    if not exp.spec.keep_checkpoints:
        shutil.rmtree(RunDir(output or exp.run_dir(cell).path).checkpoints, ignore_errors=True)  # bidir's own


def run_cells(exp: Experiment, cells: list[Cell]) -> None:
    pending = [c for c in in_seed_order(cells) if exp.state(c) != "done"]
    for cell in pending:
        log(f"cell {cell.name}: {exp.state(cell)} ({exp.threads} threads)")
    if exp.jobs == 1 or not exp.executor.parallel:
        for cell in pending:
            run_cell(exp, cell)
        return
    with ThreadPoolExecutor(max_workers=exp.jobs) as pool:
        for future in [pool.submit(run_cell, exp, c) for c in pending]:
            future.result()


def run(exp: Experiment) -> None:
    """Every cell: the selection first (when there is one), then the seeded cells and the base cell."""
    exp.dir.mkdir(parents=True, exist_ok=True)
    run_cells(exp, exp.selection_cells())
    run_cells(exp, exp.test_cells())


def plan(exp: Experiment) -> list[str]:
    """One shell line per pending cell (its commands joined by ``&&``), in stages when a selection comes first."""
    lines = []
    stage = exp.selection_cells()
    tests = exp.test_cells()
    if stage and not tests:
        lines.append("# stage 1 of 2: the selection cells; once they are complete, run --plan again for the rest")
    for cell in in_seed_order(stage) + in_seed_order(tests):
        state = exp.state(cell)
        if state == "done":
            continue
        env = f"OMP_NUM_THREADS={exp.threads} MKL_NUM_THREADS={exp.threads}"
        lines.append(" && ".join(f"{env} {shlex.join(exp.shown(s))}" for s in cell_commands(exp, cell, state)))
    return lines
