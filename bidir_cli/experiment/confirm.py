"""After the cells: the plan hash that pre-registers an experiment, the one confirmation on held-out suites, and
the exact reproduction of a cell (``--verify``)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from ..errors import InputError
from ..runs.environment import code_version, cpu_mismatch, now, package_commit, require_versions
from ..runs.rundir import RunDir, differences
from .cells import Cell, Experiment
from .design import design, design_hash, design_status
from .identity import portable
from .records import PLAN_HASH_VERSION, ConfirmationRecord, PlanRecord
from .runner import execute, run_cell


def plan_hash(exp: Experiment) -> str:
    """A hash of what the experiment decided before its results: every cell's resolved config, the suites (test,
    selection and confirmation) and the code (:func:`~bidir_cli.runs.environment.code_version`: results committed
    as cells complete do not change it). Paths in the checkout or beside it enter relative to it, so a clone
    elsewhere computes the same hash (version 2; version 1, before, hashed absolute paths)."""
    cells = {c.name: c.config.model_dump(mode="json") for c in exp.cells()}
    suites = {"evaluate": exp.suites, "confirm": exp.spec.confirm,
              "select": exp.spec.select.suite if exp.spec.select else None}  # fmt: skip
    plan = portable({"cells": cells, "suites": suites}, exp.root)
    if exp.processes > 1:  # a cell's world size changes its global batch (one process: as before this key existed)
        plan["processes_per_cell"] = exp.processes
    blob = json.dumps(plan | {"code": code_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def confirm(exp: Experiment) -> None:
    """Evaluate every cell once on the held-out suites, after every cell is complete and the report exists."""
    if not exp.spec.confirm:
        raise InputError(f"{exp.path}: confirm: no held-out suites to confirm on")
    record = exp.dir / "confirmation.json"
    if record.exists():
        raise InputError(
            f"{record}: the confirmation ran already ({ConfirmationRecord.load(record).time}); it runs once"
        )
    complete = exp.complete()
    unfinished = [c.name for c in exp.cells() if exp.state(c) != "done"] or (
        [] if exp.test_cells() else ["the selection"]
    )
    if not complete or not (exp.dir / "plan.json").exists():
        raise InputError(
            f"--confirm: the experiment is not complete (pending: {', '.join(unfinished) or 'its report'}); "
            "run it and write its report first"
        )
    status, changes = design_status(exp, PlanRecord.load(exp.dir / "plan.json").to_dict())
    if status == "changed":
        raise InputError(
            f"--confirm: the design changed after the first report ({'; '.join(changes)}); a confirmation of the "
            "changed design would confirm a verdict its own plan did not fix. Restore the experiment file, or start "
            "a new experiment (another name or --output-dir) with this design"
        )
    for cell in exp.test_cells():
        execute(exp, cell, exp.eval_args(cell, exp.spec.confirm), exp.log_path(cell))
    ConfirmationRecord(time=now(), plan_hash=plan_hash(exp), plan_hash_version=PLAN_HASH_VERSION,
                       commit=package_commit(), code=code_version(), suites=exp.spec.confirm,
                       design_hash=design_hash(design(exp)) if status == "same" else None).save(record)  # fmt: skip


def find_cell(exp: Experiment, name: str, option: str) -> Cell:
    cell = next((c for c in exp.cells() if c.name == name), None)
    if cell is None:
        raise InputError(f"{option} {name}: no such cell (cells: {', '.join(c.name for c in exp.cells())})")
    return cell


def verify(exp: Experiment, name: str) -> list[str]:
    """Run one cell again into a temporary folder with the same identity and compare its results exactly.

    Returns:
        The differences (empty when the results are identical, timings excepted), and then, if the cell ran on
        another CPU capability or recorded none, what to pin.
    """
    cell = find_cell(exp, name, "--verify")
    if exp.state(cell) != "done":
        raise InputError(f"--verify {name}: the cell is not complete")
    require_versions(exp.run_dir(cell).read_meta(), f"--verify {name}")
    with tempfile.TemporaryDirectory(prefix=f"bidir-verify-{name}-") as tmp:
        again = Path(tmp) / name
        run_cell(exp, cell, output=again)
        # What the cell's own suites produced; a later --confirm (or any other evaluation) of the original is not
        # run again, so it is not compared.
        found = differences(exp.run_dir(cell), RunDir(again), {p.name for p in RunDir(again).results_files()})
    cpu = cpu_mismatch(exp.run_dir(cell).read_meta().cpu) if found else None
    return found + ([cpu] if cpu else [])
