"""Peak memory of loading training data: ``bidir train CONFIG --dry-run`` (reads, validates and hashes every
source, builds the trainer's arguments; trains nothing), each in a fresh process, its peak resident set size read
from the kernel when it exits. Compared against the quickstart config's dry run (the same imports, bundled data).

    python scripts/bench_data_memory.py                      # quickstart, the static tier (306k pairs), 3M pairs
    python scripts/bench_data_memory.py --repeat 10 --runs 3

The 3M-pair file repeats the static tier's sources' pairs (``--repeat`` times, written once into a temporary
folder). Needs ../shared beside the repository and the offline all-MiniLM-L6-v2 (``source scripts/setup_env.sh``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def peak_mib(args: list[str], cache: Path) -> float:
    """Peak RSS (MiB) of ``bidir ARGS`` in a fresh process, with ``cache`` as the datasets cache (its Arrow copies
    of the sources); fails loudly if the command fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_CACHE": str(cache)}
    process = subprocess.Popen([sys.executable, "-m", "bidir_cli.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"bidir {' '.join(args)} failed: {process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="how many times the big file repeats the pairs")
    parser.add_argument("--runs", type=int, default=3, help="processes per config (the median is reported)")
    args = parser.parse_args()
    tokenizer = os.environ.get("BIDIR_MINILM")
    if not tokenizer:
        raise SystemExit("set BIDIR_MINILM (source scripts/setup_env.sh)")
    static = ROOT / "configs" / "tiers" / "static-mnrl.yaml"
    with tempfile.TemporaryDirectory(prefix="bidir-bench-data-") as tmp:
        config = yaml.safe_load(static.read_text())
        big = Path(tmp) / "big.jsonl"
        with big.open("w", encoding="utf-8") as out:
            for _ in range(args.repeat):
                for source in config["data"]["train"]:
                    out.write((static.parent / source["source"]).read_text(encoding="utf-8"))
        rows = sum(1 for _ in big.open(encoding="utf-8"))
        big_config = Path(tmp) / "big.yaml"
        suite = str((static.parent / config["evaluation"]["suite"]).resolve())
        big_config.write_text(yaml.safe_dump(config | {"data": {"train": [{"source": str(big), "name": "big"}]},
                                                        "evaluation": {"suite": suite}}))  # fmt: skip
        tok = ["--set", f"model.static.tokenizer={tokenizer}"]
        cases = {
            "quickstart (bundled WordNet pairs)": [str(ROOT / "configs" / "quickstart.yaml")],
            "static tier (11 sources, 306k pairs)": [str(static), *tok],
            f"one file of {rows:,} pairs ({big.stat().st_size / 2**20:.0f} MiB)": [str(big_config), *tok],
        }
        results = {}
        for i, (name, a) in enumerate(cases.items()):
            cache = Path(tmp) / f"cache-{i}"  # empty: the first run writes the Arrow copy, the others read it
            first = peak_mib(["train", *a, "--dry-run"], cache)
            results[name] = (
                first,
                statistics.median(peak_mib(["train", *a, "--dry-run"], cache) for _ in range(args.runs)),
            )
    (base, _), (_, warm_base) = next(iter(results.values())), next(iter(results.values()))
    print(
        f"Peak memory of `bidir train CONFIG --dry-run`: the first run (which writes the datasets cache's Arrow copy)"
        f" and the median of {args.runs} later runs (which read it); {platform.platform()}, {os.cpu_count()} CPUs.\n"
    )
    print("| data | first run (MiB) | above the quickstart's | later runs (MiB) | above the quickstart's |")
    print("|---|---:|---:|---:|---:|")
    for name, (first, warm) in results.items():
        print(f"| {name} | {first:.0f} | {first - base:+.0f} | {warm:.0f} | {warm - warm_base:+.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
