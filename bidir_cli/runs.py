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

import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InputError
from .io import atomic_write_json
from .results import EvalResult

PACKAGE_DIR = Path(__file__).resolve().parent  # bidir_cli/
RUN_FORMAT = "bidir.run/1"
LEGACY_RUN_FORMAT = "bidir.run/0"  # how a meta.json from before the format field reads
STATUSES = ("starting", "running", "completed", "failed", "interrupted")
# The packages a run records; bidir and python are always recorded.
RUN_PACKAGES = ("sentence-transformers", "transformers", "torch", "datasets", "accelerate")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# The variables that pin the vector instructions torch, MKL and oneDNN use. Same code, threads and data give other
# last digits on a CPU with other vector units (measured: a tier-3 cell trained on an AVX512 machine reproduced an
# AVX2 machine's train log exactly only with all three set to AVX2; ATEN_CPU_CAPABILITY alone fixed the loss, not
# the gradient norm).
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def cpu_description() -> dict[str, Any]:
    """The CPU kernels a run's float results depend on: torch's dispatch level, the processor, the pinning."""
    import torch

    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "processor": _processor(),
        "pinned": {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ},
    }


def cpu_mismatch(recorded: dict[str, Any]) -> str | None:
    """Why a run's float results may differ here: it recorded another CPU capability or pinning, or none at all."""
    here = cpu_description()
    pin = f"pin the kernels to the run's level with {', '.join(ISA_VARIABLES)} (README: Reproduction)"
    if not recorded:
        return f"the run did not record its CPU (here: {here['capability']}); on another CPU kind {pin}"
    if (recorded.get("capability"), recorded.get("pinned")) != (here["capability"], here["pinned"]):
        return (f"the run's CPU capability was {recorded.get('capability')} (pinned: {recorded.get('pinned') or 'no'}), "
                f"here {here['capability']} (pinned: {here['pinned'] or 'no'}): {pin}")  # fmt: skip
    return None


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def versions(packages: tuple[str, ...] = RUN_PACKAGES) -> dict[str, str]:
    """bidir's, Python's and each package's version ("not installed" for a missing one)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    out = {"bidir": __version__, "python": platform.python_version()}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


# The command that installs the pinned set (scripts/constraints.txt, the committed experiments' versions).
INSTALL_PINNED = "python -m pip install -c scripts/constraints.txt -e '.[dev]'"
# Packages that change a run's numbers beyond those in versions(): compared where a run recorded them.
NUMERIC_PACKAGES = ("tokenizers", "numpy", "safetensors", "scipy")


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version, names normalised (meta.json ``installed``)."""
    from importlib.metadata import distributions

    found = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions() if d.metadata["Name"]}
    return dict(sorted(found.items()))


def version_mismatches(meta: RunMeta) -> list[str]:
    """The packages a run recorded at another version than the one installed here (python: its minor version)."""
    here = versions() | {k: v for k, v in installed_packages().items() if k in NUMERIC_PACKAGES}
    recorded = meta.versions | {k: v for k, v in (meta.installed or {}).items() if k in NUMERIC_PACKAGES}
    found = []
    for package, version in sorted(recorded.items()):
        if package == "bidir":
            continue
        mine = here.get(package, "not installed")
        same = mine.split(".")[:2] == version.split(".")[:2] if package == "python" else mine == version
        if not same:
            found.append(f"{package} {version} (installed: {mine})")
    return found


