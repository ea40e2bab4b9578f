"""``bidir experiment``: arms x seeds of one train config, each cell an ordinary run, then the report.

A cell is a ``bidir train`` run in ``DIR/runs/<arm>-seed<k>`` (selection cells ``select-<arm>-<i>``, the
untrained model ``base``), identified by its resolved config and its CPU threads: a completed cell of the
same identity is skipped, an unfinished one resumes, one whose config differs is refused. Everything a cell
does can be done by hand with ``bidir train`` and ``bidir eval`` (``--plan`` prints those commands).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shlex
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import executors
from .cell_identity import describe_changes, portable
from .config import Config, load_config
from .errors import InputError
from .executors import BIDIR, Executor
from .experiment_file import ExperimentConfig, load_experiment
from .io import atomic_write_json, log
from .results import DEFAULT_SETTINGS, EvalResult
from .runs import RunDir, checkout_root, code_version, cpu_mismatch, differences, git_commit, now, require_versions

PLAN_HASH_VERSION = 2  # plan.json and confirmation.json record it: hashes of different versions are not compared


@dataclass
class Cell:
    """One run of the experiment: its name, arm, seed and the ``--set`` overrides of the base config."""

    name: str
    arm: str
    seed: int
    overrides: dict[str, Any]
    suites: list[str]  # evaluated after training, in order (the first by the training run itself)
    kind: str = "test"  # "select", "test" or "base"
    config: Config | None = field(default=None, repr=False)


class Experiment:
    """An experiment file and its output folder: the cells, their state, and how to run them."""

    def __init__(
        self, path: str | Path, output_dir: str | Path | None = None, jobs: int = 1, executor: Executor | None = None
    ) -> None:
        self.path = Path(path)
        self.spec: ExperimentConfig = load_experiment(self.path)
        self.dir = Path(output_dir) if output_dir else Path("runs") / "experiments" / self.spec.name
        self.jobs = jobs
        self.base_config = load_config(self.spec.base, [])
        base_suite = self.base_config.evaluation.suite
        if self.spec.evaluate is None and base_suite is None:
            raise InputError(f"{self.path}: evaluate: no test suite (the base config has no evaluation.suite)")
        self.suites = self.spec.evaluate or [self._base_relative(base_suite)]
        self.threads = self.spec.threads or self._threads_in_use() or max(1, (os.cpu_count() or 1) // jobs)
        self.prefix = shlex.split(self.spec.command) if self.spec.command else BIDIR
        self.executor = executor or executors.default_executor(self.prefix)

    @cached_property
    def root(self) -> Path:
        """The checkout the experiment file is in (its git top level, else the file's folder)."""
        return checkout_root(self.path.resolve().parent)

    @cached_property
    def _recorded_config_path(self) -> str | None:
        """The base config path some cell recorded (the base cell records none; the cells ran in one checkout)."""
        return next((m.config_path for r in sorted(self.runs_dir.glob("*")) if (m := _meta(RunDir(r))) and m.config_path), None)  # fmt: skip

    def _root_of(self, meta) -> Path:
        """The checkout a cell ran in: its recorded base config path, less the base config's place in this one."""
        base = Path(self.spec.base).resolve()
        recorded = meta.config_path or self._recorded_config_path
        if recorded and base.is_relative_to(self.root):
            inside = base.relative_to(self.root).parts
            if Path(recorded).parts[-len(inside) :] == inside:
                return Path(*Path(recorded).parts[: -len(inside)])
        return self.root

    def _base_relative(self, spec: str) -> str:
        if spec == "nanobeir" or spec.startswith("demo:"):
            return spec
        return str((Path(self.spec.base).parent / spec).resolve())

    def _threads_in_use(self) -> int | None:
        """The threads the experiment's cells already ran with, so that a rerun with other --jobs matches them."""
        found = {m.threads for run in self.runs_dir.glob("*") if (m := _meta(RunDir(run))) and m.threads}
        return found.pop() if len(found) == 1 else None

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    def log_path(self, cell: Cell) -> Path:
        return self.dir / "logs" / f"{cell.name}.log"

    def run_dir(self, cell: Cell) -> RunDir:
        return RunDir(self.runs_dir / cell.name)

    # --- cells ----------------------------------------------------------------------------------------------------

    def _cell(self, name: str, arm: str, seed: int, extra: dict[str, Any], suites: list[str], kind: str) -> Cell:
        overrides = {**self.spec.set, **self.spec.arms.get(arm, {}), **extra}
        overrides |= {"training.seed": seed, "evaluation.suite": suites[0]}
        if self.spec.vary_sample:  # each seed its own training sample (sources without a sample ignore the seed)
            overrides["data.train.*.sample_seed"] = seed
        if kind == "select" and self.base_config.evaluation.datasets:
            overrides["evaluation.datasets"] = None  # the base config's subset names test datasets, not dev ones
        if not self.spec.keep_checkpoints:
            overrides.setdefault("training.save_total_limit", 1)
        cell = Cell(name, arm, seed, overrides, suites, kind)
        cell.config = load_config(self.spec.base, assignments(overrides))
        if self.spec.vary_sample and not any(s.sample for s in cell.config.data.train):
            raise InputError(
                f"{self.path}: vary_sample: no training source of cell {name} draws a sample (data.train.N.sample)"
            )
        return cell

    def selection_cells(self) -> list[Cell]:
        select = self.spec.select
        if select is None:
            return []
        keys = list(select.grid)
        combos = list(itertools.product(*(select.grid[k] for k in keys)))
        return [
            self._cell(f"select-{arm}-{i}", arm, select.seed, dict(zip(keys, combo)), [select.suite], "select")
            for arm in self.selecting_arms
            for i, combo in enumerate(combos, 1)
        ]

    @property
    def selecting_arms(self) -> list[str]:
        """The arms that run the selection grid: every arm, or the baseline alone (``select.shared``)."""
        return [self.spec.baseline] if self.spec.select and self.spec.select.shared else list(self.spec.arms)

    def chosen(self) -> dict[str, dict[str, Any]] | None:
        """Each arm's chosen grid values, or None while a selection cell is incomplete."""
        if self.spec.select is None:
            return {arm: {} for arm in self.spec.arms}
        choice = {}
        for arm in self.selecting_arms:
            scored = []
            for cell in (c for c in self.selection_cells() if c.arm == arm):
                result = self.result(cell, cell.suites[0])
                if result is None:
                    return None
                scored.append((result.mean[self.spec.select.metric], cell))
            best = max(scored, key=lambda pair: pair[0])[1]  # max keeps the first of equal scores
            choice[arm] = {k: best.overrides[k] for k in self.spec.select.grid}
        return {arm: choice[arm if arm in choice else self.spec.baseline] for arm in self.spec.arms}

    def test_cells(self) -> list[Cell]:
        """The seeded cells (empty while the selection is incomplete), then the base model if asked for."""
        chosen = self.chosen()
        if chosen is None:
            return []
        cells = [
            self._cell(f"{arm}-seed{seed}", arm, seed, chosen[arm], self.suites, "test")
            for arm in self.spec.arms
            for seed in self.spec.seed_list
        ]
        if self.spec.include_base:  # also on the development suite, where the chosen settings face it
            dev = [self.spec.select.suite] if self.spec.select else []
            cells.append(self._cell("base", self.spec.baseline, self.spec.seed_list[0], {}, self.suites + dev, "base"))
        return cells

    def cells(self) -> list[Cell]:
        return self.selection_cells() + self.test_cells()

    # --- state ----------------------------------------------------------------------------------------------------

    def state(self, cell: Cell) -> str:
        """``done``, ``resume`` (an unfinished run of the same config), ``new``; refuses a different config."""
        run = self.run_dir(cell)
        meta = _meta(run)
        if meta is None:
            if run.exists():
                raise InputError(f"{run.path}: exists but is not a bidir run; the experiment will not touch it")
            return "new"
        here, theirs = (
            portable(cell.config.model_dump(mode="json"), self.root),
            portable(meta.config, self._root_of(meta)),
        )
        if meta.config and theirs != here:
            changes = describe_changes(theirs, here, self.spec.fallbacks, self.path.name)
            raise InputError(f"{run.path}: cell {cell.name} was run with another config: {changes}")
        if meta.threads is not None and cell.kind != "base" and meta.threads != self.threads:
            raise InputError(
                f"{run.path}: cell {cell.name} ran with {meta.threads} threads, this experiment uses {self.threads}; "
                "set threads: in the experiment file to match"
            )
        if meta.status != "completed":
            return "resume" if cell.kind != "base" else "new"
        missing = [s for s in cell.suites if self.result(cell, s) is None]
        return "evaluate" if missing else "done"

    def result(self, cell: Cell, suite: str) -> EvalResult | None:
        """The cell's results on a suite at the default settings, or None."""
        from .compare import find_results
        from .suites import resolve_suite

        run = self.run_dir(cell)
        if not run.eval_dir.is_dir():
            return None
        try:
            return find_results(run, resolve_suite(suite).name, DEFAULT_SETTINGS)[1]
        except InputError:
            return None

    # --- commands -------------------------------------------------------------------------------------------------

    def train_command(self, cell: Cell, *, resume: bool = False, output: Path | None = None) -> list[str]:
        """The cell's ``bidir train`` arguments (the executor puts the program in front)."""
        out = output or self.run_dir(cell).path
        command = ["train", self.spec.base, *set_arguments(cell.overrides), "--output-dir", str(out)]
        return command + (["--resume"] if resume else [])

    def eval_commands(self, cell: Cell, suites: list[str], run: Path | None = None) -> list[list[str]]:
        run = run or self.run_dir(cell).path
        return [["eval", str(run), "--suite", s, "--no-cache"] for s in suites]

    def shown(self, args: list[str]) -> list[str]:
        """A command as a person types it: ``bidir ...``, or the experiment's own ``command:`` in front."""
        return [*(self.prefix if self.spec.command else ["bidir"]), *args]

    def execute(self, cell: Cell, commands: list[list[str]], logfile: Path) -> None:
        """Run a cell's commands in order through the executor, appending their output to ``logfile``."""
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("a", encoding="utf-8") as f:
            for command in commands:
                f.write(f"$ {shlex.join(self.shown(command))}\n")
                f.flush()
                status = self.executor.run(command, self.env(), f)
                if status:
                    raise RuntimeError(f"cell {cell.name}: bidir {command[0]} ... exited {status}; see {logfile}")

    def env(self) -> dict[str, str]:
        threads = str(self.threads)
        return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE":
                os.environ.get("HF_HUB_OFFLINE", "0"), "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip

    def run_cell(self, cell: Cell, *, output: Path | None = None) -> None:
        """Train (or resume) and evaluate one cell; every step through the executor, its output in the cell's log."""
        state = "new" if output else self.state(cell)
        if state == "done":
            return
        run = output or self.run_dir(cell).path
        logfile = self.log_path(cell) if not output else run.parent / f"{cell.name}.log"
        if cell.kind == "base":
            steps = [["experiment", str(self.path), "--output-dir", str(self.dir), "--cell", "base"]]
            if output:
                raise InputError("the base cell is the untrained model: there is nothing to verify")
        else:
            steps = [] if state == "evaluate" else [self.train_command(cell, resume=state == "resume", output=output)]
            steps += self.eval_commands(cell, cell.suites[1:] if state != "evaluate" else self._missing(cell), run)
        self.execute(cell, steps, logfile)
        if not self.spec.keep_checkpoints:
            shutil.rmtree(RunDir(run).checkpoints, ignore_errors=True)  # bidir's own checkpoints, no longer needed

    def _missing(self, cell: Cell) -> list[str]:
        return [s for s in cell.suites if self.result(cell, s) is None]

    def run_cells(self, cells: list[Cell]) -> None:
        pending = [c for c in in_seed_order(cells) if self.state(c) != "done"]
        for cell in pending:
            log(f"cell {cell.name}: {self.state(cell)} ({self.threads} threads)")
        if self.jobs == 1 or not self.executor.parallel:
            for cell in pending:
                self.run_cell(cell)
            return
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for future in [pool.submit(self.run_cell, c) for c in pending]:
                future.result()

    def run(self) -> None:
        """Every cell: the selection first (when there is one), then the seeded cells."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_cells(self.selection_cells())
        self.run_cells(self.test_cells())

    def plan(self) -> list[str]:
        """One shell line per pending cell (train, then evaluate), in stages when a selection comes first."""
        lines = []
        stage = self.selection_cells()
        tests = self.test_cells()
        if stage and not tests:
            lines.append("# stage 1 of 2: the selection cells; once they are complete, run --plan again for the rest")
        for cell in in_seed_order(stage) + in_seed_order(tests):
            state = self.state(cell)
            if state == "done":
                continue
            env = f"OMP_NUM_THREADS={self.threads} MKL_NUM_THREADS={self.threads}"
            if cell.kind == "base":
                steps = [["experiment", str(self.path), "--output-dir", str(self.dir), "--cell", "base"]]
            else:
                steps = [] if state == "evaluate" else [self.train_command(cell, resume=state == "resume")]
                steps += self.eval_commands(cell, cell.suites[1:] if state != "evaluate" else self._missing(cell))
            lines.append(" && ".join(f"{env} {shlex.join(self.shown(s))}" for s in steps))
        return lines

    # --- the untrained model as a column ------------------------------------------------------------------------

    def base_model(self, cell: Cell):
        """The base config's model as it is before its first step (what the base cell saves)."""
        from transformers import set_seed

        from .data import load_training_data
        from .models import build_model

        cfg = cell.config
        texts = None
        if cfg.model.static is not None and cfg.model.static.tokenizer == "train":
            texts = load_training_data(cfg.data, Path(self.spec.base).parent, cfg.training.seed).texts()
        set_seed(cfg.training.seed)
        return build_model(cfg.model, texts)

    def run_base(self) -> None:
        """Save the base config's model as it is before its first step, then evaluate it like any cell."""
        from .runs import RunMeta, installed_packages, start_run, versions

        cell = next(c for c in self.test_cells() if c.kind == "base")
        run = self.run_dir(cell)
        state = self.state(cell)
        if state == "done":
            return
        if state == "evaluate" and run.model.is_dir():  # saved and evaluated before; a suite is new
            self.execute(cell, self.eval_commands(cell, self._missing(cell)), self.log_path(cell))
            return
        cfg = cell.config
        model = self.base_model(cell)
        meta = RunMeta(status="starting", name="base", seed=cfg.training.seed, started=now(), versions=versions(),
                       installed=installed_packages(),
                       git_commit=git_commit(Path(__file__).parent), code=code_version(), config=cfg.model_dump(mode="json"),
                       note="the untrained model of the base config (before its first step)")  # fmt: skip
        start_run(run, meta, overwrite=run.written_by_bidir())
        model.save(str(run.model))
        meta.status, meta.ended = "completed", now()
        run.write_meta(meta)
        self.execute(cell, self.eval_commands(cell, cell.suites), self.log_path(cell))

    # --- confirmation and verification ------------------------------------------------------------------------

    def plan_hash(self) -> str:
        """A hash of what the experiment decided before its results: every cell's resolved config, the suites
        (test, selection and confirmation) and the code (:func:`~bidir_cli.runs.code_version`: results committed
        as cells complete do not change it). Paths in the checkout or beside it enter relative to it, so a clone
        elsewhere computes the same hash (version 2; version 1, before, hashed absolute paths)."""
        cells = {c.name: c.config.model_dump(mode="json") for c in self.cells()}
        suites = {"evaluate": self.suites, "confirm": self.spec.confirm,
                  "select": self.spec.select.suite if self.spec.select else None}  # fmt: skip
        plan = portable({"cells": cells, "suites": suites}, self.root)
        blob = json.dumps(plan | {"code": code_version()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def confirm(self) -> None:
        """Evaluate every cell once on the held-out suites, after every cell is complete."""
        if not self.spec.confirm:
            raise InputError(f"{self.path}: confirm: no held-out suites to confirm on")
        record = self.dir / "confirmation.json"
        if record.exists():
            raise InputError(f"{record}: the confirmation ran already ({_read(record).get('time')}); it runs once")
        cells = self.test_cells()
        unfinished = [c.name for c in self.cells() if self.state(c) != "done"] if cells else ["the selection"]
        if unfinished or not (self.dir / "plan.json").exists():
            raise InputError(
                f"--confirm: the experiment is not complete (pending: {', '.join(unfinished) or 'its report'}); "
                "run it and write its report first"
            )
        for cell in cells:
            self.execute(cell, self.eval_commands(cell, self.spec.confirm), self.log_path(cell))
        atomic_write_json(record, {"time": now(), "plan_hash": self.plan_hash(), "plan_hash_version": PLAN_HASH_VERSION,
                                   "commit": _commit(), "code": code_version(), "suites": self.spec.confirm})  # fmt: skip

    def verify(self, name: str) -> list[str]:
        """Retrain one cell into a temporary folder with the same identity and compare its results exactly.

        Returns:
            The differences (empty when the results are identical, timings excepted), and then, if the cell ran
            on another CPU capability or recorded none, what to pin.
        """
        cell = next((c for c in self.cells() if c.name == name), None)
        if cell is None:
            raise InputError(f"--verify {name}: no such cell (cells: {', '.join(c.name for c in self.cells())})")
        if self.state(cell) != "done":
            raise InputError(f"--verify {name}: the cell is not complete")
        require_versions(self.run_dir(cell).read_meta(), f"--verify {name}")
        with tempfile.TemporaryDirectory(prefix=f"bidir-verify-{name}-") as tmp:
            again = Path(tmp) / name
            self.run_cell(cell, output=again)
            # What the cell's own suites produced; a later --confirm (or any other evaluation) of the original is
            # not retrained, so it is not compared.
            found = differences(self.run_dir(cell), RunDir(again), {p.name for p in RunDir(again).results_files()})
        cpu = cpu_mismatch(self.run_dir(cell).read_meta().cpu) if found else None
        return found + ([cpu] if cpu else [])


def assignments(overrides: dict[str, Any]) -> list[str]:
    """``key=value`` overrides; values as JSON, which YAML reads back as the same value."""
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


def set_arguments(overrides: dict[str, Any]) -> list[str]:
    return [a for assignment in assignments(overrides) for a in ("--set", assignment)]


def in_seed_order(cells: list[Cell]) -> list[Cell]:
    """Cells in the order they run: seed by seed, every arm of a seed before the next seed (stable otherwise), so
    that an experiment stopped early has as many runs of each arm as it can and its partial report stays balanced."""
    return sorted(cells, key=lambda c: c.seed)


def _meta(run: RunDir):
    try:
        return run.read_meta()
    except InputError:
        return None


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _commit() -> str | None:
    return git_commit(Path(__file__).parent)
