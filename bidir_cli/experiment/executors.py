"""How ``bidir experiment`` runs the commands of a cell: ``bidir train``, then ``bidir eval`` of each suite.

A command is a list of bidir arguments (``["train", CONFIG, "--set", ...]``), its environment (the cell's thread
count among it) and a log file for its output; an executor returns its exit status. Two executors:

- :class:`SubprocessExecutor` (what ``bidir experiment`` uses): each command a fresh process, so cells may run
  side by side (``--jobs``), a crash or a kill stays inside its cell, and the thread count is set before torch
  loads (``OMP_NUM_THREADS``).
- :class:`InProcessExecutor`: each command in this process, one at a time. The same code path with the same thread
  count gives the same numbers without paying 5-10 s of imports per command, which is what the test suite needs;
  a crash of a cell is then a crash of the experiment, so it is not offered on the command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from typing import Protocol, TextIO

BIDIR = [sys.executable, "-m", "bidir_cli.cli"]

GRACE_S = 2.0
"""After a stop, how long a command has to end on its own (Ctrl-C on a terminal reaches it directly) before it is
sent SIGINT; :data:`KILL_AFTER_S` later it is killed. A trainer interrupted records its state in well under that."""
KILL_AFTER_S = 6.0


def torchrun(processes: int, program: list[str] | None = None) -> list[str]:
    """The command prefix of a training in ``processes`` processes on this node (DDP; gloo on CPU). ``--standalone``
    gives each cell its own rendezvous port, so several cells share a node."""
    program = program or [sys.executable, "-m", "torch.distributed.run"]
    return [*program, "--standalone", f"--nproc-per-node={processes}", "-m", "bidir_cli.cli"]


class Executor(Protocol):
    parallel: bool
    """Whether several commands may run at once (from threads of the calling process)."""

    def run(
        self, args: list[str], env: dict[str, str], log: TextIO, *, processes: int = 1,
        stop: threading.Event | None = None,
    ) -> int:  # fmt: skip
        """Run ``bidir ARGS`` (in ``processes`` processes under torchrun) with ``env``, its output into ``log``;
        return its exit status. Once ``stop`` is set the command is interrupted (SIGINT, then killed)."""
        ...


class SubprocessExecutor:
    """Each command a process: ``PREFIX ARGS`` (``PREFIX`` is ``python -m bidir_cli.cli`` or the experiment's
    ``command:``; a training of several processes runs under torchrun)."""

    parallel = True

    def __init__(self, prefix: list[str] | None = None) -> None:
        self.prefix = prefix or BIDIR

    def run(
        self, args: list[str], env: dict[str, str], log: TextIO, *, processes: int = 1,
        stop: threading.Event | None = None,
    ) -> int:  # fmt: skip
        prefix = torchrun(processes) if processes > 1 else self.prefix
        process = subprocess.Popen([*prefix, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        while True:
            try:
                return process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    return interrupt(process)


def interrupt(process: subprocess.Popen) -> int:
    """End a command after a stop: its own chance, then SIGINT (a trainer records itself interrupted), then kill."""
    for signal_, wait in ((None, GRACE_S), (signal.SIGINT, KILL_AFTER_S), (signal.SIGKILL, None)):
        if signal_ is not None:
            process.send_signal(signal_)
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.returncode


def default_executor(prefix: list[str]) -> Executor:
    """The executor of ``bidir experiment`` (tests replace it with :class:`InProcessExecutor`)."""
    return SubprocessExecutor(prefix)


class InProcessExecutor:
    """Each command in this process, in the calling thread, through ``invoke`` (:func:`bidir_cli.cli.invoke`), with
    the environment's ``OMP_NUM_THREADS`` as torch's thread count and its other variables set for the command's
    duration. A training of several processes runs as processes (torchrun) all the same."""

    parallel = False

    def __init__(self, invoke: Callable[[list[str]], int]) -> None:
        self.invoke = invoke

    def run(
        self, args: list[str], env: dict[str, str], log: TextIO, *, processes: int = 1,
        stop: threading.Event | None = None,
    ) -> int:  # fmt: skip
        import torch

        if processes > 1:
            return SubprocessExecutor().run(args, env, log, processes=processes, stop=stop)
        changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
        saved_env = {k: os.environ.get(k) for k in changed}
        saved_threads = torch.get_num_threads()
        os.environ.update(changed)
        if "OMP_NUM_THREADS" in env:
            torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
        try:
            with redirect_stdout(log), redirect_stderr(log):
                return self.invoke(args)
        finally:
            torch.set_num_threads(saved_threads)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def sleep_unless(stop: threading.Event | None, seconds: float) -> bool:
    """Sleep, waking early on ``stop``; True when stopped."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)
