"""Typed evaluation results, with to/from disk.

One results file (``runs/<name>/eval/<suite>.json``, or any ``--output`` of ``bidir eval``) holds a
suite's evaluation of one model: for each dataset its identity, counts, aggregated metrics and
the per-query value of every metric, so that ``bidir compare`` can run paired tests on any metric
without loading a model.

Which settings a result was computed under decides its file's name (:mod:`bidir_cli.runs.settings`).

An evaluation of some of a suite's datasets is merged into the file of the same settings when the model
fingerprint and every number setting are the same, and each dataset in both has the same content and the
same per-dataset prompts (its datasets replace theirs, the others stay); otherwise it goes to the next free
name. A result is never replaced by one computed under other settings.

Layout on disk (``format`` = ``bidir.eval/2``; ``bidir.eval/1`` files, without per-dataset ``created``,
are still read)::

    {
      "format": "bidir.eval/2",
      "suite": {"name": "nanobeir", "source": "...", "hash": "..."},
      "model": {"name": "...", "fingerprint": "..."},
      "settings": {"batch_size": 64, "truncate_dim": null, "backend": "bidir", "model_backend": "torch",
                   "device": "cpu", "prompts": {...}, "max_seq_length": 256, "overrides": {}, ...},
      "versions": {"bidir": "...", "sentence-transformers": "...", ...},
      "created": "2026-11-27T10:00:00+00:00",
      "datasets": {
        "<name>": {
          "hash": "...", "source": "...",
          "counts": {"corpus": 5183, "queries": 300, ...},
          "metrics": {"ndcg@10": 0.64, ...},
          "query_ids": ["q1", "q2", ...],
          "per_query": {"ndcg@10": [0.5, 1.0, ...], ...},
          "time_s": 12.3,
          "created": "2026-11-27T10:00:00+00:00"
        }
      },
      "mean": {"ndcg@10": 0.61, ...}
    }
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .atomic import atomic_write_json
from .settings import NUMBER_SETTINGS, EvalSettings, describe_setting

FORMAT = "bidir.eval/2"


READABLE_FORMATS = ("bidir.eval/1", FORMAT)


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
    created: str = ""

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
            created=str(d.get("created", "")),
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
        first = next(iter(self.datasets.values()))  # metrics in the order bidir eval writes them
        names = [m for m in first.metrics if all(m in d.metrics for d in self.datasets.values())]
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
        result = cls(
            suite=dict(d["suite"]),
            model=dict(d.get("model", {})),
            settings=dict(d.get("settings", {})),
            versions=dict(d.get("versions", {})),
            created=str(d.get("created", "")),
            datasets={name: DatasetResult.from_dict(name, v) for name, v in d["datasets"].items()},
        )
        for dataset in result.datasets.values():
            dataset.created = dataset.created or result.created  # bidir.eval/1 has one time for the file
        return result

    @property
    def number_settings(self) -> dict[str, Any]:
        """The settings that change the numbers, with defaults for those an older file did not record."""
        recorded = EvalSettings.from_record(self.settings).record()  # defaults where an older file lacks a flag
        return {k: self.settings.get(k, recorded.get(k)) for k in NUMBER_SETTINGS}

    @property
    def stem(self) -> str:
        """The name of this result's file in a run's ``eval/`` (without a ``--N`` for a clash)."""
        return EvalSettings.from_record(self.settings).stem(self.suite["name"])

    def differences(self, other: EvalResult) -> list[str]:
        """What keeps two results from being one evaluation: model, suite, or a number setting."""
        found = []
        if not self.model.get("fingerprint") or self.model.get("fingerprint") != other.model.get("fingerprint"):
            found.append("model fingerprint")
        found += [f"suite {k}" for k in ("name", "source") if self.suite.get(k) != other.suite.get(k)]
        mine, theirs = self.number_settings, other.number_settings
        found += [f"{describe_setting(k, theirs[k])} there, {describe_setting(k, mine[k])} here"
                  for k in NUMBER_SETTINGS if mine[k] != theirs[k]]  # fmt: skip
        found += [f"dataset {n} (other content)" for n, d in self.datasets.items() if n in other.datasets
                  and other.datasets[n].hash != d.hash]  # fmt: skip
        # A suite file's per-dataset prompts (recorded with the dataset, not in the settings).
        found += [f"dataset {n} (other prompts)" for n, d in self.datasets.items() if n in other.datasets
                  and other.datasets[n].extra.get("prompts") != d.extra.get("prompts")]  # fmt: skip
        return found

    def merged_into(self, earlier: EvalResult) -> EvalResult:
        """This result with the datasets of an earlier one of the same evaluation that it did not redo."""
        datasets = {**earlier.datasets, **self.datasets}
        return EvalResult(
            suite=suite_identity(self.suite["name"], self.suite["source"], datasets),
            model=self.model,
            settings=self.settings,
            versions=self.versions,
            created=self.created,
            datasets=datasets,
        )

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    def store(self, path: Path, *, numbered: bool) -> Path:
        """Write to ``path`` without ever replacing a result computed under other settings.

        An existing results file of the same evaluation (:meth:`differences` empty) is merged with this
        one. Any other existing file is left alone: with ``numbered`` (a run's ``eval/``, where bidir
        chooses the name) this result goes to the next free ``<stem>--N.json``; otherwise (a path the user
        chose) it is refused.

        Returns:
            The file written.
        """
        candidates = [path]
        if numbered:
            candidates += [path.with_name(f"{path.stem}--{n}.json") for n in range(2, 1000)]
        for candidate in candidates:
            if not candidate.exists():
                self.save(candidate)
                return candidate
            try:
                earlier = EvalResult.load(candidate)
            except InputError:
                if numbered:
                    continue
                raise InputError(
                    f"{candidate}: exists and is not a bidir results file; bidir does not replace it"
                ) from None
            differences = self.differences(earlier)
            if not differences:
                self.merged_into(earlier).save(candidate)
                return candidate
            if not numbered:
                raise InputError(
                    f"{candidate}: holds another evaluation (it differs in {', '.join(differences)}); bidir does not "
                    "replace it: choose another --output"
                )
        raise InputError(f"{path}: too many results files of this suite and settings")

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
        if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
            raise InputError(f'{path}: not a bidir results file (expected "format": "{FORMAT}")')
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{path}: malformed results file ({type(e).__name__}: {e})") from None


def suite_identity(name: str, source: str, datasets: dict[str, DatasetResult]) -> dict[str, Any]:
    """A results file's ``suite``: its name and source, the datasets in it and a hash of their contents."""
    return {
        "name": name,
        "source": source,
        "hash": hashlib.sha256("".join(d.hash for d in datasets.values()).encode()).hexdigest(),
        "datasets": list(datasets),
    }
