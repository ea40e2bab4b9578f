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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.schema import DataConfig, SourceConfig
from ..demo import demo_path
from ..errors import InputError
from .mining_record import is_sidecar, mined_identity

LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
BATCH = 10_000  # rows validated, hashed or read at once: the data itself stays in Arrow, memory-mapped


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
        """Every training text (for training a tokenizer), read in batches (the data stays in Arrow)."""
        for s in self.sources:
            for batch in s.dataset.iter(batch_size=BATCH):
                for column in s.dataset.column_names:
                    yield from batch[column]


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
    """A source read through ``datasets`` into Arrow (memory-mapped, cached by ``datasets``), its rows chosen
    (``limit``, ``sample``), validated and hashed in batches; never copied into Python rows. Anything the fast path
    does not accept as it is (a parse error, a column of other than text, a null, an empty or blank text, a
    missing column) is read again row by row (:func:`load_source_rows`), which names the file and row, so bad
    data gets the same one message either way."""
    kind, location = resolve_location(cfg.source, base_dir, f"{where}.source")
    loaded = arrow_rows(cfg, kind, location)
    if loaded is None:
        return load_source_rows(cfg, base_dir, where)
    keep = chosen_rows(len(loaded), cfg)
    if keep is not None and len(keep) == 0 or len(loaded) == 0:
        raise InputError(f"{where}: {location} holds no rows")
    wanted = role_columns(loaded.column_names, cfg)
    try:
        digest = wanted and checked_hash(loaded, list(wanted.values()), keep)
    except Exception:  # noqa: BLE001 - Arrow refuses the bytes (not UTF-8, ...): the row-by-row reader names them
        digest = None
    if not digest:
        return load_source_rows(cfg, base_dir, where)
    dataset = loaded if keep is None else loaded.select(keep)
    dataset = dataset.select_columns(list(wanted.values())).rename_columns(
        {column: role for role, column in wanted.items() if column != role}
    )
    return Source(
        name=cfg.name or default_name(cfg.source),
        dataset=dataset,
        identity=identity(cfg, kind, location, len(dataset), len(wanted) - 2, digest),
    )


def arrow_rows(cfg: SourceConfig, kind: str, location: Path | str):
    """The source as a ``datasets.Dataset`` (every file of a folder, in name order), or None when ``datasets``
    cannot read it as it is (the row-by-row reader then finds and names the problem)."""
    import datasets
    from datasets import concatenate_datasets, load_dataset
    from datasets.utils import logging as datasets_logging

    verbosity, bars_off = datasets_logging.get_verbosity(), datasets.are_progress_bars_disabled()
    datasets_logging.set_verbosity(datasets_logging.CRITICAL + 1)  # its parse errors are ours to report, once
    if not sys.stderr.isatty():  # its "Generating train split" bars: on a terminal only
        datasets.disable_progress_bars()
    try:
        if kind == "hub":
            return load_dataset(cfg.source, cfg.subset, split=cfg.split, revision=cfg.revision)
        path = Path(location)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in _READERS and not is_sidecar(p)) if path.is_dir() else [path]
        )
        if not files or any(f.suffix not in _READERS for f in files):
            return None
        parts = [_load_file(f) for f in files]
        return parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    except Exception:  # noqa: BLE001 - any reading problem: the row-by-row reader names it
        return None
    finally:
        datasets_logging.set_verbosity(verbosity)
        if not bars_off:
            datasets.enable_progress_bars()


def _load_file(path: Path):
    from datasets import load_dataset

    if path.suffix == ".csv":  # every field as text, an empty field as "" (what csv.DictReader gives)
        from datasets import Features, Value

        with path.open(encoding="utf-8", newline="") as f:
            header = next(csv.reader(f))
        features = Features({column: Value("string") for column in header})
        return load_dataset("csv", data_files=str(path), split="train", features=features, na_filter=False)
    builder = "parquet" if path.suffix == ".parquet" else "json"
    if builder == "json":  # JSON read 1 MiB at a time into the Arrow copy: the peak stays small (10 MiB by default)
        return load_dataset(builder, data_files=str(path), split="train", chunksize=1 << 20)
    return load_dataset(builder, data_files=str(path), split="train")


