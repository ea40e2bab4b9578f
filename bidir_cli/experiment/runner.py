"""Running an experiment's cells: the one way a cell is run (:func:`cell_commands`: train, or save the untrained
model for the base cell, then evaluate), used by the run itself, a SLURM job, ``--plan``, ``--verify`` and
``--rebuild``.

Every command is a ``bidir train`` or ``bidir eval`` invocation through the experiment's executor, its output
appended to the cell's log: anything a cell does can be done by hand (``--plan`` prints it). A cell is claimed
(:mod:`.locks`) before it runs, so two invocations or two jobs never train it at once, and its log ends with its
outcome, which ``--status`` reads. An experiment runs in waves: the selection cells, then the seeded cells.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from ..console import log
from ..errors import Interrupted
from ..runs.rundir import RunDir
from .cells import Cell, Experiment, in_seed_order
from .locks import HEARTBEAT_S, CellLock, Owner
from .status import OUTCOME, cell_status, duration, lock_of, resume_point, time_left

INTERRUPT_STATUSES = {130, 143, -signal.SIGINT, -signal.SIGTERM}
"""Exit statuses of a command ended by SIGINT or SIGTERM (as its own status, or as the signal that ended it)."""


class CellInterrupted(Exception):
    pass


class CellFailed(RuntimeError):
    pass


class Stop:
    """SIGINT and SIGTERM set :attr:`event` (from the main thread) instead of raising: the runner then starts no
    new cell, interrupts the running ones and ends with :class:`Interrupted`."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.saved: dict[int, object] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.saved[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if not self.event.is_set():
            log(f"{signal.Signals(signum).name}: no new cell starts; stopping the running ones")
        self.event.set()

    def __exit__(self, *exc) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)


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


def execute(
    exp: Experiment, cell: Cell, commands: list[list[str]], logfile: Path, stop: threading.Event | None = None
) -> None:
    """Run a cell's commands in order through the executor, appending their output to ``logfile``."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("a", encoding="utf-8") as f:
        for command in commands:
            f.write(f"$ {shlex.join(exp.shown(command))}\n")
            f.flush()
            status = exp.executor.run(command, exp.env(), f, processes=exp.processes_of(command), stop=stop)
            if (stop is not None and stop.is_set()) or status in INTERRUPT_STATUSES:
                raise CellInterrupted()
            if status:
                raise CellFailed(f"cell {cell.name}: bidir {command[0]} ... exited {status}; see {logfile}")


def run_cell(exp: Experiment, cell: Cell, *, output: Path | None = None) -> None:
    """Bring one cell to complete (``--cell``), or with ``output`` run it afresh there (``--verify``, ``--rebuild``:
    a scratch folder nobody else claims)."""
    if output is None:
        if (outcome := claim_and_run(exp, cell, Owner.here(exp.executor_name))) not in ("complete", "held"):
            raise CellFailed(f"cell {cell.name}: {outcome}; see {exp.log_path(cell)}")
        return
    execute(exp, cell, cell_commands(exp, cell, "new", output), output.parent / f"{cell.name}.log")
    if not exp.spec.keep_checkpoints:
        shutil.rmtree(RunDir(output).checkpoints, ignore_errors=True)  # bidir's own


def claim_and_run(
    exp: Experiment, cell: Cell, owner: Owner, *, adopt: str | None = None, stop: threading.Event | None = None
) -> str:
    """Claim ``cell`` and bring it to complete: ``complete``, ``interrupted``, ``failed: ...``, or ``held`` (another
    owner has it). The claim's heartbeat runs while the cell does; the log ends with the outcome."""
    lock = lock_of(exp, cell)
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    claimed, note = lock.claim(owner, adopt=adopt)
    if note:
        log(f"cell {cell.name}: {note}")
    if not claimed:
        return "held"
    beating = threading.Event()
    heart = threading.Thread(target=_heartbeat, args=(lock, owner, beating), daemon=True)
    heart.start()
    try:
        return _bring(exp, cell, owner, stop)
    finally:
        beating.set()
        heart.join()
        lock.release(owner)


def _heartbeat(lock: CellLock, owner: Owner, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_S):
        owner = lock.beat(owner)


