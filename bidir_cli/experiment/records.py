"""The files an experiment writes beside its cells, each with one typed owner (``load`` / ``save``):

    DIR/plan.json          PlanRecord: the plan hash and the design (and its hash) when the report was first written
    DIR/confirmation.json  ConfirmationRecord: when the held-out suites were evaluated, under which plan hash
    DIR/summary.json       Summary: the report's numbers (verdicts, comparisons, the plan, the confirmation, ...)
    DIR/runs/C/rebuilt.json  RebuiltRecord: a cell's model rebuilt within a tolerance (``--rebuild --rtol``)

Files already committed are read as they are: a key a record does not know is kept and written back unchanged;
a missing ``plan_hash_version`` is version 1 (absolute paths, before 2026-12).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runs.atomic import atomic_write_json

PLAN_HASH_VERSION = 2  # plan.json and confirmation.json record it: hashes of different versions are not compared


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


class Record:
    """A dataclass written as one JSON object; unknown keys are kept in ``extra`` and written back after, and the
    keys in ``OPTIONAL`` are left out while None (a file written before they existed stays as it was)."""

    OPTIONAL: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known}, extra={k: v for k, v in data.items() if k not in known}
        )  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        kept = {k: v for k, v in d.items() if k != "extra" and not (k in self.OPTIONAL and v is None)}
        return {**kept, **d["extra"]}

    @classmethod
    def load(cls, path: Path):
        return cls.from_dict(_read_json(path))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())


class Hashed:
    plan_hash_version: int | None

    @property
    def hash_version(self) -> int:
        """The plan-hash version (records from before versions are version 1)."""
        return self.plan_hash_version or 1


@dataclass
class PlanRecord(Hashed, Record):
    """plan.json: written with the first report. ``design`` (design.py) is what decides the statistics, and its
    hash; records from before design hashes have none (their design is "not comparable", never "changed")."""

    plan_hash: str
    plan_hash_version: int | None = None
    first_report: str | None = None
    commit: str | None = None
    design_hash: str | None = None
    design_hash_version: int | None = None
    design: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    OPTIONAL = ("plan_hash_version", "design_hash", "design_hash_version", "design")


@dataclass
class ConfirmationRecord(Hashed, Record):
    time: str
    plan_hash: str
    plan_hash_version: int | None = None
    commit: str | None = None
    code: str | None = None
    suites: list[str] = field(default_factory=list)
    design_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    OPTIONAL = ("plan_hash_version", "design_hash")


@dataclass
class Summary(Record):
    """summary.json: what report.md says, as numbers."""

    experiment: str
    file: str
    baseline: str
    arms: list[str]
    seeds: list[int]
    threads: int | None = None
    missing: list[str] = field(default_factory=list)
    seeds_vary: str | None = None
    limitations: list[str] = field(default_factory=list)
    selection: dict[str, Any] | None = None
    verdicts: dict[str, list[str]] = field(default_factory=dict)
    comparisons: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    confirmation: dict[str, Any] | None = None
    machine: dict[str, Any] | None = None
    sequential: dict[str, Any] | None = None  # the sequential design's looks and decisions (sequential_report.py)
    extra: dict[str, Any] = field(default_factory=dict)

    OPTIONAL = ("seeds_vary", "confirmation", "machine", "sequential")

    def mean_difference(self, suite: str, arm: str, confirmation: bool = False) -> dict[str, Any] | None:
        """The mean row's difference of ``arm`` against the baseline on ``suite`` (the held-out suite's with
        ``confirmation``), as the comparison recorded it, or None."""
        comparisons = (self.confirmation or {}).get("comparisons", {}) if confirmation else self.comparisons
        rows = comparisons.get(suite, {}).get("rows", [])
        mean = next((r for r in rows if r["name"] == "mean"), None)
        return mean["differences"].get(arm) if mean else None


@dataclass
class RebuiltRecord(Record):
    """rebuilt.json: a cell's model rebuilt within a tolerance of its train log, and how far its results are."""

    time: str
    why: str
    command: str
    threads: int
    machine: dict[str, Any]
    fingerprint: dict[str, str]
    train_log_largest_relative_difference: float | None
    rtol: float
    results: list[dict[str, Any]]
    format: str = "bidir.rebuilt/1"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        return {"format": d.pop("format"), **d}
