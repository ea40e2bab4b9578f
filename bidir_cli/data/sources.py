"""Training data: sources from local files, the hub, or the bundled demo set; column mapping and validation.

Every source becomes a ``datasets.Dataset`` with the columns ``anchor``, ``positive``, ``negative_1``, ...
in that order (the order the losses read them). Bad data is refused up front with the file and row
named, before any run directory exists. Each source's identity (where it came from and a hash of
exactly the rows used) goes into meta.json.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.schema import DataConfig, SourceConfig
from ..demo import demo_path
from ..errors import InputError
from .mining_record import is_sidecar, mined_identity

LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


_NEGATIVE = re.compile(r"^negative(_\d+)?$")


@dataclass
class Source:
    """A loaded, validated training source."""

    name: str
    dataset: Any  # datasets.Dataset with anchor, positive, negative_1.. columns
    identity: dict[str, Any]
    eval_dataset: Any = None

    @property
    def num_negatives(self) -> int:
        return len(self.dataset.column_names) - 2


@dataclass
class TrainingData:
    sources: list[Source] = field(default_factory=list)
    concatenate: bool = False

    def _combine(self, datasets: dict[str, Any]):
        from datasets import DatasetDict, concatenate_datasets

        if len(datasets) == 1:
            return next(iter(datasets.values()))
        if self.concatenate:
            return concatenate_datasets(list(datasets.values()))
        return DatasetDict(datasets)

    @property
    def train(self):
        """One Dataset (one source, or all concatenated), or a DatasetDict for multi-dataset training."""
        return self._combine({s.name: s.dataset for s in self.sources})

    @property
    def eval(self):
        held_out = {s.name: s.eval_dataset for s in self.sources if s.eval_dataset is not None}
        return self._combine(held_out) if held_out else None

    @property
    def rows(self) -> int:
        return sum(len(s.dataset) for s in self.sources)

    def texts(self):
        """Every training text (for training a tokenizer)."""
        for s in self.sources:
            for column in s.dataset.column_names:
                yield from s.dataset[column]


def resolve_location(source: str, base_dir: Path, where: str) -> tuple[str, Path | str]:
    """Decide what ``source`` names: ("local", path) or ("hub", id). Local paths win over hub ids."""
    if source.startswith("demo:"):
        path = demo_path(source.removeprefix("demo:"))
        if not path.exists():
            raise InputError(f"{where}: no bundled demo data {source!r}")
        return "local", path
    candidates = [Path(source).expanduser()]
    if not candidates[0].is_absolute():
        candidates.insert(0, base_dir / source)
    for path in candidates:
        if path.exists():
            return "local", path.resolve()
    if _HUB_ID.match(source) and not source.endswith(LOCAL_SUFFIXES):
        return "hub", source
    raise InputError(f"{where}: {source}: no such file or folder (relative paths are read from {base_dir})")


def _read_jsonl(path: Path, where: str) -> list[dict[str, Any]]:
    rows = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{where}: {path}, line {number}: not UTF-8 (byte {e.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: {path}, line {number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: {path}, line {number}: expected a JSON object")
            row["__row__"] = number
            rows.append(row)
    return rows


def _read_json(path: Path, where: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: {path}: not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        # A .json file of one object per line is common enough to accept.
        if e.msg == "Extra data":
            return _read_jsonl(path, where)
        raise InputError(f"{where}: {path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(f"{where}: {path}: expected a list of JSON objects")
    for number, row in enumerate(data, start=1):
        row["__row__"] = number
    return data


def _read_csv(path: Path, where: str) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            # Row numbers count the header as row 1, as a spreadsheet shows them.
            return [{**row, "__row__": number} for number, row in enumerate(reader, start=2)]
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: {path}: not UTF-8 (byte {e.start})") from None
    except csv.Error as e:
        raise InputError(f"{where}: {path}: malformed CSV ({e})") from None


def _read_parquet(path: Path, where: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise InputError(f"{where}: {path}: not a readable parquet file ({e})") from None
    return [{**row, "__row__": number} for number, row in enumerate(table.to_pylist(), start=1)]


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}


def read_local(path: Path, where: str) -> list[dict[str, Any]]:
    """Rows of a local file, or of every supported file in a folder (sorted by name)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _READERS and not is_sidecar(p))
        if not files:
            raise InputError(f"{where}: {path}: folder holds no {', '.join(LOCAL_SUFFIXES)} files")
        rows = []
        for file in files:
            for row in _READERS[file.suffix](file, where):
                row["__row__"] = f"{file.name}:{row['__row__']}"
                rows.append(row)
        return rows
    if path.suffix not in _READERS:
        raise InputError(f"{where}: {path}: unsupported file type (use {', '.join(LOCAL_SUFFIXES)})")
    return _READERS[path.suffix](path, where)


