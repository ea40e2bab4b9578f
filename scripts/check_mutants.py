"""Do the suite's oracles still catch the bugs they were written for? Apply each mutant, run its guard, expect a kill.

A mutant is a committed one-line patch in ``scripts/mutants/NAME.patch``: a header saying which plausible bug it
stands for (``Stands for: ...``) and which tests guard against it (``Test: tests/...::name``, one or more lines,
each of which must fail), then the diff. For each mutant, in a scratch copy of the checkout (tracked and untracked files, not ignored ones,
with ``../shared`` linked beside it), the guard tests first run unmutated (they must pass, or a kill would mean
nothing), then with the patch applied (they must fail: the mutant is killed). A patch that no longer applies is an
error, not a pass: the code moved and the mutant must move with it.

    python scripts/check_mutants.py              # every mutant; exit 0 when all are killed
    python scripts/check_mutants.py --only loss-drops-d-to-q
    python scripts/check_mutants.py --repo ../other-checkout   # another checkout's tests and code, these mutants

Exit status: 0 every mutant killed, 1 a mutant survived or a guard failed unmutated, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MUTANTS = HERE / "mutants"


@dataclass
class Mutant:
    name: str
    why: str
    tests: list[str]
    patch: Path


def load_mutants(folder: Path) -> list[Mutant]:
    mutants = []
    for patch in sorted(folder.glob("*.patch")):
        header = patch.read_text(encoding="utf-8").split("\ndiff --git", 1)[0].splitlines()
        why = [line.removeprefix("Stands for: ") for line in header if line.startswith("Stands for: ")]
        tests = [line.removeprefix("Test: ") for line in header if line.startswith("Test: ")]
        if len(why) != 1 or not tests:
            raise SystemExit(f"error: {patch}: needs one 'Stands for:' line and at least one 'Test:' line")
        mutants.append(Mutant(patch.stem, why[0], tests, patch))
    return mutants


def scratch_copy(repo: Path, into: Path) -> Path:
    """The checkout's tracked and untracked (not ignored) files in ``into/repo``, ``into/shared`` its neighbour."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                           capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    copy = into / "repo"
    for name in filter(None, files):
        source = repo / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    if (repo.parent / "shared").is_dir():
        (into / "shared").symlink_to((repo.parent / "shared").resolve())
    return copy


def run_tests(copy: Path, tests: list[str]) -> tuple[int, str, float]:
    """pytest on ``tests`` in the copy, importing the copy's package (also in the processes the tests start)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-n", "0", *tests]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - started


def git_apply(copy: Path, patch: Path, *, reverse: bool = False) -> None:
    command = ["git", "apply", *(["--reverse"] if reverse else []), str(patch)]
    done = subprocess.run(command, cwd=copy, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: {patch.name} does not apply{' in reverse' if reverse else ''}: {done.stderr.strip()}")


def check_imports_the_copy(copy: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    found = subprocess.run([sys.executable, "-c", "import bidir_cli; print(bidir_cli.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if not Path(found).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"error: the scratch copy imports bidir_cli from {found}, not from {copy}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout to mutate (default: this one)")
    parser.add_argument("--only", action="append", help="only this mutant (repeatable)")
    args = parser.parse_args(argv)
    mutants = [m for m in load_mutants(MUTANTS) if not args.only or m.name in args.only]
    unknown = set(args.only or []) - {m.name for m in mutants}
    if unknown or not mutants:
        print(f"error: no such mutant: {', '.join(sorted(unknown)) or '(none found)'}", file=sys.stderr)
        return 2

    failed = False
    print("| mutant | stands for | guard | unmutated | mutated | verdict |\n|---|---|---|---|---|---|", flush=True)
    reasons = []
    with tempfile.TemporaryDirectory(prefix="bidir-mutants-") as tmp:
        copy = scratch_copy(args.repo.resolve(), Path(tmp))
        check_imports_the_copy(copy)
        for mutant in mutants:
            guard = ", ".join(t.split("::")[-1] for t in mutant.tests)
            clean, output, clean_s = run_tests(copy, mutant.tests)
            if clean != 0:
                print(f"| {mutant.name} | {mutant.why} | {guard} | FAILED ({clean_s:.0f} s) | - | guard broken |")
                print(output[-3000:], file=sys.stderr)
                failed = True
                continue
            git_apply(copy, mutant.patch)
            try:
                status, output, mutated_s = run_tests(copy, mutant.tests)
            finally:
                git_apply(copy, mutant.patch, reverse=True)
            # pytest exits 1 when a test failed; 0 is a survivor, anything else (collection error, crash) is neither.
            # Killed means every guard failed: a guard that lets the mutant through is reported by name.
            missed = [t for t in mutant.tests if status == 1 and f"FAILED {t}" not in output]
            verdict = {0: "SURVIVED", 1: "killed"}.get(status, f"error (pytest exit {status})")
            if missed:
                verdict = "SURVIVED by " + ", ".join(t.split("::")[-1] for t in missed)
            failed |= status != 1 or bool(missed)
            mutated = {0: "passed", 1: "failed"}.get(status, f"exit {status}")
            print(f"| {mutant.name} | {mutant.why} | {guard} | passed ({clean_s:.0f} s) | {mutated} ({mutated_s:.0f} s) "
                  f"| {verdict} |", flush=True)  # fmt: skip
            if status == 1:  # the assertion that caught it: a kill for the wrong reason shows here
                reasons.append(
                    f"- {mutant.name}: " + next((x[2:] for x in output.splitlines() if x.startswith("E ")), "?")[:160]
                )
            elif status != 0:
                print(output[-3000:], file=sys.stderr)
    print("\nWhat failed under each mutant (the first error line):\n" + "\n".join(reasons) if reasons else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
