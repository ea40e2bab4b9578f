"""The experiment file of ``bidir experiment``: arms x seeds of one train config, validated up front.

::

    name: quickstart-loss
    base: ../quickstart.yaml          # a bidir train config; relative paths resolve against this file
    set: {training.max_steps: 30}     # overrides for every arm (optional)
    arms:                             # arm name -> overrides of the base config
      mnrl: {loss.name: mnrl}
      mnbrl: {loss.name: mnbrl}
    baseline: mnrl
    seeds: [1, 2, 3]                  # or a count (seeds 1..N)

String values may name environment variables as ``${NAME}`` or ``${NAME:-default}`` (a local model folder
that differs between machines, say); an unset variable without a default is an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..config.schema import format_errors, read_yaml
from ..errors import InputError
from ..eval.suites import suite_spec

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class SelectStage(Section):
    """One stage of a staged selection: a grid, chosen per arm or on the baseline for every arm."""

    grid: dict[str, list[Any]] = Field(min_length=1)
    """Config key -> candidate values; the stages before it are fixed at their choices."""
    shared: bool = False
    """Choose on the baseline arm only and give every arm that choice."""


class FloorConfig(Section):
    """Trained enough? The chosen setting of ``arm`` on the development suite against a reference run's score."""

    arm: str
    reference: str
    """A run directory with results on the development suite (e.g. an earlier tier's chosen selection run);
    relative to this file."""
    within: float = Field(0.02, gt=0)
    """Below the reference by more than this, the report says the comparison is of undertrained models."""


class SelectConfig(Section):
    """Settings chosen per arm on a development suite before the seeded runs: one grid, or stages of grids."""

    grid: dict[str, list[Any]] | None = None
    """Config key -> candidate values, e.g. ``{loss.scale: [10, 20, 40, 80]}`` (every combination is tried)."""
    stages: list[SelectStage] | None = None
    """Instead of ``grid``: grids chosen one after the other, each at the choices before it (e.g. the learning rate
    on the baseline, then each loss's scale at it)."""
    suite: str
    """The development suite (never a test or confirmation suite); relative paths resolve against this file."""
    seed: int = 1
    """The training seed of the selection runs."""
    metric: str = "ndcg@10"
    """The metric to choose by: its mean over the suite's datasets, highest wins (the first candidate on a tie)."""
    shared: bool = False
    """Choose on the baseline arm only and give every arm that choice (one grid instead of one per arm: cheaper,
    and the arms then differ in nothing but their own overrides)."""
    extend_edges: bool = False
    """A choice on a grid's edge extends that grid one step that way (the grid's own ratio, or step), once, before
    any later stage or seeded cell. Each stage's grid must then hold one key."""
    floor: FloorConfig | None = None
    """Optional: what "trained enough" means, fixed in the plan (see FloorConfig)."""

    @model_validator(mode="after")
    def _one_form(self) -> SelectConfig:
        if (self.grid is None) == (self.stages is None):
            raise ValueError("give either grid (one stage) or stages")
        if self.stages is not None and self.shared:
            raise ValueError("shared: set it on each stage")
        if self.extend_edges and any(len(stage.grid) != 1 for stage in self.all_stages):
            raise ValueError("extend_edges: each stage's grid must hold one key")
        return self

    @property
    def all_stages(self) -> list[SelectStage]:
        return self.stages if self.stages is not None else [SelectStage(grid=self.grid, shared=self.shared)]


class SequentialConfig(Section):
    """A group-sequential design: the run-level test at pre-registered looks, against alpha-spending bounds, each
    arm stopping on its own (efficacy, or futility when asked for); the seeds are the most runs per arm."""

    looks: list[int] = Field(min_length=1)
    """Runs per arm at each analysis, increasing, the last the number of seeds."""
    spending: Literal["obrien-fleming", "pocock"] = "obrien-fleming"
    """Lan-DeMets two-sided alpha spending: O'Brien-Fleming type (little spent early) or Pocock type."""
    futility: Literal["beta-spending", "none"] = "beta-spending"
    """A non-binding futility bound (beta spending for target_diff at the design's 80% power), or none."""
    information: Literal["runs", "variance"] = "runs"
    """A look's information fraction: runs / most runs, or from the look's variance components (the difference's
    variance at the most runs over its variance now), which sets how the looks' statistics are correlated while
    alpha is still spent at runs / most runs; for data where query sampling dominates, and for Pocock."""


