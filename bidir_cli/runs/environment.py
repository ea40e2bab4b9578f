"""The environment a run records in meta.json: package versions, the installed set, the code version, the
git commit, the CPU and where the process runs. The run directory's layout: rundir.py."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from .meta import RunMeta

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # bidir_cli/


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

    from .. import __version__

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


def package_commit() -> str | None:
    """The repository commit bidir's package is checked out at (None outside a git checkout)."""
    return git_commit(PACKAGE_DIR)


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


def where_running() -> dict[str, Any]:
    """Where this process runs: host, pid, the executor that started it (``bidir experiment`` sets
    ``BIDIR_EXECUTOR``; by hand: none) and, inside a SLURM job, its job id, array job id and array task id."""
    import socket

    slurm = {key: os.environ[var] for key, var in (("slurm_job_id", "SLURM_JOB_ID"),
             ("slurm_array_job_id", "SLURM_ARRAY_JOB_ID"), ("slurm_array_task_id", "SLURM_ARRAY_TASK_ID"))
             if var in os.environ}  # fmt: skip
    return {"host": socket.gethostname(), "pid": os.getpid(), "executor": os.environ.get("BIDIR_EXECUTOR"), **slurm}
