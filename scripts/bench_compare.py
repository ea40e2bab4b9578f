"""Time bidir compare on NanoBEIR-shaped results (13 datasets of 50 queries, 10,000 permutations), and on groups.

Run (from the repository root):

    PYTHONPATH=. python scripts/bench_compare.py [--rounds 5]

What is timed, median over rounds:

* in process: ``compare_command`` with the table format, the import of the package already paid;
* command line: ``python -m bidir_cli.cli compare A B`` in a fresh process, imports included;
* groups: the same command with two groups of 3 runs on 6 datasets of 50-300 queries (the run-level test).

The targets are 1 s in process, 2 s on the command line (bidir compare reads JSON and never imports torch) and
5 s for the groups (issue 15).
It prints the timings and the checks, and exits with status 1 if one fails. These timings used to be assertions
in tests/test_compare.py; on a machine shared with other jobs they belong here, where a failure is read as a
measurement, not as a broken build.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bidir_cli.compare.command import compare_command  # noqa: E402
from bidir_cli.runs.results import DatasetResult, EvalResult  # noqa: E402

METRIC = "ndcg@10"
TARGETS = {"in process": 1.0, "command line": 2.0, "groups": 5.0}


def write_results(path: Path, rng: np.random.Generator, sizes: tuple[int, ...] = (50,) * 13) -> Path:
    """A results file as ``bidir eval`` writes it, with NanoBEIR's shape and uniform random per-query scores."""
    datasets = {}
    for i, n in enumerate(sizes):
        values = rng.uniform(size=n)
        datasets[f"Nano{i}"] = DatasetResult(
            name=f"Nano{i}",
            hash=f"hash-of-Nano{i}",
            source=f"data/Nano{i}",
            counts={"queries": n},
            metrics={METRIC: float(values.mean())},
            query_ids=[f"q{k}" for k in range(n)],
            per_query={METRIC: values.tolist()},
        )
    EvalResult(suite={"name": "nanobeir"}, model={}, settings={}, versions={}, created="", datasets=datasets).save(path)
    return path


def time_in_process(a: Path, b: Path) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        compare_command(
            [str(a), str(b)], groups=[], baseline=None, metric=METRIC, fmt="table", plot=None, suite=None,
            permutations=10_000, seed=0,
        )  # fmt: skip
    return time.perf_counter() - start


def time_command_line(*arguments: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bidir_cli.cli", "compare", *arguments], capture_output=True,
                   check=True, env=env)  # fmt: skip
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed repetitions of each (default 5)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = write_results(Path(tmp) / "a.json", rng), write_results(Path(tmp) / "b.json", rng)
        sizes = (50, 100, 150, 200, 250, 300)
        for group in ("a", "b"):
            for seed in range(3):
                write_results(Path(tmp) / "groups" / f"{group}-seed{seed}.json", rng, sizes)
        groups = [f"--group={g}={Path(tmp) / 'groups' / f'{g}-seed*.json'}" for g in ("a", "b")]
        times = {
            "in process": [time_in_process(a, b) for _ in range(args.rounds)],
            "command line": [time_command_line(str(a), str(b)) for _ in range(args.rounds)],
            "groups": [time_command_line(*groups) for _ in range(args.rounds)],
        }
    failed = False
    for name, values in times.items():
        median, target = statistics.median(values), TARGETS[name]
        ok = median < target
        failed |= not ok
        print(f"{name:13s} median {median:.3f} s over {len(values)} rounds (min {min(values):.3f} s), "
              f"target < {target:.0f} s: {'ok' if ok else 'FAILED'}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
