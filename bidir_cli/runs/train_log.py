"""A run's ``train_log.jsonl``: one JSON object per logging step (step, epoch, loss, learning rate, gradient
norm, examples per second, the partition shares of the bidirectional losses) and per evaluation step (``eval_*``
keys). :class:`TrainLog` is the one reader and writer of the file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

TIMINGS = {"examples_per_second"}  # and every key ending in _runtime or holding per_second


@dataclass(frozen=True)
class TrainLog:
    path: Path

    def lines(self) -> list[dict[str, Any]]:
        """Every line, in order (an empty list when the file does not exist)."""
        if not self.path.is_file():
            return []
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x.strip()]

    def comparable(self) -> list[dict[str, Any]]:
        """The lines without their timings: what two runs of one identity must agree on (``--verify``)."""
        return [{k: v for k, v in line.items() if not _timing(k)} for line in self.lines()]

    def start(self) -> None:
        """An empty log: every run has one, even one too short for a logging step."""
        self.path.write_text("", encoding="utf-8")

    def append(self, line: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def truncate(self, step: int) -> None:
        """Drop the lines past ``step`` (a resumed run restarts from its checkpoint and logs them again)."""
        if self.path.exists():
            kept = [line for line in self.lines() if line["step"] <= step]
            atomic_write_text(self.path, "".join(json.dumps(line) + "\n" for line in kept))


def _timing(key: str) -> bool:
    return key in TIMINGS or key.endswith("_runtime") or "per_second" in key
