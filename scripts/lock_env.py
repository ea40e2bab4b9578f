"""Write scripts/constraints.txt: the pinned environment that scripts/setup_env.sh installs with.

The packages the committed experiments recorded in their meta.json (``versions``: torch, transformers,
sentence-transformers, ...) are pinned at those versions, so that ``--verify`` and ``--rebuild`` of a committed
cell run the code its numbers came from; everything else bidir's development install pulls in is pinned at what
the package index serves now. The lock is made by installing into a fresh virtual environment, torch first, and
freezing it.

    python scripts/lock_env.py                  # rewrite scripts/constraints.txt (about two minutes)
    python scripts/lock_env.py --check          # exit 1 if a committed cell recorded a version the lock lacks

Exit status: 0 done (or consistent), 1 inconsistent, 2 the committed cells disagree among themselves.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "scripts" / "constraints.txt"
NOT_PINNED = ("bidir", "python")  # the project itself; the interpreter is not pip's to install
sys.path.insert(0, str(ROOT))


def recorded_versions() -> dict[str, str]:
    """package -> the version every committed cell recorded (meta.json, read through RunMeta)."""
    from bidir_cli.runs.rundir import RunDir

    found: dict[str, set[str]] = {}
    for meta_file in sorted((ROOT / "docs" / "experiments").glob("*/runs/*/meta.json")):
        meta = RunDir(meta_file.parent).read_meta()
        for package, version in (meta.versions or {}).items():
            if package not in NOT_PINNED:
                found.setdefault(package, set()).add(version)
    mixed = {p: v for p, v in found.items() if len(v) > 1}
    if mixed:
        raise SystemExit(f"error: the committed cells recorded several versions of: {mixed}")
    return {package: versions.pop() for package, versions in found.items()}


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[normalise(name)] = version
    return pins


def normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the lock against the committed cells")
    args = parser.parse_args(argv)
    recorded = recorded_versions()
    if args.check:
        pins = locked()
        wrong = {p: (v, pins.get(normalise(p))) for p, v in recorded.items() if pins.get(normalise(p)) != v}
        for package, (version, pin) in wrong.items():
            print(f"{package}: the committed cells ran {version}, the lock pins {pin}", file=sys.stderr)
        return 1 if wrong else 0
    with tempfile.TemporaryDirectory(prefix="bidir-lock-") as tmp:
        venv, pins = Path(tmp) / "venv", Path(tmp) / "pins.txt"
        pins.write_text("".join(f"{p}=={v}\n" for p, v in sorted(recorded.items())))
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-c", str(pins), f"torch=={recorded['torch'].split('+')[0]}"], check=True)
        subprocess.run([*pip, "-c", str(pins), "-e", f"{ROOT}[dev]"], check=True)
        freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
    lines = [line for line in freeze.splitlines() if line and not line.startswith(("-e", "#"))]
    header = [
        "# The pinned environment (pip constraints): every package bidir's development install pulls in, transitive",
        "# ones included; scripts/setup_env.sh installs with it (torch first). Written by python scripts/lock_env.py",
        f"# on {date.today().isoformat()}: the packages the committed experiments recorded in meta.json at their",
        "# versions (" + ", ".join(f"{p} {v}" for p, v in sorted(recorded.items())) + "),",
        "# the others as the package index served them that day.",
    ]
    LOCK.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"{LOCK}: {len(lines)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