class StageResources(Section):
    """What the scheduler gives a cell's job; none of it changes what the cell computes (not part of its identity)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = Field(120, ge=1)
    """The job's time limit in minutes; a cell that runs out is interrupted and resumes at the next invocation."""
    mem_gb: float | None = Field(None, gt=0)
    constraint: str | None = None
    max_parallel: int | None = Field(None, ge=1)
    """The array throttle (``--array=...%N``): at most N cells of a wave run at once."""
    additional: dict[str, Any] = Field(default_factory=dict)
    """Further ``#SBATCH`` options, as submitit's ``additional_parameters`` (e.g. ``{reservation: abc}``)."""


class ExecutorConfig(StageResources):
    """Where cells run: ``local`` (processes on this machine, ``--jobs`` at a time) or ``slurm`` (a job array per
    wave through submitit, one cell per array task). Multi-node cells are not supported: a cell is one job on one
    node, its processes (``processes_per_cell``) on that node's devices."""

    name: Literal["local", "slurm"] = "local"
    cpus_per_cell: int | None = Field(None, ge=1)
    """CPUs of a cell's job; also its threads (divided among its processes) unless ``threads:`` says otherwise."""
    gpus_per_cell: int = Field(0, ge=0)
    """GPUs of a cell's job; also its processes (``processes_per_cell``) unless that is set."""
    select: StageResources | None = None
    """The selection cells' scheduler resources, where they differ (each key given replaces the seeded cells')."""
    poll_s: float = Field(10.0, gt=0)
    """How often a waiting ``bidir experiment`` reads the cells' state."""

    def stage(self, kind: str) -> StageResources:
        """The resources of a cell of ``kind`` (``select``, ``test`` or ``base``)."""
        if kind != "select" or self.select is None:
            return self
        given = {k: getattr(self.select, k) for k in self.select.model_fields_set}
        return StageResources(**{k: getattr(self, k) for k in StageResources.model_fields} | given)


class ExperimentConfig(Section):
    """An experiment: the cells (arm, seed) are ordinary ``bidir train`` runs of the base config."""

    name: str = Field(pattern=NAME)
    """The experiment's name (its output folder is ``runs/experiments/<name>`` unless ``--output-dir`` says)."""
    base: str
    """The bidir train config every arm starts from; relative to this file."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Overrides (``key.path: value``) for every arm."""
    arms: dict[str, dict[str, Any]] = Field(min_length=2)
    """Arm name -> overrides of the base config."""
    baseline: str
    """The arm every other arm is compared with."""
    seeds: list[int] | int = 3
    """The training seeds of every arm, or a count N (seeds 1..N). Fixed before the runs, never after."""
    select: SelectConfig | None = None
    """Optional: settings chosen per arm on a development suite first (the choice and the grid are reported)."""
    include_base: bool = False
    """Also evaluate the untrained model (the base config's model before its first step) as a column."""
    evaluate: list[str] | None = None
    """The test suites (default: the base config's ``evaluation.suite``)."""
    confirm: list[str] = Field(default_factory=list)
    """Held-out suites, evaluated only by ``--confirm``, once, after every cell is complete."""
    command: str | None = None
    """The command that runs bidir for a cell (a wrapper of your own); for several processes per cell use
    ``processes_per_cell`` instead (the two exclude each other)."""
    threads: int | None = Field(None, ge=1)
    """CPU threads per process of a cell (default: ``executor.cpus_per_cell`` / processes, else cores / --jobs,
    then whatever the experiment's cells already used). Part of a cell's identity: it changes the float results."""
    processes_per_cell: int | None = Field(None, ge=1)
    """Training processes per cell (torchrun, DDP; default ``executor.gpus_per_cell``, else 1); evaluation runs once.
    Part of a cell's identity: the global batch is processes x ``per_device_train_batch_size``."""
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    """Where the cells run and, on SLURM, with what resources (``bidir experiment --executor`` overrides the name)."""
    keep_checkpoints: bool = True
    """Keep each cell's checkpoints/ after it completes (they are needed only to resume an unfinished cell)."""
    limitations: list[str] = Field(default_factory=list)
    """What the design cannot show, written with the plan (one sentence each): printed first in the report's
    verdict and on the results page, before any figure."""
    vary_sample: bool = False
    """Let each seed draw its own training sample: every source that samples (``data.train.N.sample``) gets the
    cell's training seed as its ``sample_seed``. By default every seed trains on the same sample, so the seeds vary
    the initialisation, the data order and dropout only, and the run-to-run spread leaves out data sampling."""
    target_diff: float = Field(0.01, gt=0)
    """The difference the report's power line is about (runs per arm needed to detect it); with ``sequential``,
    the difference the design's futility bound is for."""
    beside: str | None = None
    """Optional: an earlier experiment's output folder whose figures on the same datasets of the first test suite
    the report sets beside this one's (relative to this file)."""
    sequential: SequentialConfig | None = None
    """Optional: stop as soon as the verdict is decided (looks, spending, futility), fixed before the first cell."""

    _fallbacks: list[str] = PrivateAttr(default_factory=list)
    """``${NAME:-default}`` references that used their default (NAME unset), as the file wrote them."""

    @property
    def fallbacks(self) -> list[str]:
        return self._fallbacks

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        bad = [a for a in arms if not re.match(NAME, a) or a == "base"]
        if bad:
            raise ValueError(f"arm names must be file-name safe and not 'base': {', '.join(bad)}")
        return arms

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        problems = []
        if self.baseline not in self.arms:
            problems.append(f"baseline: {self.baseline!r} is not an arm ({', '.join(self.arms)})")
        seeds = self.seed_list
        if not seeds or len(set(seeds)) != len(seeds):
            problems.append("seeds: give a positive count or distinct seeds")
        overlap = set(self.confirm) & set(self.evaluate or []) | set(self.confirm) & {self.select and self.select.suite}
        if overlap:
            problems.append(f"confirm: {', '.join(sorted(overlap))} also a test or selection suite")
        if self.command and (self.processes > 1):
            problems.append("command: a cell of several processes is run by processes_per_cell; drop command:")
        if self.sequential:
            looks = self.sequential.looks
            if any(b <= a for a, b in zip(looks, looks[1:])) or looks[0] < 2 or looks[-1] != len(seeds):
                problems.append(f"sequential.looks: {looks}: increasing, at least 2 runs at the first look, the last "
                                f"the number of seeds ({len(seeds)})")  # fmt: skip
        if self.select and self.select.suite in (self.evaluate or []):
            problems.append("select.suite: the development suite must not be a test suite")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def processes(self) -> int:
        """Training processes per cell."""
        return self.processes_per_cell or self.executor.gpus_per_cell or 1

    @property
    def seed_list(self) -> list[int]:
        return list(range(1, self.seeds + 1)) if isinstance(self.seeds, int) else list(self.seeds)


