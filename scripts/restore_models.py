"""Rebuild the weights of an experiment's completed cells, exactly, from the files it committed.

Weights are not committed (docs/experiments/.gitignore: about 90 MB a MiniLM cell), so a fresh checkout of a
finished experiment has results but no models, and ``bidir experiment FILE --confirm`` needs the models. Training
is deterministic at a fixed thread count (``--verify`` shows it), so each cell without a model is retrained with its
own train command and threads into a scratch folder, without the final evaluation (the results are committed), and
its model moves into the run folder only when

- the model folder's fingerprint equals the one the cell's committed results files recorded, and
- the train log equals the committed one (timings excepted).

Anything else stops with the difference and leaves the run folder as it was: a model that is not the one the
results came from is never put in its place. The base cell (the untrained model) is rebuilt as ``--cell base``
builds it, under the same check.

Bit-exact rebuilding holds on the CPU kind the cells ran on; another one (another SIMD code path in the kernels)
rounds differently, and a transformer's train log then differs in the 7th digit. Pinning the kernels to the cells'
level usually restores exactness: the transformer tier's cells, trained on an AVX2 machine, were rebuilt bit for bit
on an AVX512 one with ``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2`` (set for
this script; the cells' train commands inherit them). Cells that recorded their CPU (meta.json ``cpu``, since
2026-12-06) are checked against it before anything trains. Where pinning cannot help, ``--rtol R``
accepts such a rebuild when every number of its train log is within relative R of the committed one: the rebuilt
model is then evaluated on the cell's own test suites, and the run folder gets ``rebuilt.json`` beside the model
(its fingerprint, the train log's largest relative difference, how far its results are from the committed ones),
and the experiment folder ``rebuilt.md``, a table of every rebuilt cell for the results page. Results evaluated
on such a model (a later ``--confirm``) record its own fingerprint, not the one of the test results.

``--scratch DIR`` keeps the rebuilt runs there (default: a temporary folder), and a completed one found there is
used again instead of retrained, so that an interrupted restore resumes.

    python scripts/restore_models.py configs/experiments/transformer.yaml \
        --output-dir docs/experiments/transformer --jobs 2

Install the package versions the cells recorded (meta.json) first: the script checks them before it trains.
Exit status 0 when every cell has its model, 1 when a rebuilt one differs, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bidir_cli import runs
from bidir_cli.errors import InputError
from bidir_cli.experiment import Cell, Experiment, set_arguments
from bidir_cli.io import atomic_write_json
from bidir_cli.models import fingerprint_folder
from bidir_cli.results import EvalResult
from bidir_cli.runs import INSTALL_PINNED, RunDir, _log, cpu_mismatch, differences  # _log: the log as --verify reads it


def recorded_fingerprint(run: RunDir) -> str:
    """The model fingerprint the run's results files recorded (they must agree)."""
    prints = {EvalResult.load(p).model.get("fingerprint") for p in run.results_files()}
    prints.discard(None)
    if len(prints) != 1:
        raise InputError(f"{run.path}: its results files record {len(prints)} model fingerprints, not one")
    return prints.pop()


def version_mismatches(exp: Experiment, cells: list[Cell]) -> list[str]:
    """Packages whose installed version differs from the one a cell recorded: a model saved by another version
    need not be byte-identical (config.json records the transformers version), so nothing is rebuilt then. And the
    CPU kernels, for cells that recorded them."""
    found = {}
    for cell in cells:
        meta = exp.run_dir(cell).read_meta()
        for mismatch in runs.version_mismatches(meta):
            found[mismatch.split()[0]] = f"{mismatch}; cell {cell.name}"
        if meta.cpu and (problem := cpu_mismatch(meta.cpu)):
            found["cpu"] = f"{problem} (cell {cell.name})"
    return sorted(found.values())


def rebuild(exp: Experiment, cell: Cell, scratch: Path) -> RunDir:
    """The cell retrained (or, for the base cell, rebuilt) into ``scratch``, without evaluation."""
    again = RunDir(scratch / cell.name)
    if cell.kind == "base":
        exp.base_model(cell).save(str(again.model))
        return again
    command = exp.train_command(cell, output=again.path) + set_arguments({"evaluation.suite": None})
    log = scratch / f"{cell.name}.log"
    log.unlink(missing_ok=True)
    exp.execute(cell, [command], log)
    return again


