"""What can be wrong with a training config, found without loading its data or its model: the trainer's
arguments (built, as the run builds them), the training sources' locations and the evaluation suite's.

``bidir experiment`` checks every cell with it before the first cell is written or submitted.
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import Config
from ..errors import InputError
from ..runs.rundir import RunDir


def config_problems(cfg: Config, base_dir: Path) -> list[str]:
    """Every problem of ``cfg`` (relative paths against ``base_dir``), each a line ``field: message``."""
    from ..data.sources import resolve_location
    from ..eval.suites import resolve_suite, suite_spec
    from .arguments import training_arguments

    problems = []
    try:
        training_arguments(cfg, None, RunDir(base_dir / "preflight"))  # builds the object; writes nothing
    except InputError as e:
        problems += e.problems
    for i, source in enumerate(cfg.data.train):
        try:
            resolve_location(source.source, base_dir, f"data.train.{i}.source")
        except InputError as e:
            problems += e.problems
    if cfg.evaluation.suite is not None and cfg.evaluation.suite.lower() != "nanobeir":
        try:
            resolve_suite(suite_spec(cfg.evaluation.suite, base_dir))
        except InputError as e:
            problems += [f"evaluation.suite: {p.removeprefix('--suite ')}" for p in e.problems]
    return problems
