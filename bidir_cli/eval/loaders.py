"""Loaders of retrieval collections: BEIR-format folders, and NanoBEIR from the hub or a local copy.

Bad input (a missing file, a malformed line, a duplicate id) is an :class:`InputError` naming the file
and line; everything is checked before a model is loaded, so a typo costs seconds, not an encoding run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, first_line
from .retrieval import MAX_PROBLEMS, RetrievalDataset, build_dataset, raise_problems

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


NO_HUB_HINT = (
    "evaluate from a local copy instead (where the hub is reachable: "
    f"`hf download {NANOBEIR_HUB_ID} --repo-type dataset --local-dir NanoBEIR-en`, then `--suite NanoBEIR-en`) "
    "or from a BEIR folder (`--suite DIR` holding corpus.jsonl, queries.jsonl and qrels/test.tsv)"
)


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
    raise_problems(str(path), problems)
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
