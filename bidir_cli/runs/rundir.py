"""Run directories: their layout, meta.json, and the environment a run records.

::

    runs/<name>/
      config.yaml        the resolved, validated config that ran
      meta.json          format, status, argv, seed, times, versions, device, data identities, loss settings, ...
      train_log.jsonl    one line per logging step
      tensorboard/       TensorBoard event files (training.report_to: tensorboard)
      checkpoints/       resumable trainer checkpoints
      model/             SentenceTransformer.save() output
      eval/<suite>.json  evaluation results

:class:`RunDir` is the one place that knows these paths and :class:`RunMeta` the one that knows meta.json:
no other module builds a run path or a meta.json dict by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .atomic import atomic_write_json
from .meta import LEGACY_RUN_FORMAT, RunMeta
from .results import EvalResult
from .settings import EvalSettings
from .train_log import TrainLog


@dataclass
class RunDir:
    """A run directory and the paths in it."""

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
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    def results_file(self, stem: str) -> Path:
        """``eval/<stem>.json``, the name made safe for a file system; the stem is ``EvalResult.stem``
        (the suite and the settings that change the numbers, see ``results.py``)."""
        return self.eval_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', stem) or 'suite'}.json"

    def results_files(self) -> list[Path]:
        """Every results file of the run, sorted by name."""
        return sorted(self.eval_dir.glob("*.json"))

    def exists(self) -> bool:
        return self.path.exists() and any(self.path.iterdir())

    def is_run(self) -> bool:
        """Whether the folder is a run directory (it has a meta.json)."""
        return self.meta.is_file()

    def written_by_bidir(self) -> bool:
        """Whether bidir made this folder: its meta.json is a JSON object with a ``bidir.run/`` format.

        This is what allows bidir to delete or replace the folder (``--overwrite``): meta.json is the first file
        written into a new run directory, so even a run that failed at its start qualifies.
        """
        try:
            meta = self.read_meta()
        except InputError:
            return False
        return meta is not None and meta.format.startswith("bidir.run/") and meta.format != LEGACY_RUN_FORMAT

    def read_meta(self) -> RunMeta | None:
        """The run's meta.json, or None when it has none.

        Raises:
            InputError: the file is not a JSON object.
        """
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{self.meta}: unreadable meta.json ({e})") from None
        if not isinstance(data, dict):
            raise InputError(f"{self.meta}: expected a JSON object")
        return RunMeta.from_dict(data)

    def status(self) -> str:
        """The status meta.json records, without failing on an unreadable file."""
        try:
            meta = self.read_meta()
        except InputError:
            return "unreadable meta.json"
        return "no meta.json" if meta is None else str(meta.status)

    def write_meta(self, meta: RunMeta) -> None:
        atomic_write_json(self.meta, meta.to_dict())

    def find_results(self, suite: str | None, settings: EvalSettings) -> tuple[Path, EvalResult]:
        """The run's results file of the suite (if given) and evaluation settings asked for.

        Raises:
            InputError: none, or several, match; the message lists the run's results files and their settings.
        """
        found = [(path, EvalResult.load(path)) for path in self.results_files()]
        if not found:
            raise InputError(f"{self.path}: no results in {self.eval_dir} (run `bidir eval {self.path}` first)")
        chosen = [
            (path, result)
            for path, result in found
            if (suite is None or result.suite["name"] == suite) and settings.selects(result.settings)
        ]
        if len(chosen) == 1:
            return chosen[0]
        wanted = ", ".join([*([f"suite {suite}"] if suite else []), settings.describe()])
        listing = "; ".join(
            f"eval/{path.name} (suite {r.suite['name']}, {EvalSettings.from_record(r.settings).describe()})"
            for path, r in found
        )
        if not chosen:
            raise InputError(
                f"{self.path}: no results file for {wanted} (it has: {listing}); choose with --suite, --truncate-dim, "
                "--precision, --backend or --model-backend, or name the results file"
            )
        raise InputError(f"{self.path}: several results files for {wanted} ({listing}); choose one with --suite")

    def last_checkpoint(self) -> Path | None:
        """The checkpoint with the highest step, if any complete one exists."""
        found = []
        for p in self.checkpoints.glob("checkpoint-*"):
            if (step := checkpoint_step(p)) and (p / "trainer_state.json").exists():
                found.append((step, p))
        return max(found)[1] if found else None


def checkpoint_step(checkpoint: str | Path | None) -> int:
    """The step of a ``checkpoint-<step>`` folder; 0 for None or another name."""
    step = Path(checkpoint).name.removeprefix("checkpoint-") if checkpoint else ""
    return int(step) if step.isdigit() else 0


def prepare_run_dir(path: Path, *, resume: bool, overwrite: bool) -> RunDir:
    """Check what ``--resume`` / ``--overwrite`` allow before anything is written."""
    run = RunDir(path)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder")
    if run.exists():
        if not (resume or overwrite):
            raise InputError(f"{path}: run directory exists; pass --resume to continue it or --overwrite to replace it")
        if resume and not run.meta.exists():
            raise InputError(f"{path}: not a bidir run directory (no meta.json) and cannot be resumed")
        if overwrite and not run.written_by_bidir():
            raise InputError(
                f"{path}: not a run directory that bidir wrote (no meta.json with a bidir.run format), so --overwrite "
                "will not delete it; choose another --output-dir, or remove the folder yourself"
            )
    elif resume:
        raise InputError(f"{path}: no run to resume")
    return run


def start_run(run: RunDir, meta: RunMeta, *, overwrite: bool) -> None:
    """Create (or, with ``--overwrite``, recreate) the run directory; meta.json is its first file.

    Only a folder that bidir wrote is ever deleted (checked again here, right before deleting).
    """
    if overwrite and run.exists():
        if not run.written_by_bidir():
            raise InputError(f"{run.path}: not a run directory that bidir wrote; --overwrite will not delete it")
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_meta(meta)


def differences(a: RunDir, b: RunDir, names: set[str] | None = None) -> list[str]:
    """Every difference between two runs' results: train log (losses, grad norms, partition shares) and every
    results file's metrics and per-query scores (or those of the files ``names``); timings excepted."""
    found = []
    logs = [TrainLog(run.train_log).comparable() for run in (a, b)]
    if logs[0] != logs[1]:
        found.append(f"train_log.jsonl differs ({len(logs[0])} and {len(logs[1])} lines, timings excepted)")
    if names is None:
        names = {p.name for p in a.results_files()} | {p.name for p in b.results_files()}
    for name in sorted(names):
        first, second = a.eval_dir / name, b.eval_dir / name
        if not (first.is_file() and second.is_file()):
            found.append(f"eval/{name}: only in {a.path if first.is_file() else b.path}")
            continue
        x, y = EvalResult.load(first), EvalResult.load(second)
        for dataset in sorted(set(x.datasets) | set(y.datasets)):
            dx, dy = x.datasets.get(dataset), y.datasets.get(dataset)
            if dx is None or dy is None:
                found.append(f"eval/{name}: dataset {dataset} in one run only")
            elif (dx.metrics, dx.per_query, dx.query_ids) != (dy.metrics, dy.per_query, dy.query_ids):
                changed = [m for m in dx.per_query if dx.per_query[m] != dy.per_query.get(m)]
                found.append(f"eval/{name}: {dataset}: {', '.join(changed) or 'metrics'} differ")
    return found


def fingerprint_folder(path: str | os.PathLike) -> str:
    """SHA-256 of a model folder: every file's relative path and content.

    README.md (the model card) and hidden files (download metadata) are left out: they describe a model
    without changing what it computes.
    """
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel == "README.md" or any(part.startswith(".") for part in rel.split("/")):
            continue
        h.update(rel.encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()
