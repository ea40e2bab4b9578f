"""Run directories: their layout, meta.json, and the environment a run records.

::

    runs/<name>/
      config.yaml        the resolved, validated config that ran
      meta.json          status, argv, seed, times, versions, device, data identities, loss settings, ...
      train_log.jsonl    one line per logging step
      checkpoints/       resumable trainer checkpoints
      model/             SentenceTransformer.save() output
      eval/<suite>.json  evaluation results
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InputError
from .io import atomic_write_json

STATUSES = ("running", "completed", "failed", "interrupted")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("bidir", "sentence-transformers", "transformers", "torch", "datasets", "accelerate"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def git_commit(path: Path) -> str | None:
    """The commit of the repository that holds ``path`` (with ``-dirty`` if it has changes), if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=path, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


@dataclass
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def meta(self) -> Path:
        return self.path / "meta.json"

    @property
    def train_log(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    def exists(self) -> bool:
        return self.path.exists() and any(self.path.iterdir())

    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{self.meta}: unreadable meta.json ({e})") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.meta, meta)

    def update_meta(self, **fields: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(fields)
        self.write_meta(meta)
        return meta

    def last_checkpoint(self) -> Path | None:
        """The checkpoint with the highest step, if any complete one exists."""
        found = []
        for p in self.checkpoints.glob("checkpoint-*"):
            step = p.name.removeprefix("checkpoint-")
            if step.isdigit() and (p / "trainer_state.json").exists():
                found.append((int(step), p))
        return max(found)[1] if found else None


def prepare_run_dir(path: Path, *, resume: bool, overwrite: bool) -> RunDir:
    """Check what ``--resume`` / ``--overwrite`` allow before anything is written."""
    run = RunDir(path)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if run.exists():
        if not (resume or overwrite):
            raise InputError(f"{path}: run directory exists; pass --resume to continue it or --overwrite to replace it")
        if resume and not run.meta.exists():
            raise InputError(f"{path}: not a bidir run directory (no meta.json) and cannot be resumed")
    elif resume:
        raise InputError(f"{path}: no run to resume")
    return run


def start_run(run: RunDir, *, overwrite: bool) -> None:
    """Create (or, with ``--overwrite``, recreate) the run directory."""
    if overwrite and run.path.exists():
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
