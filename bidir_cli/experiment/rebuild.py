"""``bidir experiment FILE --rebuild``: the weights of completed cells, rebuilt exactly from the files committed.

Weights are not committed (about 90 MB a MiniLM cell), so a fresh checkout of a finished experiment has results but
no models, and ``--confirm`` needs them. Training is deterministic at a fixed thread count, so each cell without a
model is run again with its own commands and threads into a scratch folder, without the final evaluation (the
results are committed), and its model moves into the run folder only when

- the model folder's fingerprint equals the one the cell's committed results files recorded, and
- the train log equals the committed one (timings excepted).

Anything else stops with the difference and leaves the run folder as it was: a model that is not the one the
results came from is never put in its place. Cells that recorded other package versions or CPU kernels are
refused before anything trains. Where pinning the kernels cannot help, ``rtol`` accepts a rebuild whose train log
is within relative ``rtol`` of the committed one: the rebuilt model is evaluated again on the cell's own suites,
and ``rebuilt.json`` beside it and ``rebuilt.md`` in the experiment's folder say how far it is.
"""

from __future__ import annotations

import platform
import shlex
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runs.environment import INSTALL_PINNED, cpu_mismatch, now, version_mismatches
from ..runs.results import EvalResult
from ..runs.rundir import RunDir, differences, fingerprint_folder
from ..runs.settings import DEFAULT_SETTINGS
from ..runs.train_log import TrainLog
from .cells import Cell, Experiment, set_arguments
from .records import RebuiltRecord
from .runner import execute


def recorded_fingerprint(run: RunDir) -> str:
    """The model fingerprint the run's results files recorded (they must agree)."""
    prints = {EvalResult.load(p).model.get("fingerprint") for p in run.results_files()}
    prints.discard(None)
    if len(prints) != 1:
        raise InputError(f"{run.path}: its results files record {len(prints)} model fingerprints, not one")
    return prints.pop()


def mismatches(exp: Experiment, cells: list[Cell]) -> list[str]:
    """Packages installed at another version than a cell recorded (a model saved by another version need not be
    byte-identical), and CPU kernels other than those a cell recorded."""
    found = {}
    for cell in cells:
        meta = exp.run_dir(cell).read_meta()
        for mismatch in version_mismatches(meta):
            found[mismatch.split()[0]] = f"{mismatch}; cell {cell.name}"
        if meta.cpu and (problem := cpu_mismatch(meta.cpu)):
            found["cpu"] = f"{problem} (cell {cell.name})"
    return sorted(found.values())


