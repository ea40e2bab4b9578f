"""Where every cell stands, read from the experiment's folder alone (run directories, their claims and logs), never
from a scheduler or a process: what ``bidir experiment --status`` prints and the runner's progress line reads.

A cell is *complete* (trained, every suite evaluated), *running* (claimed by a live owner: host and pid or job,
since when), *queued* (submitted to SLURM, not started), *failed* (its log's last outcome, with the log's last error
line), *interrupted* (resumable from its last checkpoint's step, or from the start), *pending* (not begun) or
*refused* (its run directory holds a run of another config, threads or processes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..runs.rundir import checkpoint_step
from .cells import Cell, Experiment, meta_or_none
from .locks import CellLock, Owner

OUTCOME = "# bidir experiment: cell "
"""How the runner ends a cell's log: ``# bidir experiment: cell complete|interrupted|failed ...``."""


@dataclass
class CellStatus:
    cell: Cell
    state: str  # complete, running, queued, failed, interrupted, pending, refused
    detail: str = ""
    wall_time_s: float | None = None
    owner: Owner | None = None


def lock_of(exp: Experiment, cell: Cell) -> CellLock:
    return CellLock(exp.runs_dir / f"{cell.name}.lock")


def last_outcome(logfile: Path) -> tuple[str | None, str, float | None]:
    """The last outcome the runner wrote into a cell's log, the last line before it that reads like an error, and
    the seconds that attempt took (commands, imports and evaluations included)."""
    try:
        lines = logfile.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, "", None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(OUTCOME):
            words = lines[i].removeprefix(OUTCOME).split()
            seconds = float(words[2]) if len(words) > 2 and words[1] == "after" else None
            errors = [x for x in lines[:i] if "error" in x.lower() or "failed" in x.lower()]
            return words[0], errors[-1].strip() if errors else "", seconds
    return None, "", None


def cell_status(exp: Experiment, cell: Cell) -> CellStatus:
    run = exp.run_dir(cell)
    meta = meta_or_none(run)
    try:
        state = exp.state(cell)
    except InputError as e:  # its run directory holds another run: the experiment will not touch it
        return CellStatus(cell, "refused", str(e))
    outcome, error, seconds = last_outcome(exp.log_path(cell))
    owner = lock_of(exp, cell).live_owner()
    if owner is not None:  # claimed: running (or finishing: its results are in, its outcome not yet written)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.since))
        return CellStatus(cell, owner.state, f"{owner.describe()}, since {since}", owner=owner)
    if state == "done":  # measured by the runner; a cell run by hand has its training's wall time only
        return CellStatus(cell, "complete", wall_time_s=seconds or (meta.wall_time_s if meta else None))
    if outcome == "failed":
        return CellStatus(cell, "failed", f"{exp.log_path(cell)}: {error}" if error else str(exp.log_path(cell)))
    if state == "new":
        gone = lock_of(exp, cell).read()  # a claim whose job ended before the cell began: say where to look
        return CellStatus(cell, "pending", f"job {gone.job_id} ended before it began (its log: "
                          f"{exp.dir / 'slurm' / gone.job_id})" if gone and gone.job_id else "")  # fmt: skip
    return CellStatus(cell, "interrupted", resume_point(exp, cell, state))


def resume_point(exp: Experiment, cell: Cell, state: str) -> str:
    """Where an unfinished cell goes on from: its last checkpoint's step, or the start."""
    if state == "evaluate":
        return "trained; its evaluations resume"
    if state == "redo":
        return "the untrained model is saved again"
    checkpoint = exp.run_dir(cell).last_checkpoint()
    return (
        f"resumable from step {checkpoint_step(checkpoint)}" if checkpoint else "no checkpoint: resumes from the start"
    )


def time_left(statuses: list[CellStatus], parallel: int) -> float | None:
    """Seconds until every cell is complete: the mean measured time of the complete cells times the cells left,
    shared among ``parallel`` at once (None before any cell has a measured time)."""
    measured = [s.wall_time_s for s in statuses if s.state == "complete" and s.wall_time_s]
    if not measured:
        return None
    left = sum(1 for s in statuses if s.state != "complete")
    return sum(measured) / len(measured) * left / max(1, min(parallel, left or 1))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status_lines(exp: Experiment, parallel: int) -> list[str]:
    """``--status``: a line per cell, then the count and the time left at ``parallel`` cells at a time (0: as many
    as are running now)."""
    stages = [("selection", exp.selection_cells()), ("seeded", exp.test_cells())]
    lines, everything = [], []
    for stage, cells in stages:
        if not cells:
            continue
        lines.append(f"{stage} cells:")
        width = max(len(c.name) for c in cells)
        for cell in cells:
            s = cell_status(exp, cell)
            everything.append(s)
            took = f" ({duration(s.wall_time_s)})" if s.state == "complete" and s.wall_time_s else ""
            lines.append(f"  {cell.name:<{width}}  {s.state}{took}{': ' + s.detail if s.detail else ''}")
    if exp.spec.select and not exp.test_cells():
        lines.append("seeded cells: chosen once every selection cell is complete")
    if exp.spec.sequential and (chosen := exp.chosen()) is not None:
        from .sequential import status_line

        lines.append(status_line(exp, chosen))
    running = sum(1 for s in everything if s.state == "running")
    parallel = max(parallel, running, 1)  # as many as run now, when more than --jobs or the throttle says
    done = sum(1 for s in everything if s.state == "complete")
    complete = exp.complete()
    total = f"{done} of {len(everything)} cells complete" + (
        "" if exp.test_cells() or not exp.spec.select else " so far"
    )
    lines.append(f"{total}; " + ("the experiment is complete" if complete else
                                 f"about {duration(time_left(everything, parallel))} left at {parallel} cell(s) at a time"))  # fmt: skip
    return lines
