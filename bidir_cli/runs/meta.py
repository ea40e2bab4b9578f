"""meta.json: :class:`RunMeta`, the one type that reads and writes it (a run's status, argv, seed, times,
versions, device, data identities, loss settings, where it ran, ...). The run directory's layout: rundir.py."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

RUN_FORMAT = "bidir.run/1"


LEGACY_RUN_FORMAT = "bidir.run/0"  # how a meta.json from before the format field reads


STATUSES = ("starting", "running", "completed", "failed", "interrupted")


@dataclass
class RunMeta:
    """A run's meta.json: what ran, on what, and how it ended.

    ``format`` marks the file as bidir's; files written before it existed read as ``bidir.run/0``.
    Keys this version does not know are kept in ``extra`` and written back unchanged.
    """

    status: str | None
    name: str
    format: str = RUN_FORMAT
    argv: list[str] = field(default_factory=list)
    config_path: str | None = None
    seed: int | None = None
    started: str | None = None
    ended: str | None = None
    wall_time_s: float | None = None
    wall_time_s_before: float = 0.0
    resumed: list[str] = field(default_factory=list)
    resumed_from: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    installed: dict[str, str] | None = None  # installed_packages(); absent from runs before 2026-12-06
    git_commit: str | None = None
    code: str | None = None  # code_version(): bidir's source tree, unmoved by results or docs commits
    device: str | None = None
    world_size: int | None = None
    global_batch: int | None = None  # processes x per-device batch x gradient accumulation; absent before 2026-12-06
    threads: int | None = None
    where: dict[str, Any] | None = None  # environment.where_running(): host, executor, SLURM ids; absent before then
    cpu: dict[str, Any] = field(default_factory=dict)  # cpu_description(); absent from runs before 2026-12-06
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    push: dict[str, Any] | None = None  # the hub push's outcome (training.push_to_hub), see hub.push_model
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        # A key the file did not have (added to meta.json after it was written) stays out while it is unset: a run
        # is written back as it was read.
        defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(self)
                    if f.default is not MISSING or f.default_factory is not MISSING}  # fmt: skip
        for key in getattr(self, "_absent", ()):
            if key in defaults and d[key] == defaults[key]:
                del d[key]
        return {"format": d.pop("format"), **d, **extra}

    @property
    def examples_per_second(self) -> float | None:
        """The training throughput, or None when not measured: before 2026-12-06 a run resumed from its last
        checkpoint recorded its last process's rate, 0.0 (that process trained no step)."""
        rate = self.train.get("examples_per_second")
        return None if self.resumed and not rate else rate

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in d.items() if k in known}
        values.setdefault("format", LEGACY_RUN_FORMAT)
        values.setdefault("status", None)
        values.setdefault("name", "")
        for key in ("train", "model", "loss", "data", "config", "versions", "cpu"):
            if values.get(key) is None:
                values.pop(key, None)
        meta = cls(**values, extra={k: v for k, v in d.items() if k not in known})
        meta._absent = known - set(d)
        return meta

    def settings(self) -> dict[str, Any]:
        """What the run was trained with, for comparing runs: its seed, loss, data and resolved config."""
        out: dict[str, Any] = {} if self.seed is None else {"seed": self.seed}
        return out | {k: v for k, v in (("loss", self.loss), ("data", self.data), ("config", self.config)) if v}