def numbers(value: Any, at: str = "") -> dict[str, Any]:
    """Every number of a train log line (nested dicts flattened to dotted keys)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{at}{key}.").items()}
    return {at.rstrip("."): value}


def log_relative_difference(a: RunDir, b: RunDir) -> float | None:
    """The largest relative difference between two train logs' numbers (timings excepted, as ``--verify`` reads
    them), or None when the logs differ in shape (lines, keys) or in anything not a number."""
    first, second = [[numbers(line) for line in TrainLog(run.train_log).comparable()] for run in (a, b)]
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
    from ..eval.suites import resolve_suite

    name = resolve_suite(suite).name
    old, new = (r.find_results(name, DEFAULT_SETTINGS)[1] for r in (run, again))
    if new.datasets.keys() != old.datasets.keys():
        raise RuntimeError(f"{again.path}: evaluated on {sorted(new.datasets)}, the committed results on {sorted(old.datasets)}")  # fmt: skip
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


def rebuild_cell(exp: Experiment, cell: Cell, scratch: Path, rtol: float) -> str:
    """Put one cell's model back (or say it has one); RuntimeError when the rebuilt model is not its own."""
    run = exp.run_dir(cell)
    if run.model.exists():
        return f"{cell.name}: has its model"
    expected = recorded_fingerprint(run)
    again = RunDir(scratch / cell.name)
    reused = again.model.is_dir() and (meta := again.read_meta()) is not None and meta.status == "completed"
    if not reused:  # a rebuild started here and not finished is started again
        shutil.rmtree(again.path, ignore_errors=True)
        command = exp.train_args(cell, output=again.path) + set_arguments({"evaluation.suite": None})
        (scratch / f"{cell.name}.log").unlink(missing_ok=True)
        execute(exp, cell, [command], scratch / f"{cell.name}.log")
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
        raise RuntimeError(f"cell {cell.name}: the rebuilt model is not the one its results came from: {'; '.join(exact)}{within}")  # fmt: skip
    subset = cell.config.evaluation.datasets  # the cell's own run evaluated its first suite on these only
    commands = exp.eval_args(cell, cell.suites, again.path)
    if subset:
        commands[0] += ["--datasets", ",".join(subset)]
    execute(exp, cell, commands, scratch / f"{cell.name}.log")
    import torch

    record = RebuiltRecord(
        time=now(),
        why="the weights are not committed; rebuilt from the cell's own train command for a later evaluation",
        command=shlex.join(exp.shown(exp.train_args(cell))),
        threads=exp.threads,
        machine={"platform": platform.platform(), "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        fingerprint={"test_results": expected, "rebuilt": got},
        train_log_largest_relative_difference=relative,
        rtol=rtol,
        results=[results_distance(run, again, suite) for suite in cell.suites],
    )
    shutil.move(str(again.model), str(run.model))
    record.save(run.path / "rebuilt.json")
    return f"{cell.name}: rebuilt within rtol {rtol:g} (train log {relative:.1e}), fingerprint {got[:16]}"


def rebuild(exp: Experiment, names: list[str], *, rtol: float = 0.0, scratch: Path | None = None) -> list[str]:
    """Rebuild the models of the named test cells (default: every one without a model); return one line per cell.

    Raises:
        InputError: an unknown or incomplete cell, or other package versions or CPU kernels (before training).
        RuntimeError: a rebuilt model that is not the one its results came from (after every cell was tried).
    """
    cells = exp.test_cells()
    unknown = set(names) - {c.name for c in cells}
    if unknown:
        raise InputError(f"--cell: no such test cell: {', '.join(sorted(unknown))} (cells: {', '.join(c.name for c in cells)})")  # fmt: skip
    cells = [c for c in cells if not names or c.name in names]
    incomplete = [c.name for c in cells if exp.state(c) != "done"]
    if incomplete:
        raise InputError(f"--rebuild: cells not complete: {', '.join(incomplete)} (run the experiment first)")
    if found := mismatches(exp, cells):
        raise InputError(f"--rebuild: the cells ran other versions or CPU kernels; match them first ({INSTALL_PINNED} installs the pinned versions): {', '.join(found)}")  # fmt: skip
    lines, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bidir-rebuild-") as tmp:
        folder = scratch or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=exp.jobs if exp.executor.parallel else 1) as pool:
            for future in [pool.submit(rebuild_cell, exp, c, folder, rtol) for c in cells]:
                try:
                    lines.append(future.result())
                except (RuntimeError, InputError) as e:
                    failures.append(str(e))
    if table := rebuilt_table(exp):
        (exp.dir / "rebuilt.md").write_text(table, encoding="utf-8")
    if failures:
        raise RuntimeError("; ".join(failures))
    return lines


def rebuilt_table(exp: Experiment) -> str | None:
    """Markdown: every cell of the experiment whose model was rebuilt within a tolerance, from rebuilt.json."""
    records = [(c.name, RebuiltRecord.load(p)) for c in exp.test_cells() if (p := exp.run_dir(c).path / "rebuilt.json").is_file()]  # fmt: skip
    if not records:
        return None
    lines = [
        f"## Rebuilt models ({exp.spec.name})",
        "",
        f"Weights are not committed. These cells' models were rebuilt by `bidir experiment {exp.path} --output-dir "
        f"{exp.dir} --rebuild --rtol ...` from their own train commands on another machine, where floating point "
        "rounds differently: not bit-identical to the models the test results came from, so their fingerprints "
        "differ, but each train log agrees to the relative difference shown, and each rebuilt model was evaluated "
        "again on the test suite (below, against the committed results). Held-out results of these cells come from "
        "the rebuilt models (their results files record the rebuilt fingerprint).",
        "",
        "| cell | machine | train log, largest relative difference | suite | mean nDCG@10 committed | rebuilt | "
        "queries differing | largest query difference |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in records:
        machine = f"{r.machine['cpu_capability']}, {r.threads} thread(s)"
        for res in r.results:
            mean = res["mean_ndcg@10"]
            lines.append(
                f"| {name} | {machine} | {r.train_log_largest_relative_difference:.1e} | {res['suite']} | "
                f"{mean['committed']:.4f} | {mean['rebuilt']:.4f} | {res['queries_differing']} of {res['queries']} | "
                f"{res['largest_query_difference']:.4f} |"
            )
    return "\n".join(lines) + "\n"
