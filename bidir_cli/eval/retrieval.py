"""The retrieval dataset: one collection, cleaned by the data conventions of DESIGN.md and ready to evaluate.

* a document's text is ``title + " " + text`` when its title is non-empty, else ``text``;
* a qrels score > 0 means relevant (graded scores are kept);
* only queries with at least one relevant document are evaluated, and the others are counted;
* qrels naming unknown documents or queries are dropped and counted, never silently;
* a document is never dropped because its id equals a query id (separate namespaces).

The loaders (``loaders.py``: BEIR folders, NanoBEIR) turn files into raw records and :func:`build_dataset`
applies the conventions; suites (``suites.py``) name and order datasets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import InputError

# Problems of one file are collected up to this many, then summarised: enough to fix a file in one go.
MAX_PROBLEMS = 10


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
        prompts: This dataset's own query and document prompts (``query``, ``document``; from a suite file),
            which take precedence over the command line's and the model's.
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
    prompts: dict[str, str] = field(default_factory=dict)

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
    raise_problems(source, problems)

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


def raise_problems(source: str, problems: list[str], what: str = "problems in the data") -> None:
    """One problem: its own line. Several: a summary line, then every problem (all fixed in one go)."""
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{source}: {len(problems)} {what}", problems=problems)
