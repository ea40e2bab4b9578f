"""Check that two outputs of scripts/run_experiments.sh hold the same results, timings excepted.

    python scripts/check_reproduction.py runs/experiments runs/experiments-again

For every run directory present in both folders it compares the training log (step, loss, learning rate,
gradient norm, partition shares) and every evaluation file (each dataset's metrics, query ids and per-query
scores); for every `bidir compare` JSON present in both, every table row (cells, differences, intervals,
p-values, Holm marks); and scale_choice.json. Values must be equal, not close: the same seeds on the same
machine kind must give the same numbers. Wall times, examples per second and memory are left out.

Exit status 0 when everything present in both is identical, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bidir_cli.runs import RunDir

# The one timing in train_log.jsonl; meta.json is not compared and eval files are reduced to their results.
TIMING_KEYS = {"examples_per_second"}


def differences(a: object, b: object, where: str) -> list[str]:
    """Every place where two JSON values differ, timing fields left out."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in one" for k in sorted(set(a) ^ set(b)) if k not in TIMING_KEYS]
        for key in sorted(set(a) & set(b)):
            if key not in TIMING_KEYS:
                out += differences(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} against {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} against {b!r}"]


def train_log(run: Path) -> list[dict]:
    path = RunDir(run).train_log
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def eval_results(path: Path) -> dict:
    """What an evaluation measured: per dataset, its metrics, query ids and per-query scores."""
    data = json.loads(path.read_text())
    keep = ("metrics", "query_ids", "per_query", "counts")
    return {name: {k: d.get(k) for k in keep} for name, d in data["datasets"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    a, b = args.first, args.second

    found: list[str] = []
    checked = {"runs": 0, "evaluation files": 0, "per-query values": 0, "compare tables": 0}
    runs = sorted(p.name for p in a.iterdir() if RunDir(p).is_run() and RunDir(b / p.name).is_run())
    for name in runs:
        checked["runs"] += 1
        found += differences(train_log(a / name), train_log(b / name), f"{name}/train_log.jsonl")
        for path in RunDir(a / name).results_files():
            other = RunDir(b / name).eval_dir / path.name
            if not other.is_file():
                found.append(f"{name}/eval/{path.name}: only in {a}")
                continue
            first = eval_results(path)
            checked["evaluation files"] += 1
            checked["per-query values"] += sum(len(s) for d in first.values() for s in (d["per_query"] or {}).values())
            found += differences(first, eval_results(other), f"{name}/eval/{path.name}")
    for path in sorted(a.glob("compare-*.json")):
        other = b / path.name
        if other.is_file():
            checked["compare tables"] += 1
            found += differences(json.loads(path.read_text())["rows"], json.loads(other.read_text())["rows"], path.name)
    if (a / "scale_choice.json").is_file() and (b / "scale_choice.json").is_file():
        found += differences(
            json.loads((a / "scale_choice.json").read_text()),
            json.loads((b / "scale_choice.json").read_text()),
            "scale_choice.json",
        )

    print("compared: " + ", ".join(f"{n} {k}" for k, n in checked.items()))
    if not checked["runs"] and not checked["compare tables"]:
        print(f"nothing to compare: no run directory or compare table is in both {a} and {b}")
        sys.exit(1)
    for line in found:
        print(f"DIFFERENT {line}")
    print(f"{len(found)} differences" if found else "identical (timings excepted)")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
