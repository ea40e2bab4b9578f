"""``bidir experiment``: arms x seeds of one train config, each cell an ordinary run, then the report.

A cell is a ``bidir train`` run in ``DIR/runs/<arm>-seed<k>`` (selection cells ``select-<arm>-<i>``, the
untrained model ``base``), identified by its resolved config and its CPU threads: a completed cell of the
same identity is skipped, an unfinished one resumes, one whose config differs is refused. Everything a cell
does can be done by hand with ``bidir train`` and ``bidir eval`` (``--plan`` prints those commands).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config.schema import Config, load_config
from ..errors import InputError
from ..eval.suites import suite_spec
from ..runs.environment import checkout_root
from ..runs.results import EvalResult
from ..runs.rundir import RunDir
from ..runs.settings import DEFAULT_SETTINGS
from . import executors
from .executors import BIDIR, Executor
from .identity import describe_changes, portable
from .spec import ExperimentConfig, load_experiment


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
        self,
        path: str | Path,
        output_dir: str | Path | None = None,
        jobs: int = 1,
        executor: Executor | None = None,
        executor_name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.spec: ExperimentConfig = load_experiment(self.path)
        self.dir = Path(output_dir) if output_dir else Path("runs") / "experiments" / self.spec.name
        self.output_given = output_dir is not None
        self.jobs = jobs
        self.base_config = load_config(self.spec.base, [])
        base_suite = self.base_config.evaluation.suite
        if self.spec.evaluate is None and base_suite is None:
            raise InputError(f"{self.path}: evaluate: no test suite (the base config has no evaluation.suite)")
        self.suites = self.spec.evaluate or [suite_spec(base_suite, Path(self.spec.base).parent)]
        self.processes = self.spec.processes
        cpus = self.spec.executor.cpus_per_cell
        self.threads = (
            self.spec.threads
            or (max(1, cpus // self.processes) if cpus else None)
            or self._threads_in_use()
            or max(1, (os.cpu_count() or 1) // (jobs * self.processes))
        )
        self.prefix = shlex.split(self.spec.command) if self.spec.command else BIDIR
        self.executor = executor or executors.default_executor(self.prefix)
        self.executor_name = executor_name or self.spec.executor.name

    @cached_property
    def root(self) -> Path:
        """The checkout the experiment file is in (its git top level, else the file's folder)."""
        return checkout_root(self.path.resolve().parent)

    @cached_property
    def _recorded_config_path(self) -> str | None:
        """The base config path some cell recorded (the base cell records none; the cells ran in one checkout)."""
        return next((m.config_path for r in self.cell_dirs() if (m := meta_or_none(RunDir(r))) and m.config_path), None)

    def _root_of(self, meta) -> Path:
        """The checkout a cell ran in: its recorded base config path, less the base config's place in this one."""
        base = Path(self.spec.base).resolve()
        recorded = meta.config_path or self._recorded_config_path
        if recorded and base.is_relative_to(self.root):
            inside = base.relative_to(self.root).parts
            if Path(recorded).parts[-len(inside) :] == inside:
                return Path(*Path(recorded).parts[: -len(inside)])
        return self.root

    def _threads_in_use(self) -> int | None:
        """The threads the experiment's cells already ran with, so that a rerun with other --jobs matches them."""
        found = {m.threads for run in self.cell_dirs() if (m := meta_or_none(RunDir(run))) and m.threads}
        return found.pop() if len(found) == 1 else None

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    def cell_dirs(self) -> list[Path]:
        """The run directories under ``runs/`` (beside them lie the cells' claims, ``<cell>.lock``)."""
        return sorted(p for p in self.runs_dir.glob("*") if p.is_dir())

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
        try:
            cell.config = load_config(self.spec.base, assignments(overrides))
        except InputError as e:
            raise self.attributed(e.problems, arm, extra) from None
        if self.spec.vary_sample and not any(s.sample for s in cell.config.data.train):
            raise InputError(
                f"{self.path}: vary_sample: no training source of arm {arm} draws a sample (data.train.N.sample)"
            )
        return cell

    def attributed(self, problems: list[str], arm: str, extra: dict[str, Any]) -> InputError:
        """A cell's config problems named where the experiment file sets the key (``arms.mnbrl: loss.scle: ...``,
        ``set: ...``, ``select.grid: ...``); a key the experiment does not set is the base config's problem."""
        base = str(Path(self.spec.base))
        lines = []
        for problem in problems:
            text = problem.removeprefix(f"{base}: ").removeprefix("--set ")
            key = text.split(":", 1)[0].strip()
            origin = override_origin(key, [("select.grid", extra), (f"arms.{arm}", self.spec.arms.get(arm, {})),
                                           ("set", self.spec.set)])  # fmt: skip
            lines.append(f"{self.path}: {origin}: {text}" if origin else f"{base}: {text}")
        return InputError(lines[0] if len(lines) == 1 else f"{self.path}: {len(lines)} problems", problems=lines)

    def selection_cells(self) -> list[Cell]:
        """The selection's cells that exist so far (stage by stage: selection.py)."""
        if self.spec.select is None:
            return []
        from .selection import walk

        return walk(self).cells

    def chosen(self) -> dict[str, dict[str, Any]] | None:
        """Each arm's chosen values (every stage's), or None while a selection cell is incomplete."""
        if self.spec.select is None:
            return {arm: {} for arm in self.spec.arms}
        from .selection import walk

        return walk(self).chosen

    def test_cells(self) -> list[Cell]:
        """The seeded cells (empty while the selection is incomplete; with a sequential design, those up to each
        continuing arm's next look), then the base model if asked for."""
        chosen = self.chosen()
        if chosen is None:
            return []
        seeds = {arm: self.spec.seed_list for arm in self.spec.arms}
        if self.spec.sequential:  # up to the next look of each arm that continues (sequential.py)
            from .sequential import runs_wanted

            seeds = {arm: self.spec.seed_list[:n] for arm, n in runs_wanted(self, chosen).items()}
        cells = [
            self._cell(f"{arm}-seed{seed}", arm, seed, chosen[arm], self.suites, "test")
            for arm in self.spec.arms
            for seed in seeds[arm]
        ]
        if self.spec.include_base:  # also on the development suite, where the chosen settings face it
            dev = [self.spec.select.suite] if self.spec.select else []
            cells.append(self._cell("base", self.spec.baseline, self.spec.seed_list[0], {}, self.suites + dev, "base"))
        return cells

    def cells(self) -> list[Cell]:
        return self.selection_cells() + self.test_cells()

    def selection_done(self) -> bool:
        return all(self.state(c) == "done" for c in self.selection_cells())

    def complete(self) -> bool:
        """The one definition of a complete experiment (``--status``, ``--plan``, the report, ``--confirm``,
        ``bidir results-page``): the selection is decided and every cell is trained and evaluated."""
        tests = self.test_cells()
        try:
            return bool(tests) and all(self.state(c) == "done" for c in self.selection_cells() + tests)
        except InputError:  # a cell of another config is refused, so never complete
            return False

    # --- state ----------------------------------------------------------------------------------------------------

    def state(self, cell: Cell) -> str:
        """``done``; ``evaluate`` (trained, a suite's results missing); ``resume`` (an unfinished run of the same
        config); ``redo`` (an unfinished base cell, saved again); ``new``. Refuses a cell of another config."""
        run = self.run_dir(cell)
        meta = meta_or_none(run)
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
        if meta.world_size is not None and cell.kind != "base" and meta.world_size != self.processes:
            raise InputError(
                f"{run.path}: cell {cell.name} trained in {meta.world_size} process(es), this experiment uses "
                f"{self.processes}; set processes_per_cell: in the experiment file to match"
            )
        if meta.status != "completed":  # the untrained model has nothing to resume: it is saved again
            return "resume" if cell.kind != "base" else "redo"
        return "evaluate" if self.missing(cell) else "done"

    def result(self, cell: Cell, suite: str) -> EvalResult | None:
        """The cell's results on a suite at the default settings, or None."""
        from ..eval.suites import resolve_suite

        run = self.run_dir(cell)
        if not run.eval_dir.is_dir():
            return None
        try:
            return run.find_results(resolve_suite(suite).name, DEFAULT_SETTINGS)[1]
        except InputError:
            return None

    # --- commands -------------------------------------------------------------------------------------------------

    def train_args(
        self, cell: Cell, *, resume: bool = False, output: Path | None = None, overwrite: bool = False
    ) -> list[str]:
        """The cell's ``bidir train`` arguments (the executor puts the program in front); the base cell's saves
        the untrained model (``--untrained``) and evaluates nothing."""
        out = output or self.run_dir(cell).path
        command = ["train", self.spec.base, *set_arguments(cell.overrides), "--output-dir", str(out)]
        flags = (["--resume"] if resume else []) + (["--overwrite"] if overwrite else [])
        return command + flags + (["--untrained"] if cell.kind == "base" else [])

    def missing(self, cell: Cell) -> list[str]:
        """The cell's suites it has no results for."""
        return [s for s in cell.suites if self.result(cell, s) is None]

    def eval_args(self, cell: Cell, suites: list[str], run: Path | None = None) -> list[list[str]]:
        run = run or self.run_dir(cell).path
        return [["eval", str(run), "--suite", s, "--no-cache"] for s in suites]

    def processes_of(self, args: list[str]) -> int:
        """How many processes run a command: a cell's training runs in ``processes_per_cell``, the rest in one."""
        return self.processes if args[0] == "train" and "--untrained" not in args else 1

    def shown(self, args: list[str]) -> list[str]:
        """A command as a person types it: ``bidir ...``, a torchrun line for a training of several processes, or
        the experiment's own ``command:`` in front."""
        if (n := self.processes_of(args)) > 1:
            return [*executors.torchrun(n, ["torchrun"]), *args]
        return [*(self.prefix if self.spec.command else ["bidir"]), *args]

    def env(self) -> dict[str, str]:
        """The variables a cell's commands run with, whatever runs them (set explicitly in a SLURM job too)."""
        return {**os.environ, **self.cell_variables()}

    def cell_variables(self) -> dict[str, str]:
        threads = str(self.threads)
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"), "TOKENIZERS_PARALLELISM": "false",
                "BIDIR_EXECUTOR": self.executor_name,
                "BIDIR_RESUME_ADVICE": f"rerun the experiment to resume it ({self.command_line()})"}  # fmt: skip

    def command_line(self) -> str:
        """The command that runs this experiment again, as a person types it."""
        line = ["bidir", "experiment", str(self.path)]
        line += ["--output-dir", str(self.dir)] if self.output_given else []
        return shlex.join(line + (["--executor", "slurm"] if self.executor_name == "slurm" else []))


def override_origin(key: str, origins: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The first origin whose overrides set ``key``, a section of it or a key inside it (``*`` matches an index)."""
    for origin, overrides in origins:
        for name in overrides:
            pattern = re.escape(name).replace(r"\*", r"[^.]+")
            if re.fullmatch(pattern, key) or re.match(pattern + r"\.", key) or name.startswith(key + "."):
                return origin
    return None


def assignments(overrides: dict[str, Any]) -> list[str]:
    """``key=value`` overrides; values as JSON, which YAML reads back as the same value."""
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


def set_arguments(overrides: dict[str, Any]) -> list[str]:
    return [a for assignment in assignments(overrides) for a in ("--set", assignment)]


def in_seed_order(cells: list[Cell]) -> list[Cell]:
    """Cells in the order they run: seed by seed, every arm of a seed before the next seed (stable otherwise), so
    that an experiment stopped early has as many runs of each arm as it can and its partial report stays balanced."""
    return sorted(cells, key=lambda c: c.seed)


def meta_or_none(run: RunDir):
    """A run's meta.json, or None when it has none or it is unreadable (a cell that is not a run yet)."""
    try:
        return run.read_meta()
    except InputError:
        return None