def expand_variables(value: Any, where: str, fallbacks: list[str] | None = None) -> Any:
    """``${NAME}`` in strings replaced by the environment variable's value (nested lists and dicts too); each
    ``${NAME:-default}`` that used its default is appended to ``fallbacks``."""
    if isinstance(value, str):

        def lookup(match: re.Match) -> str:
            name, default = match.group(1), match.group(3)
            if name not in os.environ and default is None:
                raise InputError(f"{where}: environment variable {name} is not set")
            if name not in os.environ and fallbacks is not None:
                fallbacks.append(f"{match.group(0)} at {where} used its default ({name} is not set)")
            return os.environ.get(name, default)

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", lookup, value)
    if isinstance(value, dict):
        return {k: expand_variables(v, f"{where}.{k}", fallbacks) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_variables(v, f"{where}[{i}]", fallbacks) for i, v in enumerate(value)]
    return value


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file; paths in it become absolute (resolved against its folder).

    Raises:
        InputError: every problem at once, each with its field.
    """
    path = Path(path)
    fallbacks: list[str] = []
    data = expand_variables(read_yaml(path), path.name, fallbacks)
    try:
        exp = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        problems = format_errors(e, ExperimentConfig)
        raise InputError(f"{path}: {problems[0]}" if len(problems) == 1 else f"{path}: {len(problems)} problems",
                         problems=problems if len(problems) > 1 else None) from None  # fmt: skip
    exp._fallbacks = fallbacks
    folder = path.resolve().parent

    def local(spec: str) -> str:
        return suite_spec(spec, folder)

    exp.base = local(exp.base)
    if not Path(exp.base).is_file():
        raise InputError(f"{path}: base: {exp.base}: no such config file")
    exp.evaluate = [local(s) for s in exp.evaluate] if exp.evaluate is not None else None
    exp.confirm = [local(s) for s in exp.confirm]
    if exp.select:
        exp.select.suite = local(exp.select.suite)
        if exp.select.floor:
            exp.select.floor.reference = local(exp.select.floor.reference)
            if exp.select.floor.arm not in exp.arms:
                raise InputError(f"{path}: select.floor.arm: {exp.select.floor.arm!r} is not an arm")
    if exp.beside:
        exp.beside = local(exp.beside)
    return exp
