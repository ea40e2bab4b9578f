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
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from typing import Protocol, TextIO

BIDIR = [sys.executable, "-m", "bidir_cli.cli"]


class Executor(Protocol):
    parallel: bool
    """Whether several commands may run at once (from threads of the calling process)."""

    def run(self, args: list[str], env: dict[str, str], log: TextIO) -> int:
        """Run ``bidir ARGS`` with ``env``, its output into ``log``; return its exit status."""
        ...


class SubprocessExecutor:
    """Each command a process: ``PREFIX ARGS`` (``PREFIX`` is ``python -m bidir_cli.cli`` or the experiment's
    ``command:``, e.g. a torchrun line)."""

    parallel = True

    def __init__(self, prefix: list[str] | None = None) -> None:
        self.prefix = prefix or BIDIR

    def run(self, args: list[str], env: dict[str, str], log: TextIO) -> int:
        return subprocess.run([*self.prefix, *args], stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def default_executor(prefix: list[str]) -> Executor:
    """The executor of ``bidir experiment`` (tests replace it with :class:`InProcessExecutor`)."""
    return SubprocessExecutor(prefix)


class InProcessExecutor:
    """Each command in this process, in the calling thread, through ``invoke`` (:func:`bidir_cli.cli.invoke`), with
    the environment's ``OMP_NUM_THREADS`` as torch's thread count and its other variables set for the command's
    duration."""

    parallel = False

    def __init__(self, invoke: Callable[[list[str]], int]) -> None:
        self.invoke = invoke

    def run(self, args: list[str], env: dict[str, str], log: TextIO) -> int:
        import torch

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