def numbers(value: Any, at: str = "") -> dict[str, Any]:
    """Every number of a train log line (nested dicts flattened to dotted keys)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{at}{key}.").items()}
    return {at.rstrip("."): value}


def log_relative_difference(a: RunDir, b: RunDir) -> float | None:
    """The largest relative difference between two train logs' numbers (timings excepted, as ``--verify`` reads
    them), or None when the logs differ in shape (lines, keys) or in anything not a number."""
    first, second = [[numbers(line) for line in _log(run)] for run in (a, b)]
    if len(first) != len(second) or any(x.keys() != y.keys() for x, y in zip(first, second)):
        return None
    largest = 0.0
    for x, y in zip(first, second):
        for key, u in x.items():
            v = y[key]
            if isinstance(u, bool) or not isinstance(u, (int, float)) or not isinstance(v, (int, float)):
                if u != v:
                    return None
            elif u != v:
                largest = max(largest, abs(u - v) / max(abs(u), abs(v)))
    return largest


def results_distance(run: RunDir, again: RunDir, suite: str) -> dict[str, Any]:
    """How far the rebuilt model's results on a suite are from the committed ones (nDCG@10)."""
    from bidir_cli.compare import find_results
    from bidir_cli.results import DEFAULT_SETTINGS
    from bidir_cli.suites import resolve_suite

    name = resolve_suite(suite).name
    old, new = (find_results(r, name, DEFAULT_SETTINGS)[1] for r in (run, again))
    if new.datasets.keys() != old.datasets.keys():
        raise RuntimeError(
            f"{again.path}: evaluated on {sorted(new.datasets)}, the committed results on {sorted(old.datasets)}"
        )
    per_query = [
        (x, y)
        for dataset, d in new.datasets.items()
        for x, y in zip(old.datasets[dataset].per_query["ndcg@10"], d.per_query["ndcg@10"], strict=True)
    ]
    return {
        "suite": name,
        "mean_ndcg@10": {"committed": old.mean["ndcg@10"], "rebuilt": new.mean["ndcg@10"]},
        "mean_ndcg@10_difference": new.mean["ndcg@10"] - old.mean["ndcg@10"],
        "queries": len(per_query),
        "queries_differing": sum(x != y for x, y in per_query),
        "largest_query_difference": max(abs(x - y) for x, y in per_query),
    }


def restore(exp: Experiment, cell: Cell, scratch: Path, rtol: float) -> str:
    run = exp.run_dir(cell)
    if run.model.exists():
        return f"{cell.name}: has its model"
    expected = recorded_fingerprint(run)
    again = RunDir(scratch / cell.name)
    reused = again.model.is_dir() and (meta := again.read_meta()) is not None and meta.status == "completed"
    if not reused:
        shutil.rmtree(again.path, ignore_errors=True)  # a rebuild this script started and did not finish
        again = rebuild(exp, cell, scratch)
    got = fingerprint_folder(again.model)
    exact = [] if cell.kind == "base" else differences(run, again, set())  # the train log only
    if got != expected:
        exact.append(f"model fingerprint {got[:16]}, the results recorded {expected[:16]}")
    if not exact:
        shutil.move(str(again.model), str(run.model))
        return f"{cell.name}: restored (fingerprint {expected[:16]})"
    relative = None if cell.kind == "base" else log_relative_difference(run, again)
    if not rtol or relative is None or relative > rtol:
        within = f"; the train log's largest relative difference is {relative:.1e}" if relative is not None else ""
        raise RuntimeError(
            f"cell {cell.name}: the rebuilt model is not the one its results came from: {'; '.join(exact)}{within}"
        )
    subset = cell.config.evaluation.datasets  # the train command evaluated its own suite on these only
    commands = exp.eval_commands(cell, cell.suites, again.path)
    if subset:
        commands[0] += ["--datasets", ",".join(subset)]
    exp.execute(cell, commands, scratch / f"{cell.name}.log")
    record = {
        "format": "bidir.rebuilt/1",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "why": "the weights are not committed; rebuilt from the cell's own train command for a later evaluation",
        "command": shlex.join(exp.shown(exp.train_command(cell))),
        "threads": exp.threads,
        "machine": {"platform": platform.platform(), "cpu_capability": torch_cpu_capability()},
        "fingerprint": {"test_results": expected, "rebuilt": got},
        "train_log_largest_relative_difference": relative,
        "rtol": rtol,
        "results": [results_distance(run, again, suite) for suite in cell.suites],
    }
    shutil.move(str(again.model), str(run.model))
    atomic_write_json(run.path / "rebuilt.json", record)
    return f"{cell.name}: rebuilt within rtol {rtol:g} (train log {relative:.1e}), fingerprint {got[:16]}"


