"""Retrieval datasets and suites: NanoBEIR (hub or a local copy), BEIR-format folders, suite files.

Every loader returns :class:`RetrievalDataset` objects that follow the data conventions of DESIGN.md:

* a document's text is ``title + " " + text`` when its title is non-empty, else ``text``;
* a qrels score > 0 means relevant (graded scores are kept);
* only queries with at least one relevant document are evaluated, and the others are counted;
* qrels naming unknown documents or queries are dropped and counted, never silently;
* a document is never dropped because its id equals a query id (separate namespaces).

Bad input (a missing file, a malformed line, a duplicate id) is an :class:`InputError` naming the file
and line; everything is checked before a model is loaded, so a typo costs seconds, not an encoding run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import InputError

NANOBEIR_HUB_ID = "sentence-transformers/NanoBEIR-en"

# Short name -> split name in the hub dataset, as in sentence-transformers' NanoBEIREvaluator.
NANOBEIR_DATASETS = {
    "climatefever": "NanoClimateFEVER",
    "dbpedia": "NanoDBPedia",
    "fever": "NanoFEVER",
    "fiqa2018": "NanoFiQA2018",
    "hotpotqa": "NanoHotpotQA",
    "msmarco": "NanoMSMARCO",
    "nfcorpus": "NanoNFCorpus",
    "nq": "NanoNQ",
    "quoraretrieval": "NanoQuoraRetrieval",
    "scidocs": "NanoSCIDOCS",
    "arguana": "NanoArguAna",
    "scifact": "NanoSciFact",
    "touche2020": "NanoTouche2020",
}

BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
SUITE_KEYS = ("name", "description", "datasets")

# Problems of one file are collected up to this many, then summarised: enough to fix a file in one go.
MAX_PROBLEMS = 10

NO_HUB_HINT = (
    "evaluate from a local copy instead (where the hub is reachable: "
    f"`hf download {NANOBEIR_HUB_ID} --repo-type dataset --local-dir NanoBEIR-en`, then `--suite NanoBEIR-en`) "
    "or from a BEIR folder (`--suite DIR` holding corpus.jsonl, queries.jsonl and qrels/test.tsv)"
)


@dataclass
class RetrievalDataset:
    """One retrieval collection, cleaned by the conventions above and ready to evaluate.

    Attributes:
        name: Name in results and tables.
        source: Where it came from (a folder, or a hub id and split).
        corpus_ids: Document ids, in file order.
        corpus_texts: Document texts (title joined), aligned with ``corpus_ids``.
        query_ids: The evaluated queries (those with a relevant document), in file order.
        query_texts: Their texts, aligned with ``query_ids``.
        qrels: Evaluated query id -> {document id: graded score} for the judgements kept (scores <= 0 included).
        counts: What was read, kept and dropped (documents, queries, qrels rows and why rows were dropped).
        notes: One line per thing a user should know about (dropped rows, unevaluated queries).
    """

    name: str
    source: str
    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, float]]
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def relevant(self, query_id: str) -> set[str]:
        """The documents relevant to a query: binary relevance, any score > 0."""
        return {doc_id for doc_id, score in self.qrels[query_id].items() if score > 0}

    @cached_property
    def corpus_hash(self) -> str:
        """Content hash of the corpus (ids and texts, in order): part of the embedding-cache key."""
        h = hashlib.sha256()
        for doc_id, text in zip(self.corpus_ids, self.corpus_texts, strict=True):
            h.update(json.dumps([doc_id, text]).encode())
            h.update(b"\n")
        return h.hexdigest()

    @cached_property
    def hash(self) -> str:
        """Content hash of everything evaluated: corpus, evaluated queries and their judgements."""
        h = hashlib.sha256(self.corpus_hash.encode())
        for query_id, text in zip(self.query_ids, self.query_texts, strict=True):
            h.update(json.dumps([query_id, text, sorted(self.qrels[query_id].items())]).encode())
            h.update(b"\n")
        return h.hexdigest()


def build_dataset(
    name: str,
    source: str,
    documents: Iterable[tuple[str, str, str, str]],
    queries: Iterable[tuple[str, str, str]],
    judgements: Iterable[tuple[str, str, float, str]],
) -> RetrievalDataset:
    """Apply the data conventions to raw records.

    Args:
        name: Dataset name.
        source: Where the records came from (for messages).
        documents: ``(id, title, text, location)`` per document; ``location`` names the file and line.
        queries: ``(id, text, location)`` per query.
        judgements: ``(query id, document id, score, location)`` per qrels row.

    Raises:
        InputError: duplicate document or query ids, or no query with a relevant document.
    """
    problems: list[str] = []
    corpus: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for doc_id, title, text, location in documents:
        if doc_id in corpus:
            problems.append(f"{location}: duplicate document id {doc_id!r} (first at {first_seen[doc_id]})")
            continue
        corpus[doc_id] = f"{title} {text}" if title else text
        first_seen[doc_id] = location
    all_queries: dict[str, str] = {}
    first_seen = {}
    for query_id, text, location in queries:
        if query_id in all_queries:
            problems.append(f"{location}: duplicate query id {query_id!r} (first at {first_seen[query_id]})")
            continue
        all_queries[query_id] = text
        first_seen[query_id] = location
    _raise_problems(source, problems)

    qrels: dict[str, dict[str, float]] = {}
    unknown_docs: list[str] = []
    unknown_queries: list[str] = []
    rows = duplicates = 0
    for query_id, doc_id, score, location in judgements:
        rows += 1
        if query_id not in all_queries:
            unknown_queries.append(f"{location} (query {query_id!r})")
        elif doc_id not in corpus:
            unknown_docs.append(f"{location} (document {doc_id!r})")
        else:
            judged = qrels.setdefault(query_id, {})
            if doc_id in judged:
                # A repeated judgement keeps its highest score: relevant if any row says so.
                duplicates += 1
                score = max(score, judged[doc_id])
            judged[doc_id] = score

    evaluated = [q for q in all_queries if any(s > 0 for s in qrels.get(q, {}).values())]
    if not evaluated:
        raise InputError(f"{source}: no query has a relevant document (a qrels score > 0 naming a known document)")

    notes = []
    if unknown_docs:
        notes.append(f"dropped {len(unknown_docs)} qrels rows naming unknown documents, e.g. {unknown_docs[0]}")
    if unknown_queries:
        notes.append(f"dropped {len(unknown_queries)} qrels rows naming unknown queries, e.g. {unknown_queries[0]}")
    if duplicates:
        notes.append(f"{duplicates} repeated qrels rows merged (highest score kept)")
    unevaluated = len(all_queries) - len(evaluated)
    if unevaluated:
        notes.append(f"{unevaluated} of {len(all_queries)} queries have no relevant document: not evaluated")

    counts = {
        "corpus": len(corpus),
        "queries": len(evaluated),
        "queries_in_file": len(all_queries),
        "queries_without_relevant": unevaluated,
        "qrels_rows": rows,
        "qrels_relevant": sum(s > 0 for q in evaluated for s in qrels[q].values()),
        "qrels_unknown_document": len(unknown_docs),
        "qrels_unknown_query": len(unknown_queries),
        "qrels_duplicate": duplicates,
    }
    return RetrievalDataset(
        name=name,
        source=source,
        corpus_ids=list(corpus),
        corpus_texts=list(corpus.values()),
        query_ids=evaluated,
        query_texts=[all_queries[q] for q in evaluated],
        qrels={q: qrels[q] for q in evaluated},
        counts=counts,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------------
# BEIR folders


def is_beir_folder(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file()


def load_beir_folder(path: str | os.PathLike, name: str | None = None, qrels: str = "test") -> RetrievalDataset:
    """Load a folder in BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<qrels>.tsv``.

    ``qrels`` picks the judgement split (``test`` by default; e.g. ``train`` for a development set such as
    SciFact's train claims). Only queries judged in that split are evaluated.
    """
    path = Path(path)
    files = (*BEIR_FILES[:2], f"qrels/{qrels}.tsv")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path}: not a BEIR folder: missing {', '.join(missing)} (expected {', '.join(files)})")
    problems: list[str] = []
    documents = [
        (str(obj["_id"]), obj.get("title") or "", obj["text"], loc)
        for obj, loc in _read_jsonl(path / "corpus.jsonl", ("_id", "text"), problems)
    ]
    queries = [
        (str(obj["_id"]), obj["text"], loc)
        for obj, loc in _read_jsonl(path / "queries.jsonl", ("_id", "text"), problems)
    ]
    judgements = list(_read_qrels(path / files[2], problems))
    _raise_problems(str(path), problems)
    return build_dataset(name or path.name, str(path), documents, queries, judgements)


def _read_jsonl(path: Path, required: tuple[str, ...], problems: list[str]) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield each line's JSON object and its location; record malformed lines in ``problems``."""
    start = len(problems)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            location = f"{path} line {lineno}"
            if len(problems) - start >= MAX_PROBLEMS:
                problems.append(f"{path}: more problems after line {lineno - 1} not shown")
                return
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(f"{location}: not UTF-8 text ({e.reason} at byte {e.start})")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                problems.append(f"{location}: not valid JSON ({e.msg}, column {e.colno})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{location}: expected a JSON object, got {type(obj).__name__}")
                continue
            absent = [k for k in required if obj.get(k) is None]
            if absent:
                problems.append(f"{location}: missing field {', '.join(repr(k) for k in absent)}")
                continue
            bad = [k for k in ("text", "title") if k in obj and obj[k] is not None and not isinstance(obj[k], str)]
            if bad:
                problems.append(f"{location}: field {bad[0]!r} must be a string")
                continue
            yield obj, location


def _read_qrels(path: Path, problems: list[str]) -> Iterator[tuple[str, str, float, str]]:
    """Yield ``(query id, document id, score, location)`` per row of a BEIR qrels TSV (header optional)."""
    start = len(problems)
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            location = f"{path} line {lineno}"
            if len(problems) - start >= MAX_PROBLEMS:
                problems.append(f"{path}: more problems after line {lineno - 1} not shown")
                return
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                problems.append(
                    f"{location}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}"
                )
                continue
            query_id, doc_id, score = (x.strip() for x in fields)
            try:
                value = float(score)
            except ValueError:
                if lineno == 1:  # the header: query-id corpus-id score
                    continue
                problems.append(f"{location}: score {score!r} is not a number")
                continue
            yield query_id, doc_id, int(value) if value.is_integer() else value, location


# --------------------------------------------------------------------------------------------------
# NanoBEIR: the hub dataset or a local copy of it (same layout: subsets corpus/queries/qrels, one split per dataset)


def is_nanobeir_copy(path: Path) -> bool:
    return all((path / subset).is_dir() for subset in ("corpus", "queries", "qrels"))


def nanobeir_split_names(source: str) -> list[str]:
    """The dataset (split) names of a NanoBEIR source: the 13 known ones on the hub, those present in a copy."""
    if source == NANOBEIR_HUB_ID:
        return list(NANOBEIR_DATASETS.values())
    import datasets

    try:
        return list(datasets.get_dataset_split_names(source, "corpus"))
    except Exception as e:  # noqa: BLE001 - any failure here means the folder is not a usable copy
        raise InputError(
            f"{source}: not a readable NanoBEIR copy ({type(e).__name__}: {first_line(e)}); "
            "it should hold README.md (the hub's dataset card) and corpus/, queries/, qrels/ folders"
        ) from None


def load_nanobeir(source: str, split: str) -> RetrievalDataset:
    """Load one NanoBEIR dataset (e.g. ``NanoSciFact``) from the hub id or a local copy of it."""
    import datasets

    tables = {}
    for subset, columns in (
        ("corpus", ("_id", "text")),
        ("queries", ("_id", "text")),
        ("qrels", ("query-id", "corpus-id")),
    ):
        try:
            table = datasets.load_dataset(source, subset, split=split)
        except Exception as e:  # noqa: BLE001 - network, cache and layout errors all end the same way
            if source == NANOBEIR_HUB_ID:
                raise InputError(f"could not load {source} ({first_line(e)}); {NO_HUB_HINT}") from None
            raise InputError(f"{source}: cannot read subset {subset!r} split {split!r} ({first_line(e)})") from None
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InputError(f"{source}: subset {subset!r} split {split!r} lacks column(s) {', '.join(missing)}")
        tables[subset] = table

    where = f"{source} [{split}]"
    documents = (
        (str(row["_id"]), row.get("title") or "", row["text"] or "", f"{where} corpus row {i}")
        for i, row in enumerate(tables["corpus"])
    )
    queries = (
        (str(row["_id"]), row["text"] or "", f"{where} queries row {i}") for i, row in enumerate(tables["queries"])
    )

    def judgements() -> Iterator[tuple[str, str, float, str]]:
        for i, row in enumerate(tables["qrels"]):
            # The hub's qrels list relevant pairs without a score; some copies hold a list of ids per row.
            doc_ids = row["corpus-id"] if isinstance(row["corpus-id"], list) else [row["corpus-id"]]
            for doc_id in doc_ids:
                yield str(row["query-id"]), str(doc_id), row.get("score", 1), f"{where} qrels row {i}"

    return build_dataset(split, where, documents, queries, judgements())


def check_hub_reachable(hub_id: str) -> None:
    """Fail fast, with how to work offline, when the hub cannot be reached (instead of minutes of retries).

    With ``HF_HUB_OFFLINE=1`` nothing is probed: ``datasets`` then reads its local cache or fails at once.
    """
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return
    try:
        HfApi().dataset_info(hub_id, timeout=10)
    except Exception as e:  # noqa: BLE001 - DNS, proxy, timeout, HTTP: all mean "not reachable from here"
        raise InputError(f"cannot reach the Hugging Face Hub for {hub_id} ({first_line(e)}); {NO_HUB_HINT}") from None


# --------------------------------------------------------------------------------------------------
# Suites


@dataclass
class Suite:
    """A named, ordered set of datasets; each is loaded on demand by its loader.

    Attributes:
        name: The suite's name (results file ``eval/<name>.json`` of a run).
        source: What ``--suite`` named (``nanobeir``, a folder or a YAML file).
        loaders: Dataset name -> function loading it, in suite order.
        aliases: Other accepted spellings of dataset names for ``--datasets`` (lower case -> name).
        before_load: Run once before loading (for the hub: fail fast when it cannot be reached).
    """

    name: str
    source: str
    loaders: dict[str, Callable[[], RetrievalDataset]]
    aliases: dict[str, str] = field(default_factory=dict)
    before_load: Callable[[], None] | None = None

    def select(self, names: str | None) -> Suite:
        """The suite restricted to a comma-separated list of dataset names (case-insensitive)."""
        if not names:
            return self
        lookup = {n.lower(): n for n in self.loaders} | self.aliases
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n.lower() not in lookup]
        if unknown or not wanted:
            raise InputError(
                f"--datasets: {', '.join(unknown) or repr(names)} not in suite {self.name!r} "
                f"(it has: {', '.join(self.loaders)})"
            )
        chosen = list(dict.fromkeys(lookup[n.lower()] for n in wanted))
        return Suite(self.name, self.source, {n: self.loaders[n] for n in chosen}, self.aliases, self.before_load)

    def load(self) -> list[RetrievalDataset]:
        """Load every dataset (all of them before any model work, so bad input fails fast)."""
        if self.before_load:
            self.before_load()
        return [load() for load in self.loaders.values()]