def chosen_rows(rows: int, cfg: SourceConfig) -> list[int] | None:
    """The rows ``limit`` or ``sample`` chooses, in file order (the same draw as the row-by-row reader), or None
    for every row."""
    if cfg.limit is not None and cfg.limit < rows:
        return list(range(cfg.limit))
    if cfg.sample is not None and cfg.sample < rows:
        return sorted(random.Random(cfg.sample_seed).sample(range(rows), cfg.sample))
    return None


def role_columns(available: list[str], cfg: SourceConfig) -> dict[str, str] | None:
    """Role (anchor, positive, negative_1..) -> source column, or None when a wanted column is missing or one
    column would fill two roles (the row-by-row reader then says which)."""
    negatives = cfg.columns.negatives
    if negatives is None:
        negatives = sorted((c for c in available if _NEGATIVE.match(c)), key=lambda c: (len(c), c))
    wanted = {"anchor": cfg.columns.anchor, "positive": cfg.columns.positive}
    wanted |= {f"negative_{i}": column for i, column in enumerate(negatives, start=1)}
    ok = all(c in available for c in wanted.values()) and len(set(wanted.values())) == len(wanted)
    return wanted if ok else None


def arrow_batches(dataset, columns: list[str], keep: list[int] | None):
    """The chosen rows of ``columns``, batch by batch, read from the dataset's cache files with ordinary reads:
    memory-mapping them would count every page read as the process's memory."""
    import pyarrow as pa

    if not dataset.cache_files:  # an in-memory dataset (small by construction)
        yield from dataset.select_columns(columns).with_format("arrow").iter(batch_size=BATCH)
        return
    wanted = None if keep is None else set(keep)
    start = 0
    for entry in dataset.cache_files:  # in the dataset's row order
        with pa.OSFile(entry["filename"]) as f:
            for batch in pa.ipc.open_stream(f):
                rows = batch.num_rows
                if wanted is not None:
                    batch = batch.filter(pa.array([start + i in wanted for i in range(rows)]))
                start += rows
                yield batch.select(columns)


def checked_hash(dataset, columns: list[str], keep: list[int] | None) -> str | None:
    """:func:`content_hash` of the chosen rows of ``columns`` (the same bytes, so the same hash as the row-by-row
    reader), or None when a value is not a string with a non-blank character (a null, an empty or blank text,
    another type): then the row-by-row reader names the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    h = hashlib.sha256()
    for batch in arrow_batches(dataset, columns, keep):
        for values in batch.columns:
            if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) or values.null_count:
                return None
            if len(values) and not pc.all(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0)).as_py():
                return None
        for row in zip(*(c.to_pylist() for c in batch.columns)):
            h.update(json.dumps(list(row), ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def identity(
    cfg: SourceConfig, kind: str, location: Path | str, rows: int, negatives: int, digest: str
) -> dict[str, Any]:
    """What meta.json records of a source: where it came from, the rows chosen and a hash of exactly them."""
    found = {
        "name": cfg.name or default_name(cfg.source),
        "source": cfg.source,
        "kind": "hub" if kind == "hub" else "demo" if cfg.source.startswith("demo:") else "local",
        "location": str(location),
        "revision": cfg.revision,
        "subset": cfg.subset,
        "split": cfg.split if kind == "hub" else None,
        "limit": cfg.limit,
        "sample": None if cfg.sample is None else {"rows": cfg.sample, "seed": cfg.sample_seed},
        "rows": rows,
        "negatives": negatives,
        "hash": digest,
    }
    if kind == "local" and (mined := mined_identity(Path(location), LOCAL_SUFFIXES)) is not None:
        found["mined"] = mined
    return found


def load_source_rows(cfg: SourceConfig, base_dir: Path, where: str) -> Source:
    """The row-by-row reader: every row a Python dict, each checked with its file and row named. Used where the
    Arrow path declines a source, so that a bad row gets its precise message."""
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
    found = identity(cfg, kind, location, len(rows), len(columns) - 2, content_hash(columns))
    return Source(name=found["name"], dataset=Dataset.from_dict(columns), identity=found)


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
