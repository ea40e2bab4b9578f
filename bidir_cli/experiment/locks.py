"""A cell's claim: ``runs/<cell>.lock`` beside its run directory, so that two invocations or two jobs never train
one cell at once, on one machine or across a cluster's shared file system.

The lock is created complete and atomically by ``link(2)`` of a written temporary file (atomic on NFS too, where
``O_EXCL`` was not before NFSv3), and names its owner: a token, host, pid, executor, SLURM job id, since when, and
a heartbeat the owner rewrites every :data:`HEARTBEAT_S` seconds. A lock whose owner is gone is *stale* and taken
over (and reported): a dead pid on this host, a SLURM job no longer in ``squeue``, or no heartbeat for
:data:`STALE_AFTER_S`. Scheduler accounting (``sacct``, submitit's job state) is never consulted: clusters
without it answer UNKNOWN. The lock lies beside the run directory, not in it, because ``bidir train
--overwrite`` (an unfinished untrained cell, saved again) recreates that folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_AFTER_S = float(os.environ.get("BIDIR_LOCK_STALE_S", 300))
"""A running owner that has not written its heartbeat for this long is taken to be gone (a frozen node)."""


@dataclass(frozen=True)
class Owner:
    """Who holds a cell: ``state`` is ``queued`` (submitted, not started: no heartbeat yet) or ``running``."""

    token: str
    host: str
    pid: int
    executor: str
    state: str = "running"
    job_id: str | None = None
    since: float = 0.0
    heartbeat: float = 0.0

    @classmethod
    def here(cls, executor: str, state: str = "running", token: str | None = None) -> Owner:
        """This process (inside a SLURM job: the job's id)."""
        now = time.time()
        return cls(token or uuid.uuid4().hex, socket.gethostname(), os.getpid(), executor, state,
                   slurm_job_id(), now, now)  # fmt: skip

    def describe(self) -> str:
        where = f"job {self.job_id}" if self.job_id else f"pid {self.pid}"
        return f"{where} on {self.host}"


def slurm_job_id() -> str | None:
    """This process's SLURM job as ``squeue -j`` and ``scancel`` take it: ``ARRAY_TASK`` for an array task (the id
    submitit returns on submission), else the job id."""
    if "SLURM_ARRAY_JOB_ID" in os.environ and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class CellLock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Owner | None:
        """The current owner, or None when unclaimed (or its file is unreadable: never half-written by us)."""
        try:
            return Owner(**json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def _write_new(self, owner: Owner, target: Path) -> bool:
        """Create ``target`` holding ``owner``, atomically; False when it exists."""
        tmp = self.path.with_name(f".{self.path.name}.{owner.token}.{os.getpid()}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(asdict(owner)), encoding="utf-8")
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def claim(self, owner: Owner, adopt: str | None = None) -> tuple[bool, str | None]:
        """Try to hold the cell: (claimed, a line to report). A lock with token ``adopt`` (the claim a submitter
        made for this job) is taken as ours; a stale one is taken over, saying whose it was and why."""
        for _ in range(3):
            if self._write_new(owner, self.path):
                return True, None
            current = self.read()
            if current is None:  # being replaced this instant, or removed: try again
                time.sleep(0.05)
                continue
            if adopt is not None and current.token == adopt:
                self._replace(owner)
                return True, None
            reason = stale_reason(current)
            if reason is None:
                return False, f"held by {current.describe()}"
            if self._take_over(current, owner):
                return True, f"took over a stale claim of {current.describe()}: {reason}"
        return False, "held (the claim changed hands while it was read)"

    def _take_over(self, stale: Owner, owner: Owner) -> bool:
        """Replace ``stale`` by ``owner`` unless someone else did first (one taker at a time, by a second lock)."""
        guard = self.path.with_name(self.path.name + ".takeover")
        if guard.exists() and time.time() - guard.stat().st_mtime > 60:
            guard.unlink(missing_ok=True)  # a taker that died mid-takeover (it holds the guard for milliseconds)
        if not self._write_new(owner, guard):
            return False
        try:
            current = self.read()
            if current is None or current.token != stale.token:
                return False
            self._replace(owner)
            return True
        finally:
            guard.unlink(missing_ok=True)

    def _replace(self, owner: Owner) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{owner.token}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(owner)), encoding="utf-8")
        os.replace(tmp, self.path)

    def beat(self, owner: Owner) -> Owner:
        """Rewrite the heartbeat, if the cell is still ours; returns the owner as written."""
        beaten = replace(owner, heartbeat=time.time())
        current = self.read()
        if current is not None and current.token == owner.token:
            self._replace(beaten)
        return beaten

    def release(self, owner: Owner) -> None:
        current = self.read()
        if current is not None and current.token == owner.token:
            self.path.unlink(missing_ok=True)

    def live_owner(self) -> Owner | None:
        """The owner, unless there is none or it is stale."""
        current = self.read()
        return current if current is not None and stale_reason(current) is None else None


def stale_reason(owner: Owner) -> str | None:
    """Why ``owner`` no longer holds its cell, or None while it may."""
    if owner.job_id and shutil.which("squeue"):
        if not job_in_queue(owner.job_id):
            return f"job {owner.job_id} is no longer in the queue"
    elif owner.host == socket.gethostname() and not pid_alive(owner.pid):
        return f"pid {owner.pid} has ended"
    if owner.state == "running" and time.time() - owner.heartbeat > STALE_AFTER_S:
        return f"no heartbeat for {time.time() - owner.heartbeat:.0f} s"
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:  # a zombie (ended, not yet reaped by its parent) holds nothing
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def job_in_queue(job_id: str) -> bool:
    """Whether SLURM still has the job (pending, running, completing, ...): ``squeue`` knows only live jobs."""
    try:
        found = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True,
                               timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: never take a claim over on a failed query
    if found.returncode != 0:
        return "Invalid job id" not in found.stderr  # squeue says so of a job that has left its memory
    return any(line.split()[1] not in ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL",
                                        "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
               for line in found.stdout.splitlines() if len(line.split()) == 2)  # fmt: skip
