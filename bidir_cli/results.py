"""Typed evaluation results, with to/from disk.

One results file (``runs/<name>/eval/<suite>.json``, or any ``--output`` of ``bidir eval``) holds a
suite's evaluation of one model: for each dataset its identity, counts, aggregated metrics and
the per-query value of every metric, so that ``bidir compare`` can run paired tests on any metric
without loading a model.

Layout on disk (``format`` = ``bidir.eval/1``)::

    {
      "format": "bidir.eval/1",
      "suite": {"name": "nanobeir", "source": "...", "hash": "..."},
      "model": {"name": "...", "fingerprint": "..."},
      "settings": {"batch_size": 64, "truncate_dim": null, "backend": "bidir", "device": "cpu", ...},
      "versions": {"bidir": "...", "sentence-transformers": "...", ...},
      "created": "2026-11-27T10:00:00+00:00",
      "datasets": {
        "<name>": {
          "hash": "...", "source": "...",
          "counts": {"corpus": 5183, "queries": 300, ...},
          "metrics": {"ndcg@10": 0.64, ...},
          "query_ids": ["q1", "q2", ...],
          "per_query": {"ndcg@10": [0.5, 1.0, ...], ...},
          "time_s": 12.3
        }
      },
      "mean": {"ndcg@10": 0.61, ...}
    }
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .io import atomic_write_json
from .metrics import METRIC_NAMES

FORMAT = "bidir.eval/1"


@dataclass
class DatasetResult:
    """One dataset's evaluation: identity, counts, metrics and per-query values."""

    name: str
    hash: str
    source: str
    counts: dict[str, int]
    metrics: dict[str, float]
    query_ids: list[str]
    per_query: dict[str, list[float]]
    time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> DatasetResult:
        return cls(
            name=name,
            hash=d["hash"],
            source=d.get("source", ""),
            counts=dict(d.get("counts", {})),
            metrics={k: float(v) for k, v in d["metrics"].items()},
            query_ids=[str(q) for q in d["query_ids"]],
            per_query={k: [float(x) for x in v] for k, v in d["per_query"].items()},
            time_s=float(d.get("time_s", 0.0)),
            extra=dict(d.get("extra", {})),
        )


@dataclass
class EvalResult:
    """A suite's evaluation of one model."""

    suite: dict[str, Any]
    model: dict[str, Any]
    settings: dict[str, Any]
    versions: dict[str, str]
    created: str
    datasets: dict[str, DatasetResult]

    @property
    def mean(self) -> dict[str, float]:
        """Each metric averaged over datasets (every dataset weighted equally)."""
        if not self.datasets:
            return {}
        names = [m for m in METRIC_NAMES if all(m in d.metrics for d in self.datasets.values())]
        return {m: sum(d.metrics[m] for d in self.datasets.values()) / len(self.datasets) for m in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "suite": self.suite,
            "model": self.model,
            "settings": self.settings,
            "versions": self.versions,
            "created": self.created,
            "datasets": {name: d.to_dict() for name, d in self.datasets.items()},
            "mean": self.mean,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        return cls(
            suite=dict(d["suite"]),
            model=dict(d.get("model", {})),
            settings=dict(d.get("settings", {})),
            versions=dict(d.get("versions", {})),
            created=str(d.get("created", "")),
            datasets={name: DatasetResult.from_dict(name, v) for name, v in d["datasets"].items()},
        )

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read a results file; any problem is an :class:`InputError` naming the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such results file") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f'{path}: not a bidir results file (expected "format": "{FORMAT}")')
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{path}: malformed results file ({type(e).__name__}: {e})") from None