def read_hub(cfg: SourceConfig, where: str) -> list[dict[str, Any]]:
    from datasets import load_dataset

    try:
        dataset = load_dataset(cfg.source, cfg.subset, split=cfg.split, revision=cfg.revision)
    except Exception as e:  # noqa: BLE001 - offline, missing, or private: all one message
        raise InputError(
            f"{where}: could not load hub dataset {cfg.source!r} (split {cfg.split!r}): {type(e).__name__}: {e}. "
            "Without hub access, point source at a local file or folder."
        ) from None
    return [{**row, "__row__": number} for number, row in enumerate(dataset, start=1)]


def map_columns(rows: list[dict[str, Any]], cfg: SourceConfig, where: str, origin: str) -> dict[str, list[str]]:
    """Select and rename columns onto anchor, positive, negative_1.., checking every text."""
    available = [k for k in (rows[0] if rows else {}) if k != "__row__"]
    negatives = cfg.columns.negatives
    if negatives is None:
        negatives = sorted((c for c in available if _NEGATIVE.match(c)), key=lambda c: (len(c), c))
    wanted = {"anchor": cfg.columns.anchor, "positive": cfg.columns.positive}
    wanted |= {f"negative_{i}": column for i, column in enumerate(negatives, start=1)}
    missing = [f"{column!r} ({role})" for role, column in wanted.items() if column not in available]
    if missing:
        raise InputError(
            f"{where}.columns: {origin} has no column {', '.join(missing)}; its columns are {', '.join(available)}"
        )
    out: dict[str, list[str]] = {role: [] for role in wanted}
    for row in rows:
        for role, column in wanted.items():
            text = row.get(column)
            if not isinstance(text, str) or not text.strip():
                problem = (
                    "missing"
                    if column not in row
                    else "null"
                    if text is None
                    else "empty"
                    if text == ""
                    else ("blank" if isinstance(text, str) else f"not text ({type(text).__name__})")
                )
                raise InputError(f"{where}: {origin}, row {row['__row__']}: column {column!r} is {problem}")
            out[role].append(text)
    return out


def content_hash(columns: dict[str, list[str]]) -> str:
    """SHA-256 of exactly the rows used, independent of file format and column names."""
    h = hashlib.sha256()
    for row in zip(*columns.values()):
        h.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def default_name(source: str) -> str:
    stem = source.removeprefix("demo:").rstrip("/").split("/")[-1]
    return re.sub(r"\.(jsonl|json|csv|parquet)$", "", stem) or "train"


def load_source(cfg: SourceConfig, base_dir: Path, where: str) -> Source:
    from datasets import Dataset

    kind, location = resolve_location(cfg.source, base_dir, f"{where}.source")
    rows = read_local(location, where) if kind == "local" else read_hub(cfg, where)
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    if cfg.sample is not None and cfg.sample < len(rows):
        keep = sorted(random.Random(cfg.sample_seed).sample(range(len(rows)), cfg.sample))
        rows = [rows[i] for i in keep]
    if not rows:
        raise InputError(f"{where}: {location} holds no rows")
    columns = map_columns(rows, cfg, where, str(location))
    identity = {
        "name": cfg.name or default_name(cfg.source),
        "source": cfg.source,
        "kind": "hub" if kind == "hub" else "demo" if cfg.source.startswith("demo:") else "local",
        "location": str(location),
        "revision": cfg.revision,
        "subset": cfg.subset,
        "split": cfg.split if kind == "hub" else None,
        "limit": cfg.limit,
        "sample": None if cfg.sample is None else {"rows": cfg.sample, "seed": cfg.sample_seed},
        "rows": len(rows),
        "negatives": len(columns) - 2,
        "hash": content_hash(columns),
    }
    if kind == "local":
        if (mined := mined_identity(location, LOCAL_SUFFIXES)) is not None:
            identity["mined"] = mined
    return Source(name=identity["name"], dataset=Dataset.from_dict(columns), identity=identity)


def load_training_data(cfg: DataConfig, base_dir: Path, seed: int) -> TrainingData:
    """Load, validate and (optionally) split every source of the ``data`` section."""
    sources = [load_source(s, base_dir, f"data.train.{i}") for i, s in enumerate(cfg.train)]
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"data.train: several sources are named {', '.join(duplicates)}; give each a distinct name")
    if cfg.sampling == "concatenate" and len({s.num_negatives for s in sources}) > 1:
        counts = ", ".join(f"{s.name}: {s.num_negatives}" for s in sources)
        raise InputError(
            f"data.sampling: concatenate needs the same number of negative columns in every source ({counts})"
        )
    if cfg.eval_fraction > 0:
        for s in sources:
            split = s.dataset.train_test_split(test_size=cfg.eval_fraction, seed=seed)
            s.dataset, s.eval_dataset = split["train"], split["test"]
            s.identity["eval_rows"] = len(s.eval_dataset)
    return TrainingData(sources, concatenate=cfg.sampling == "concatenate")
