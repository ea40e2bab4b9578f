"""What ``bidir compare`` builds and renders: columns of runs, cells, differences and meta rows.

These types are shared by the computation (``compare.py``) and the renderers (``report.py``); this
module neither computes nor renders, so neither of those imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs.meta import RunMeta
from ..runs.results import EvalResult

MEAN = "mean"


ALPHA = 0.05  # level of every test (its interval covers 1 - ALPHA), and the family-wise level of Holm's correction


POWER = 0.8  # the power that the minimum detectable difference and the runs needed are for


TARGET_DIFF = 0.01  # the difference the runs needed are for, unless --target-diff says otherwise


# The tests a difference can come from: name -> (what to call it, its unit of replication, what its error covers).
TESTS = {
    "run_t": ("run-level t test", "training run", "run-to-run variation and query sampling"),
    "sign_flip": (
        "paired sign-flip test",
        "query",
        "query sampling only (one run on a side: run-to-run variation unknown)",
    ),
}


@dataclass
class Source:
    """One results file, with the meta.json of the run it belongs to (None when there is none).

    ``name`` is the run directory's name, or the file's stem for a results file outside a run.
    """

    name: str
    path: Path
    result: EvalResult
    meta: RunMeta | None


@dataclass
class Column:
    """One column of the comparison: a single run, or a named group of runs (seeds)."""

    name: str
    sources: list[Source]
    group: bool = False


@dataclass
class Aggregate:
    """A column's value in one row: the mean over its seeds, their standard deviation, each seed's value."""

    value: float
    std: float | None
    seeds: list[float]


@dataclass
class Difference:
    """A column minus the baseline in one row: its test, the test's dual interval, and the power line.

    ``test`` is a key of :data:`TESTS`: ``run_t`` when both columns hold several runs, ``sign_flip``
    when one holds a single run. ``significant`` is ``p <= alpha``, and holds exactly when ``ci``
    excludes 0. ``mdd`` is the smallest true difference detected with :data:`POWER` power;
    ``runs_needed`` the runs per side for that power at the target difference (None, with the reason
    in ``runs_needed_text``: ``>N``, ``not reachable`` or ``unknown``). ``components`` are the
    run-level test's variance components. ``p_holm`` and ``holm_significant`` are None in the mean
    row, which is one test on its own, not a member of the family of per-dataset tests.
    """

    diff: float
    ci: tuple[float, float]
    p: float
    significant: bool
    test: str
    se: float
    df: float | None
    exact: bool
    mdd: float
    runs_needed: int | None
    runs_needed_text: str
    components: dict[str, Any] | None = None
    p_holm: float | None = None
    holm_significant: bool | None = None

    @property
    def unit(self) -> str:
        return TESTS[self.test][1]

    def variance(self, runs_system: int, runs_baseline: int) -> float:
        """The variance the difference would have with this many runs per side (the run-level test's only)."""
        from .stats.run_level import VarianceComponents  # the stats package imports this module's constants

        if self.components is None:
            raise ValueError(f"a {self.test} difference has no variance components")
        return VarianceComponents.from_record(self.components).variance(runs_system, runs_baseline)

    @property
    def covers(self) -> str:
        return TESTS[self.test][2]


@dataclass
class MetaRow:
    """A row from the runs' meta.json: the raw value of each run of each column (None where absent).

    ``kind`` says how to show it: ``duration`` (seconds), ``rate`` (examples per second),
    ``bytes``, or ``setting`` (any JSON value).
    """

    name: str
    kind: str
    values: dict[str, list[Any]]


@dataclass
class Comparison:
    """Everything ``bidir compare`` shows, in any format."""

    metric: str
    baseline: str
    columns: list[Column]
    datasets: list[str]
    queries: dict[str, int]  # row -> queries compared (the mean row: all of them)
    cells: dict[str, dict[str, Aggregate]]  # row -> column -> cell
    differences: dict[str, dict[str, Difference]]  # row -> non-baseline column -> difference
    meta_rows: list[MetaRow]
    left_out: dict[str, list[str]]  # dataset -> the results files that lack it
    permutations: int
    seed: int
    target_diff: float = TARGET_DIFF
    alpha: float = ALPHA
    power: float = POWER
    notes: list[str] = field(default_factory=list)

    @property
    def level(self) -> float:
        """The coverage of every interval: each is its test's dual at level ``alpha``."""
        return 1 - self.alpha

    @property
    def rows(self) -> list[str]:
        return [*self.datasets, MEAN]

    @property
    def others(self) -> list[str]:
        """The columns compared against the baseline, in order."""
        return [c.name for c in self.columns if c.name != self.baseline]