def resolve_suite(spec: str) -> Suite:
    """Turn ``--suite`` into a :class:`Suite`: ``nanobeir``, a NanoBEIR copy, a BEIR folder or a suite YAML."""
    if spec.lower() == "nanobeir":
        return _nanobeir_suite(NANOBEIR_HUB_ID, before_load=lambda: check_hub_reachable(NANOBEIR_HUB_ID))
    path = Path(spec).expanduser()
    if path.is_file():
        return load_suite_file(path)
    if path.is_dir():
        if is_beir_folder(path):
            name = path.resolve().name
            return Suite(name, str(path), {name: lambda: load_beir_folder(path, name)})
        if is_nanobeir_copy(path):
            return _nanobeir_suite(str(path))
        raise InputError(
            f"--suite {spec}: a folder, but neither a BEIR folder (no corpus.jsonl) "
            "nor a NanoBEIR copy (no corpus/, queries/ and qrels/ folders)"
        )
    raise InputError(
        f"--suite {spec}: no such file or folder (give 'nanobeir', a BEIR folder, a NanoBEIR copy or a suite YAML)"
    )


def _nanobeir_suite(source: str, before_load: Callable[[], None] | None = None) -> Suite:
    splits = nanobeir_split_names(source)
    short = {v: k for k, v in NANOBEIR_DATASETS.items()}
    aliases = {short[s]: s for s in splits if s in short}
    return Suite(
        "nanobeir",
        source,
        {split: (lambda split=split: load_nanobeir(source, split)) for split in splits},
        aliases,
        before_load,
    )


