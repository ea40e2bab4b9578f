"""Everything an experiment's cells could fail on, found before the first cell is written or submitted.

Every cell the experiment can run is built (a seeded cell with each candidate of the selection grid, as the
selection may choose any), with its resolved config and its trainer arguments; its data and suites are found.
All problems are reported at once, each against the experiment file and the arm (or ``set:``, ``select.grid:``)
that sets the key.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ..errors import InputError
from ..eval.suites import resolve_suite
from ..train.preflight import config_problems
from .cells import Experiment


def validate(exp: Experiment) -> None:
    """Raise one InputError listing every problem of ``exp``'s cells; return quietly when there is none."""
    problems: list[str] = []
    select = exp.spec.select
    grids = {k: v for stage in select.all_stages for k, v in stage.grid.items()} if select else {}
    combos = [dict(zip(grids, c)) for c in itertools.product(*grids.values())]
    base_dir = Path(exp.spec.base).parent
    for arm in exp.spec.arms:
        for extra in combos:
            for kind, suites in (("select", [select.suite] if select else []), ("test", exp.suites)):
                if not suites:
                    continue
                try:
                    cell = exp._cell(f"{arm}-check", arm, exp.spec.seed_list[0], extra, suites, kind)
                except InputError as e:
                    problems += e.problems
                    continue
                found = config_problems(cell.config, base_dir)
                problems += exp.attributed(found, arm, extra).problems if found else []
    for field, specs in (("evaluate", exp.suites), ("confirm", exp.spec.confirm),
                         ("select.suite", [select.suite] if select else [])):  # fmt: skip
        for spec in specs:
            if spec.lower() == "nanobeir":
                continue
            try:
                resolve_suite(spec)
            except InputError as e:
                problems += [f"{exp.path}: {field}: {p.removeprefix('--suite ')}" for p in e.problems]
    problems = list(dict.fromkeys(problems))
    if problems:
        raise InputError(problems[0] if len(problems) == 1 else f"{exp.path}: {len(problems)} problems",
                         problems=problems)  # fmt: skip