def _bring(exp: Experiment, cell: Cell, owner: Owner, stop: threading.Event | None) -> str:
    state = exp.state(cell)  # after the claim: another owner may have completed it meanwhile
    if state == "done":
        return "complete"
    what = {"new": "new", "evaluate": "evaluate", "redo": "save the untrained model again"}.get(state)
    what = what or f"resume ({resume_point(exp, cell, state)})"
    processes = f", {exp.processes} processes" if exp.processes > 1 and cell.kind != "base" else ""
    logfile = exp.log_path(cell)
    log(f"cell {cell.name}: {what} on {owner.describe()} ({exp.threads} threads{processes}); log {logfile}")
    started = time.perf_counter()
    try:
        execute(exp, cell, cell_commands(exp, cell, state), logfile, stop)
        outcome = "complete"
    except CellInterrupted:
        outcome = f"interrupted ({resume_point(exp, cell, exp.state(cell))})"
    except CellFailed as e:
        outcome = f"failed: {e}"
    took = time.perf_counter() - started
    with logfile.open("a", encoding="utf-8") as f:
        f.write(f"{OUTCOME}{outcome.split(':')[0].split(' (')[0]} after {took:.1f} s ({owner.describe()})\n")
    if outcome == "complete" and not exp.spec.keep_checkpoints:
        shutil.rmtree(exp.run_dir(cell).checkpoints, ignore_errors=True)  # bidir's own
    log(f"cell {cell.name}: {outcome} after {duration(took)} ({owner.describe()})")
    return outcome


def run_wave_here(exp: Experiment, cells: list[Cell], stop: threading.Event) -> list[str]:
    """Run ``cells`` on this machine, ``exp.jobs`` at a time, seed by seed; cells another owner holds are waited
    for. Returns the failures; raises :class:`Interrupted` once a stop has ended the running cells."""
    pending = [c for c in in_seed_order(cells) if exp.state(c) != "done"]
    failures: list[str] = []
    elsewhere: list[Cell] = []
    workers = exp.jobs if exp.executor.parallel else 1
    slots = threading.Semaphore(workers)
    threads: list[threading.Thread] = []

    def work(cell: Cell) -> None:
        try:
            outcome = claim_and_run(exp, cell, Owner.here(exp.executor_name), stop=stop)
            if outcome == "held":
                elsewhere.append(cell)
            elif outcome.startswith("failed"):
                failures.append(outcome.removeprefix("failed: "))
            progress(exp, cells, workers)
        finally:
            slots.release()

    for cell in pending:
        while not slots.acquire(timeout=0.2):
            if stop.is_set():
                break
        if stop.is_set() or failures:
            break
        if workers == 1:
            work(cell)
            continue
        thread = threading.Thread(target=work, args=(cell,), name=f"cell {cell.name}")
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    if stop.is_set():
        raise Interrupted("rerun the same command to resume")
    wait_for_others(exp, elsewhere, stop)
    return failures


def wait_for_others(exp: Experiment, cells: list[Cell], stop: threading.Event, poll_s: float = 1.0) -> None:
    """Wait while another invocation or job holds any of ``cells``."""
    waiting = [c for c in cells if lock_of(exp, c).live_owner() is not None]
    if waiting:
        log(f"waiting for {len(waiting)} cell(s) run elsewhere: {', '.join(c.name for c in waiting)}")
    while waiting:
        if stop.wait(poll_s):
            raise Interrupted("rerun the same command to resume")
        waiting = [c for c in waiting if lock_of(exp, c).live_owner() is not None]


def progress(exp: Experiment, cells: list[Cell], parallel: int) -> None:
    """The overall progress line, on a terminal only (a log file gets the cells' own lines)."""
    if not sys.stderr.isatty():
        return
    statuses = [cell_status(exp, c) for c in cells]
    done = sum(s.state == "complete" for s in statuses)
    log(f"progress: {done} of {len(cells)} cells of this stage complete, about "
        f"{duration(time_left(statuses, parallel))} left")  # fmt: skip


def run(exp: Experiment, stop: threading.Event) -> None:
    """Every cell on this machine, in waves: the selection first (when there is one), then the seeded cells and the
    base cell (for a sequential design, look by look until every arm is decided). Raises :class:`CellFailed`
    naming the failed cells once the others have run."""
    exp.dir.mkdir(parents=True, exist_ok=True)
    while True:  # waves: the selection, then the seeded cells (look by look for a sequential design)
        wave = exp.selection_cells() if not exp.selection_done() else exp.test_cells()
        if all(exp.state(c) == "done" for c in wave):
            return
        failures = run_wave_here(exp, wave, stop)
        if failures:
            raise CellFailed("; ".join(failures))
        unfinished = [c.name for c in wave if exp.state(c) != "done"]
        if unfinished:
            raise CellFailed(f"cells not complete after their run elsewhere: {', '.join(unfinished)} "
                             "(see --status)")  # fmt: skip


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