def torch_cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def rebuilt_table(exp: Experiment) -> str | None:
    """Markdown: every cell of the experiment whose model was rebuilt within a tolerance, from rebuilt.json."""
    records = [(c.name, json.loads(p.read_text(encoding="utf-8"))) for c in exp.test_cells()
               if (p := exp.run_dir(c).path / "rebuilt.json").is_file()]  # fmt: skip
    if not records:
        return None
    lines = [
        f"## Rebuilt models ({exp.spec.name})",
        "",
        "Weights are not committed. These cells' models were rebuilt by `python scripts/restore_models.py "
        f"{exp.path} --output-dir {exp.dir} --rtol ...` from their own train commands on another machine, where "
        "floating point rounds differently: not bit-identical to the models the test results came from, so their "
        "fingerprints differ, but each train log agrees to the relative difference shown, and each rebuilt model "
        "was evaluated again on the test suite (below, against the committed results). Held-out results of these "
        "cells come from the rebuilt models (their results files record the rebuilt fingerprint).",
        "",
        "| cell | machine | train log, largest relative difference | suite | mean nDCG@10 committed | rebuilt | "
        "queries differing | largest query difference |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in records:
        machine = f"{r['machine']['cpu_capability']}, {r['threads']} thread(s)"
        for res in r["results"]:
            mean = res["mean_ndcg@10"]
            lines.append(
                f"| {name} | {machine} | {r['train_log_largest_relative_difference']:.1e} | {res['suite']} | "
                f"{mean['committed']:.4f} | {mean['rebuilt']:.4f} | {res['queries_differing']} of {res['queries']} | "
                f"{res['largest_query_difference']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", help="the experiment YAML file")
    parser.add_argument("--output-dir", required=True, help="the experiment's output folder")
    parser.add_argument("--jobs", type=int, default=1, help="cells rebuilt at once")
    parser.add_argument("--rtol", type=float, default=0.0, help="accept a train log within this relative difference")
    parser.add_argument("--scratch", type=Path, help="keep the rebuilt runs here (and reuse completed ones)")
    parser.add_argument("--cell", action="append", help="only this cell (repeatable; default: every test cell)")
    args = parser.parse_args(argv)
    try:
        exp = Experiment(args.file, args.output_dir, jobs=args.jobs)
        cells = exp.test_cells()
        unknown = set(args.cell or []) - {c.name for c in cells}
        if unknown:
            raise InputError(f"--cell: no such test cell: {', '.join(sorted(unknown))}")
        cells = [c for c in cells if not args.cell or c.name in args.cell]
        incomplete = [c.name for c in cells if exp.state(c) != "done"]
        if incomplete:
            raise InputError(f"{args.file}: cells not complete: {', '.join(incomplete)} (run the experiment first)")
        if mismatches := version_mismatches(exp, cells):
            raise InputError(
                f"the cells ran other versions or CPU kernels; match them first ({INSTALL_PINNED} installs the "
                f"pinned versions): {', '.join(mismatches)}"
            )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bidir-restore-") as tmp:
        scratch = args.scratch or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=args.jobs if exp.executor.parallel else 1) as pool:
            futures = [pool.submit(restore, exp, c, scratch, args.rtol) for c in cells]
            failed = False
            for future in futures:
                try:
                    print(future.result(), flush=True)
                except (RuntimeError, InputError) as e:
                    print(f"error: {e}", file=sys.stderr, flush=True)
                    failed = True
    if table := rebuilt_table(exp):
        (exp.dir / "rebuilt.md").write_text(table, encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
