"""The retrieval metrics: one table that evaluation, results files and reports all read.

Each metric is computed per query from the ranking's hits, exactly as sentence-transformers'
``InformationRetrievalEvaluator`` computes it (binary relevance; average precision normalised by
``min(100, |relevant|)``). Adding a metric is one entry in :data:`METRICS`: evaluation computes it for
every query, results files store it, ``bidir compare --metric`` can test it, and ``shown=True`` puts it
in ``bidir eval``'s table.

One metric reads the qrels' grades instead: ``ndcg@10_graded``, nDCG@10 with the grade as the gain
(trec_eval's ``ndcg_cut.10``, which mteb and ir_measures report). It is a metric of its own name rather
than a setting that changes what ``ndcg@10`` means, so a graded figure can never be mistaken for (or
paired with) sentence-transformers' binary one, and every results file holds both: ``bidir compare
--metric ndcg@10_graded`` works on any evaluation, and ``bidir eval --graded`` shows it in the table.
On binary qrels the two are equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric of one query.

    Attributes:
        name: Its name in results files and on the command line (``ndcg@10``).
        compute: ``(hits, relevant)`` -> value, where ``hits[r]`` says whether the document at rank ``r``
            (0 = best) is relevant, for at least the top 100, and ``relevant`` is the number of relevant
            documents (> 0). A graded metric gets ``(gains, grades)`` instead: ``gains[r]`` is the grade
            of the document at rank ``r`` (0 when it is not relevant) and ``grades`` the grades of all the
            query's relevant documents.
        shown: Whether ``bidir eval`` prints it in its table (all metrics are always saved).
        graded: Whether it reads the qrels' grades (``compute`` gets gains) rather than binary relevance.
    """

    name: str
    compute: Callable[[list, object], float]
    shown: bool = False
    graded: bool = False


def ndcg(k: int) -> Callable[[list[bool], int], float]:
    """nDCG@k with binary gains; the ideal ranking puts every relevant document first."""

    def compute(hits: list[bool], relevant: int) -> float:
        dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits[:k]) if hit)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(relevant, k)))
        return dcg / ideal

    return compute


def graded_ndcg(k: int) -> Callable[[list[float], list[float]], float]:
    """nDCG@k with the qrels grade as the gain (trec_eval's ``ndcg_cut``): DCG = sum of grade / log2(rank + 1)
    over the top k, divided by the DCG of the query's relevant documents sorted by grade."""

    def compute(gains: list[float], grades: list[float]) -> float:
        dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(gains[:k]) if g > 0)
        ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(grades, reverse=True)[:k]))
        return dcg / ideal

    return compute


def mrr(k: int) -> Callable[[list[bool], int], float]:
    def compute(hits: list[bool], relevant: int) -> float:
        first = next((rank for rank, hit in enumerate(hits[:k]) if hit), None)
        return 0.0 if first is None else 1 / (first + 1)

    return compute


def average_precision(k: int) -> Callable[[list[bool], int], float]:
    """Average precision over the top k, normalised by min(k, |relevant|) as sentence-transformers does."""

    def compute(hits: list[bool], relevant: int) -> float:
        found, precision_sum = 0, 0.0
        for rank, hit in enumerate(hits[:k]):
            if hit:
                found += 1
                precision_sum += found / (rank + 1)
        return precision_sum / min(k, relevant)

    return compute


def recall(k: int) -> Callable[[list[bool], int], float]:
    return lambda hits, relevant: sum(hits[:k]) / relevant


def precision(k: int) -> Callable[[list[bool], int], float]:
    return lambda hits, relevant: sum(hits[:k]) / k


def accuracy(k: int) -> Callable[[list[bool], int], float]:
    return lambda hits, relevant: float(any(hits[:k]))


# In display order. Values follow sentence-transformers' InformationRetrievalEvaluator.
METRICS: tuple[Metric, ...] = (
    Metric("ndcg@10", ndcg(10), shown=True),
    Metric("mrr@10", mrr(10), shown=True),
    Metric("map@100", average_precision(100), shown=True),
    *(Metric(f"recall@{k}", recall(k), shown=k in (10, 100)) for k in (1, 3, 5, 10, 100)),
    *(Metric(f"precision@{k}", precision(k), shown=k == 1) for k in (1, 3, 5, 10)),
    *(Metric(f"accuracy@{k}", accuracy(k)) for k in (1, 3, 5, 10)),
    Metric("ndcg@10_graded", graded_ndcg(10), graded=True),
)


METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)


SHOWN_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.shown)


PRIMARY_METRIC = "ndcg@10"


# Ranks kept per query: the deepest rank any metric reads (Recall@100, MAP@100).
TOP_K = 100


GRADED_METRIC = "ndcg@10_graded"


def query_metrics(ranking: list[str], judged: set[str] | dict[str, float]) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one query.

    Args:
        ranking: Retrieved document ids, best first (at least the top :data:`TOP_K` when the corpus has them).
        judged: The query's judgements, document id -> grade (relevant: grade > 0; at least one), or the set
            of its relevant document ids (all of grade 1).
    """
    grades = judged if isinstance(judged, dict) else dict.fromkeys(judged, 1.0)
    relevant = {doc_id for doc_id, grade in grades.items() if grade > 0}
    hits = [doc_id in relevant for doc_id in ranking]
    gains = [max(grades.get(doc_id, 0.0), 0.0) for doc_id in ranking]
    positive = [grades[doc_id] for doc_id in relevant]
    return {m.name: m.compute(gains, positive) if m.graded else m.compute(hits, len(relevant)) for m in METRICS}