def require_versions(meta: RunMeta, what: str) -> None:
    """Refuse (InputError naming each package and the command that installs the pinned set) to redo a run under
    other package versions than it recorded."""
    if mismatches := version_mismatches(meta):
        raise InputError(
            f"{what}: the run recorded other package versions: {', '.join(mismatches)}; install the pinned set first "
            f"({INSTALL_PINNED}, from the checkout's root)"
        )


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=path, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def git_commit(path: Path) -> str | None:
    """The commit of the repository that holds ``path`` (with ``-dirty`` if it has changes), if any."""
    try:
        commit = _git(path, "rev-parse", "HEAD")
        dirty = _git(path, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def code_version(package: Path = PACKAGE_DIR) -> str | None:
    """The git tree hash of bidir's own source folder (with ``-dirty`` if it has uncommitted changes), if any.

    Unlike the repository's commit, it moves only when the code does: an experiment that commits its
    results as its cells complete (or a docs change) leaves it alone, so it tells whether two runs ran the
    same bidir.
    """
    try:
        tree = _git(package, "rev-parse", "HEAD:./")
        dirty = _git(package, "status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return tree + ("-dirty" if dirty else "")


def checkout_root(path: Path) -> Path:
    """The git checkout holding ``path`` (its top level), or ``path`` itself outside one."""
    try:
        return Path(_git(path, "rev-parse", "--show-toplevel"))
    except (OSError, subprocess.SubprocessError):
        return path


def code_of_commit(commit: str, package: Path = PACKAGE_DIR) -> str | None:
    """:func:`code_version` of a clean commit this repository has (for runs recorded before ``code`` existed)."""
    if commit.endswith("-dirty"):
        return None
    try:
        return _git(package, "rev-parse", f"{commit}:./")
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class RunMeta:
    """A run's meta.json: what ran, on what, and how it ended.

    ``format`` marks the file as bidir's; files written before it existed read as ``bidir.run/0``.
    Keys this version does not know are kept in ``extra`` and written back unchanged.
    """

    status: str | None
    name: str
    format: str = RUN_FORMAT
    argv: list[str] = field(default_factory=list)
    config_path: str | None = None
    seed: int | None = None
    started: str | None = None
    ended: str | None = None
    wall_time_s: float | None = None
    wall_time_s_before: float = 0.0
    resumed: list[str] = field(default_factory=list)
    resumed_from: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    installed: dict[str, str] | None = None  # installed_packages(); absent from runs before 2026-12-06
    git_commit: str | None = None
    code: str | None = None  # code_version(): bidir's source tree, unmoved by results or docs commits
    device: str | None = None
    world_size: int | None = None
    threads: int | None = None
    cpu: dict[str, Any] = field(default_factory=dict)  # cpu_description(); absent from runs before 2026-12-06
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    push: dict[str, Any] | None = None  # the hub push's outcome (training.push_to_hub), see hub.push_model
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return {"format": d.pop("format"), **d, **extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in d.items() if k in known}
        values.setdefault("format", LEGACY_RUN_FORMAT)
        values.setdefault("status", None)
        values.setdefault("name", "")
        for key in ("train", "model", "loss", "data", "config", "versions", "cpu"):
            if values.get(key) is None:
                values.pop(key, None)
        if values.get("resumed") and values.get("train") and not values["train"].get("examples_per_second"):
            # Before 2026-12-06 a run resumed from its last checkpoint recorded its last process's rate, 0.0 (that
            # process trained no step): not measured, so every table that reads the rate leaves it out.
            values["train"] = values["train"] | {"examples_per_second": None}
        return cls(**values, extra={k: v for k, v in d.items() if k not in known})

    def settings(self) -> dict[str, Any]:
        """What the run was trained with, for comparing runs: its seed, loss, data and resolved config."""
        out: dict[str, Any] = {} if self.seed is None else {"seed": self.seed}
        return out | {k: v for k, v in (("loss", self.loss), ("data", self.data), ("config", self.config)) if v}


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
    if _log(a) != _log(b):
        found.append(f"train_log.jsonl differs ({len(_log(a))} and {len(_log(b))} lines, timings excepted)")
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


TIMINGS = {"examples_per_second"}


def _log(run: RunDir) -> list[dict[str, Any]]:
    if not run.train_log.is_file():
        return []
    lines = [json.loads(x) for x in run.train_log.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [{k: v for k, v in line.items() if k not in TIMINGS and not k.endswith("_runtime") and "per_second" not in k}
            for line in lines]  # fmt: skip
