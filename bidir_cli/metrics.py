"""The retrieval metrics: one table that evaluation, results files and reports all read.

Each metric is computed per query from the ranking's hits, exactly as sentence-transformers'
``InformationRetrievalEvaluator`` computes it (binary relevance; average precision normalised by
``min(100, |relevant|)``). Adding a metric is one entry in :data:`METRICS`: evaluation computes it for
every query, results files store it, ``bidir compare --metric`` can test it, and ``shown=True`` puts it
in ``bidir eval``'s table.
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
            documents (> 0).
        shown: Whether ``bidir eval`` prints it in its table (all metrics are always saved).
    """

    name: str
    compute: Callable[[list[bool], int], float]
    shown: bool = False


def ndcg(k: int) -> Callable[[list[bool], int], float]:
    """nDCG@k with binary gains; the ideal ranking puts every relevant document first."""

    def compute(hits: list[bool], relevant: int) -> float:
        dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits[:k]) if hit)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(relevant, k)))
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
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
SHOWN_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.shown)
PRIMARY_METRIC = "ndcg@10"
# Ranks kept per query: the deepest rank any metric reads (Recall@100, MAP@100).
TOP_K = 100


def query_metrics(ranking: list[str], relevant: set[str]) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one query.

    Args:
        ranking: Retrieved document ids, best first (at least the top :data:`TOP_K` when the corpus has them).
        relevant: The query's relevant document ids (non-empty).
    """
    hits = [doc_id in relevant for doc_id in ranking]
    return {m.name: m.compute(hits, len(relevant)) for m in METRICS}
