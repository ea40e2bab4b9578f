"""Exact top-k search: each query's documents by (score descending, document id ascending).

The order is sentence-transformers' ``InformationRetrievalEvaluator``'s, made independent of chunking and
of how ``torch.topk`` breaks ties. Search is one matrix product and ``topk`` per corpus chunk, never an
approximation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .metrics import TOP_K

if TYPE_CHECKING:
    import torch


# Documents scored at once (InformationRetrievalEvaluator's default corpus_chunk_size): one chunk's score
# matrix is all the memory that search needs beyond the embeddings.
CORPUS_CHUNK_SIZE = 50_000


# Queries scored at once: bounds the score block to 2**27 floats (512 MiB) however many queries there are.
SCORE_BLOCK_ELEMENTS = 2**27


def search(
    query_embeddings: torch.Tensor,
    corpus_embeddings: torch.Tensor,
    similarity,
    corpus_ids: list[str],
    top_k: int = TOP_K,
    with_scores: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[list[float]]]:
    """Exact top-k corpus indices per query, ordered by (score descending, document id ascending).

    The order is InformationRetrievalEvaluator's: documents with equal scores are ranked by their id as a
    string, so the result does not depend on chunking or on how ``torch.topk`` breaks ties.

    Args:
        query_embeddings: ``[queries, dim]``.
        corpus_embeddings: ``[documents, dim]`` on the same device.
        similarity: The model's similarity function (``SentenceTransformer.similarity``).
        corpus_ids: Document ids aligned with ``corpus_embeddings``.
        top_k: Ranks kept per query.
        with_scores: Also return each ranked document's score (for run files).

    Returns:
        The indices per query; with ``with_scores``, ``(indices, scores)``.
    """
    import torch

    n_docs = len(corpus_ids)
    device = corpus_embeddings.device
    order = sorted(range(n_docs), key=corpus_ids.__getitem__)
    id_rank = torch.empty(n_docs, dtype=torch.long, device=device)
    id_rank[torch.tensor(order, device=device)] = torch.arange(n_docs, device=device)

    rankings: list[list[int]] = []
    scores_out: list[list[float]] = []
    chunk_size = min(CORPUS_CHUNK_SIZE, n_docs)
    block = max(1, SCORE_BLOCK_ELEMENTS // chunk_size)
    for q_start in range(0, len(query_embeddings), block):
        queries = query_embeddings[q_start : q_start + block]
        best_scores = best_idx = None
        for start in range(0, n_docs, chunk_size):
            scores = similarity(queries, corpus_embeddings[start : start + chunk_size])
            chunk_rank = id_rank[start : start + chunk_size]
            top_scores, top_idx = _chunk_top_k(scores, chunk_rank, n_docs, min(top_k, scores.shape[1]))
            top_idx += start
            if best_scores is not None:
                top_scores, top_idx = torch.cat([best_scores, top_scores], 1), torch.cat([best_idx, top_idx], 1)
            best_scores, best_idx = _sort_by_score_then_id(top_scores, top_idx, id_rank, top_k)
        rankings.extend(best_idx.tolist())
        if with_scores:
            scores_out.extend(best_scores.float().tolist())
    return (rankings, scores_out) if with_scores else rankings


def _chunk_top_k(
    scores: torch.Tensor, chunk_id_rank: torch.Tensor, n: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best documents of one chunk per query under (score desc, id asc); chunk-local indices."""
    import torch

    top_scores, top_idx = scores.topk(k, dim=1)
    # torch.topk breaks ties arbitrarily: where the k-th score is tied with documents left out, choose
    # among the tied ones by id, with one integer key per document: scores above the k-th first, then
    # the tied ones by id rank (< n, the number of documents), then the rest.
    threshold = top_scores[:, -1:]
    tied_rows = ((scores >= threshold).sum(1) > k).nonzero().squeeze(1)
    if len(tied_rows):
        rows = scores[tied_rows]
        key = torch.where(rows > threshold[tied_rows], chunk_id_rank, 2 * n)
        key = torch.where(rows == threshold[tied_rows], chunk_id_rank + n, key)
        chosen = key.topk(k, dim=1, largest=False).indices
        top_idx[tied_rows] = chosen
        top_scores[tied_rows] = rows.gather(1, chosen)
    return top_scores, top_idx


def _sort_by_score_then_id(scores: torch.Tensor, idx: torch.Tensor, id_rank: torch.Tensor, k: int):
    """Sort candidates by id, then stably by score descending: (score desc, id asc); keep the first k."""
    by_id = id_rank[idx].argsort(dim=1)
    scores, idx = scores.gather(1, by_id), idx.gather(1, by_id)
    by_score = scores.argsort(dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, by_score), idx.gather(1, by_score)