def load_suite_file(path: str | os.PathLike) -> Suite:
    """Load a suite YAML: ``name`` (default: the file name), ``description``, ``datasets``: name -> BEIR folder,
    or name -> ``{path: FOLDER, qrels: SPLIT}`` to read ``qrels/SPLIT.tsv`` instead of ``qrels/test.tsv``.

    Relative folders are resolved against the YAML file's own folder, so a suite works from any directory.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a suite file is a mapping with keys {', '.join(SUITE_KEYS)}")
    problems = []
    for key in data:
        if key not in SUITE_KEYS:
            close = difflib.get_close_matches(str(key), SUITE_KEYS, n=1)
            problems.append(f"{key}: unknown key" + (f" (did you mean {close[0]}?)" if close else ""))
    entries = data.get("datasets")
    if not isinstance(entries, dict) or not entries:
        problems.append("datasets: required, a mapping of dataset name -> BEIR folder")
        entries = {}
    specs: dict[str, tuple[str, str]] = {}
    for name, entry in entries.items():
        if isinstance(entry, dict) and set(entry) <= {"path", "qrels"} and isinstance(entry.get("path"), str):
            specs[str(name)] = (entry["path"], str(entry.get("qrels", "test")))
        elif isinstance(entry, str):
            specs[str(name)] = (entry, "test")
        else:
            problems.append(f"datasets.{name}: expected a folder path, or a mapping with path and qrels (a split name)")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        problems.append("name: expected a non-empty string")
    _raise_problems(str(path), [f"{path}: {p}" for p in problems], what="an invalid suite file")

    def loader(dataset: str, folder: Path, qrels: str) -> Callable[[], RetrievalDataset]:
        def load() -> RetrievalDataset:
            try:
                return load_beir_folder(folder, dataset, qrels=qrels)
            except InputError as e:
                # Name the suite entry too: the folder alone does not say which line of the YAML to fix.
                raise InputError(f"{path}: datasets.{dataset}: {e.args[0]}", problems=e.problems) from None

        return load

    base = path.resolve().parent
    loaders = {k: loader(k, base / Path(folder).expanduser(), qrels) for k, (folder, qrels) in specs.items()}
    return Suite(name, str(path), loaders)


def _raise_problems(source: str, problems: list[str], what: str = "problems in the data") -> None:
    """One problem: its own line. Several: a summary line, then every problem (all fixed in one go)."""
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{source}: {len(problems)} {what}", problems=problems)


def first_line(e: BaseException) -> str:
    """An exception's first message line: enough for a one-line error, never a traceback."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
