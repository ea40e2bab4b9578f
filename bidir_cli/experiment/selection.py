"""The selection: settings chosen on a development suite before the seeded cells, stage by stage.

Each stage is a grid tried at the choices of the stages before it, per arm or on the baseline for every arm
(``shared``). With ``extend_edges``, a choice on a grid's edge adds one value a step beyond it (the grid's own ratio
when its values grow geometrically, else its step), once, before the next stage. Cells of a stage exist only once
the stages before it are decided, so the selection runs in waves; its cells are named ``select-<arm>-<i>`` for one
stage (as before stages existed) and ``select<s>-<arm>-<i>`` for stage s of several, extensions numbered on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any


def _name(exp, stage: int, arm: str, i: int) -> str:
    return f"select-{arm}-{i}" if len(exp.spec.select.all_stages) == 1 else f"select{stage}-{arm}-{i}"


def extended(values: list[Any], chosen: Any) -> Any | None:
    """The value one step beyond the edge ``chosen`` sits on, or None (not on an edge, or not numbers)."""
    if len(values) < 2 or chosen not in (values[0], values[-1]) or not all(isinstance(v, (int, float)) for v in values):
        return None
    ratios = {values[i + 1] / values[i] for i in range(len(values) - 1)} if all(v > 0 for v in values) else set()
    if len(ratios) == 1:
        value = values[-1] * ratios.pop() if chosen == values[-1] else values[0] / (values[1] / values[0])
    else:
        step = values[1] - values[0]
        value = values[-1] + step if chosen == values[-1] else values[0] - step
    return int(value) if all(isinstance(v, int) for v in values) and float(value).is_integer() else value


@dataclass(frozen=True)
class Selection:
    """Where the selection stands: every cell that exists so far; once every stage is decided, each arm's chosen
    values and the cell they came from (the best of the last stage that chose for the arm: the baseline's cell
    where that stage is shared), else None."""

    cells: list
    chosen: dict[str, dict[str, Any]] | None
    picked: dict[str, Any] | None


def walk(exp) -> Selection:
    """The selection, stage by stage, as far as its completed cells decide it."""
    select = exp.spec.select
    arms = list(exp.spec.arms)
    prior: dict[str, dict[str, Any]] = {arm: {} for arm in arms}
    picked: dict[str, Any] = {}
    cells = []
    for s, stage in enumerate(select.all_stages, 1):
        keys = list(stage.grid)
        combos = [dict(zip(keys, c)) for c in itertools.product(*(stage.grid[k] for k in keys))]
        selecting = [exp.spec.baseline] if stage.shared else arms

        def make(arm: str, i: int, combo: dict[str, Any], s: int = s, prior: dict = prior) -> Any:
            return exp._cell(_name(exp, s, arm, i), arm, select.seed, prior[arm] | combo, [select.suite], "select")

        stage_cells = {arm: [make(arm, i, combo) for i, combo in enumerate(combos, 1)] for arm in selecting}
        best = _best(exp, stage_cells)
        if best is not None and select.extend_edges:
            key = keys[0]
            for arm in selecting:
                value = extended(stage.grid[key], best[arm].overrides[key])
                if value is not None:
                    stage_cells[arm].append(make(arm, len(combos) + 1, {key: value}))
            best = _best(exp, stage_cells)
        cells += [c for arm in selecting for c in stage_cells[arm]]
        if best is None:
            return Selection(cells, None, None)
        picked = {arm: best[arm if arm in best else exp.spec.baseline] for arm in arms}
        prior = {arm: prior[arm] | {k: picked[arm].overrides[k] for k in keys} for arm in arms}
    return Selection(cells, prior, picked)


def _best(exp, stage_cells: dict[str, list]) -> dict[str, Any] | None:
    """Each selecting arm's best cell (the first of equal scores), or None while one is pending."""
    best = {}
    for arm, cells in stage_cells.items():
        scored = []
        for cell in cells:
            result = exp.result(cell, cell.suites[0])
            if result is None:
                return None
            scored.append((result.mean[exp.spec.select.metric], cell))
        best[arm] = max(scored, key=lambda pair: pair[0])[1]  # max keeps the first of equal scores
    return best
