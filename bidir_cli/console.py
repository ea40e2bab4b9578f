"""Atomic file writes (write to a temporary file beside the target, fsync, then rename) and diagnostics.

A crash at any moment leaves either the old file or the new one, never half of one, so
``bidir compare`` can never read a truncated results file that a killed run left behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import TextIO


def log(message: str) -> None:
    """Progress and diagnostics: standard error, so standard output carries only results."""
    sys.stderr.write(f"bidir: {message}\n")  # one write: lines from cells running side by side never interleave
    sys.stderr.flush()


# Progress bars belong on a terminal: in a log file (a cell's log, a SLURM job's output) their carriage-return
# refreshes are noise. Libraries whose bars are switched by their own variables read them when they start.
PROGRESS_VARIABLES = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def quiet_progress_bars() -> None:
    """Turn the libraries' progress bars off when standard error is not a terminal (unless the user set them)."""
    if not sys.stderr.isatty():
        for name in PROGRESS_VARIABLES:
            os.environ.setdefault(name, "1")


class LibraryLines:
    """A text stream for what a library prints: each line goes to ``target`` behind ``prefix``; a progress bar
    (text with carriage returns) passes through unchanged on a terminal and is dropped elsewhere."""

    def __init__(self, target: TextIO, prefix: str) -> None:
        self.target, self.prefix, self.buffer = target, prefix, ""
        self.terminal = target.isatty()
        self.in_bar = False  # a bar is on the terminal's current line

    def write(self, text: str) -> int:
        written = len(text)
        if self.terminal and "\r" in text:  # tqdm refreshes a bar as "\r" + the bar, and ends it with "\n"
            self.target.write(text)
            self.in_bar = not text.endswith("\n")
            return written
        if self.in_bar and text.startswith("\n"):
            self.target.write("\n")
            text, self.in_bar = text[1:], False
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            if "\r" not in line:
                self.target.write(f"{self.prefix}{line}\n" if line.strip() else "")
            elif self.terminal:
                self.target.write(line + "\n")
        return written

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.terminal


@contextmanager
def library_output(library: str) -> Iterator[None]:
    """Inside the block, a library's prints and bars go to standard error as ``bidir: LIBRARY: line``."""
    stream = LibraryLines(sys.stderr, f"bidir: {library}: ")
    with redirect_stdout(stream), redirect_stderr(stream):  # type: ignore[type-var]
        yield
    if stream.buffer.strip() and "\r" not in stream.buffer:
        sys.stderr.write(f"bidir: {library}: {stream.buffer}\n")
