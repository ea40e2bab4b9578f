"""The SLURM executor: each wave of pending cells is one job array, submitted through submitit, one cell per array
task; a task runs the cell exactly as the local executor does (:func:`.runner.claim_and_run`: claim, train, then
evaluate), with this Python and the variables bidir needs exported in its batch script.

The submitter claims each cell (``queued``, with its job id) before the array starts, so a second invocation does
not submit it again; the task takes that claim over as ``running`` with its host and heartbeat. Nothing here reads
the scheduler's accounting: while it waits, ``bidir experiment`` reads the cells' state from their folders, and a
job that ended without completing its cell (cancelled, preempted, out of time) leaves it interrupted, resumed by the
next invocation. Multi-node cells are out of scope: a cell is one job on one node.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace

from ..console import log
from ..errors import InputError, Interrupted
from .cells import Cell, Experiment, in_seed_order
from .locks import Owner
from .runner import CellFailed, claim_and_run
from .status import cell_status, duration, lock_of

PASSED_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "SENTENCE_TRANSFORMERS_HOME", "HF_HUB_OFFLINE",
                    "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "PYTHONPATH", "ATEN_CPU_CAPABILITY",
                    "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")  # fmt: skip
"""Set in the submitting shell, they are exported into each job (a cluster may not pass the submitter's
environment); so is every ``BIDIR_*`` variable (an experiment file's ``${BIDIR_...}`` must resolve the same)."""


def job_variables(exp: Experiment) -> dict[str, str]:
    passed = {k: v for k, v in os.environ.items() if k in PASSED_VARIABLES or k.startswith("BIDIR_")}
    return {**passed, **exp.cell_variables()}


def cell_job(experiment: str, output_dir: str, name: str, token: str) -> str:
    """What an array task runs: bring cell ``name`` of the experiment to complete under the claim ``token`` that
    its submitter made. Returns the outcome (also at the end of the cell's log)."""
    exp = Experiment(experiment, output_dir, executor_name="slurm")
    cell = next((c for c in exp.cells() if c.name == name), None)
    if cell is None:
        raise InputError(f"{experiment}: no cell {name} (the experiment changed after submission?)")
    return claim_and_run(exp, cell, Owner.here("slurm", token=uuid.uuid4().hex), adopt=token)


def current_wave(exp: Experiment) -> tuple[str, list[Cell]]:
    """The stage to run now: the selection until its cells are complete, then the seeded cells."""
    if not exp.selection_done():
        return "selection", exp.selection_cells()
    return "seeded", exp.test_cells()  # for a sequential design, up to the next look


def submit(exp: Experiment, stage: str, cells: list[Cell]) -> list[Cell]:
    """Claim and submit every cell of ``cells`` that nobody holds and that is not complete, as one job array;
    returns the cells submitted."""
    import submitit

    owner = Owner.here("slurm", state="queued")
    claimed: list[tuple[Cell, Owner]] = []
    for cell in in_seed_order(cells):
        if cell_status(exp, cell).state in ("complete", "running", "queued"):
            continue
        mine = replace(owner, token=uuid.uuid4().hex)
        lock = lock_of(exp, cell)
        lock.path.parent.mkdir(parents=True, exist_ok=True)
        ok, note = lock.claim(mine)
        if note:
            log(f"cell {cell.name}: {note}")
        if ok:
            claimed.append((cell, mine))
    if not claimed:
        return []
    resources = exp.spec.executor.stage("select" if stage == "selection" else "test")
    executor = submitit.SlurmExecutor(folder=exp.dir / "slurm" / "%j", python=shlex.quote(sys.executable))
    options = {"partition": resources.partition, "account": resources.account, "qos": resources.qos,
               "constraint": resources.constraint, "mem": f"{resources.mem_gb:g}G" if resources.mem_gb else None}  # fmt: skip
    gpus = exp.spec.executor.gpus_per_cell
    executor.update_parameters(
        job_name=f"bidir-{exp.spec.name}",
        time=resources.time_min,
        nodes=1,
        ntasks_per_node=1,
        cpus_per_task=exp.spec.executor.cpus_per_cell or exp.threads * exp.processes,
        **({"gpus_per_node": gpus} if gpus else {}),
        array_parallelism=resources.max_parallel or len(claimed),
        stderr_to_stdout=True,
        setup=[f"export {k}={shlex.quote(v)}" for k, v in sorted(job_variables(exp).items())],
        additional_parameters=dict(resources.additional),
        **{k: v for k, v in options.items() if v is not None},
    )
    args = [(str(exp.path.resolve()), str(exp.dir.resolve()), cell.name, mine.token) for cell, mine in claimed]
    try:
        jobs = executor.map_array(cell_job, *zip(*args))
    except Exception:
        for cell, mine in claimed:
            lock_of(exp, cell).release(mine)
        raise
    for (cell, mine), job in zip(claimed, jobs):
        lock = lock_of(exp, cell)
        current = lock.read()
        # The task may have started and taken the claim over already: only a claim still queued is updated.
        if current is not None and current.token == mine.token and current.state == "queued":
            lock._replace(replace(mine, job_id=str(job.job_id)))
    first = jobs[0].job_id.split("_")[0]
    log(f"{stage}: submitted {len(claimed)} cell(s) as job array {first} "
        f"({', '.join(c.name for c, _ in claimed)}); logs in {exp.dir / 'slurm'}")  # fmt: skip
    return [c for c, _ in claimed]


def run(exp: Experiment, stop: threading.Event, *, detach: bool) -> bool:
    """Submit the current wave, and unless ``detach``, wait for it and go on to the next until the experiment is
    complete. Returns whether it is. Raises CellFailed when a wave ends with a cell not complete."""
    exp.dir.mkdir(parents=True, exist_ok=True)
    while not exp.complete():
        stage, cells = current_wave(exp)
        submit(exp, stage, cells)
        if detach:
            log(f"detached: follow with {exp.command_line()} --status; run the same command again to advance to "
                "the next stage and write the report")  # fmt: skip
            return False
        wait(exp, cells, stop)
        unfinished = [cell_status(exp, c) for c in cells if exp.state(c) != "done"]
        if unfinished:
            raise CellFailed("; ".join(f"cell {s.cell.name} {s.state}: {s.detail}" for s in unfinished)
                             + " (rerun the same command to resume)")  # fmt: skip
    return True


def wait(exp: Experiment, cells: list[Cell], stop: threading.Event) -> None:
    """Until no cell of the wave is queued or running: a line as each starts and ends."""
    seen = {c.name: cell_status(exp, c).state for c in cells}
    started = time.time()
    while True:
        active = 0
        for cell in cells:
            status = cell_status(exp, cell)
            if status.state != seen[cell.name]:
                took = f" in {duration(status.wall_time_s)}" if status.wall_time_s else ""
                log(f"cell {cell.name}: {status.state}{took}{': ' + status.detail if status.detail else ''}")
                seen[cell.name] = status.state
            active += status.state in ("queued", "running")
        if not active:
            return
        if stop.wait(exp.spec.executor.poll_s):
            jobs = sorted({o.job_id for c in cells if (o := lock_of(exp, c).live_owner()) and o.job_id})
            raise Interrupted(
                f"rerun the same command to resume; jobs left running: {', '.join(jobs) or 'none'} "
                f"(cancel them with {exp.command_line()} --cancel); waited {duration(time.time() - started)}"
            )


def cancel(exp: Experiment) -> list[str]:
    """``scancel`` every job that holds a cell of the experiment (its cells are left interrupted or pending)."""
    jobs = sorted({o.job_id for c in exp.cells() if (o := lock_of(exp, c).live_owner()) and o.job_id})
    if jobs:
        subprocess.run(["scancel", *jobs], check=True)
    return jobs


def require_slurm() -> None:
    import shutil

    missing = [tool for tool in ("sbatch", "squeue", "scancel") if shutil.which(tool) is None]
    if missing:
        raise InputError(f"--executor slurm: {', '.join(missing)} not found on {socket.gethostname()} (no SLURM here)")
