"""The joint softmax partition shared by both bidirectional losses (MNBRL and its GradCache twin CMNBRL): the
blocks and their diagnostics, gathering rows across processes, and the loss of one process's rows over the world's
batch (through the tiled kernel, ``kernel.py``, for cosine and dot similarity; directly otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
from sentence_transformers.util import (
    all_gather_with_grad,
    cos_sim,
    dot_score,
    is_dist_initialized,
)
from torch import Tensor, nn
from torch.nn import functional as F

from .kernel import joint_log_partition

DocDocMask = Literal["same_query", "self"]
DOC_DOC_MASKS: tuple[str, ...] = ("same_query", "self")

# The four similarity blocks of the joint partition, in the order they are concatenated.
BLOCKS: tuple[str, ...] = ("q->d", "q->q", "d->q", "d->d")
# Names of the partition diagnostics: each block's share of the softmax mass, then the positive's mass.
PARTITION_STATS: tuple[str, ...] = (*BLOCKS, "positive")

CITATION = """
@misc{li2023generaltextembeddingsmultistage,
      title={Towards General Text Embeddings with Multi-stage Contrastive Learning},
      author={Zehan Li and Xin Zhang and Yanzhao Zhang and Dingkun Long and Pengjun Xie and Meishan Zhang},
      year={2023},
      eprint={2308.03281},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2308.03281},
}
"""


class PartitionTracker:
    """Running mean of the partition diagnostics (:data:`PARTITION_STATS`) since the last :meth:`pop`.

    Only the widest embeddings count. Under MatryoshkaLoss the loss runs once per dimension, and the shares at
    a truncated dimension describe another, smaller model: the tracker keeps the diagnostics of the widest
    dimension it has seen (the model's full dimension whenever ``matryoshka_dims`` holds it, as
    sentence-transformers urges) and ignores narrower ones. Under AdaptiveLayerLoss and Matryoshka2dLoss the
    losses of the earlier layers are not recorded either (see :func:`replays_an_earlier_layer`).

    Sums stay on the device as tensors so that recording a step costs no host synchronisation;
    only :meth:`pop`, called at logging steps, converts them to floats.
    """

    def __init__(self) -> None:
        self._sum: Tensor | None = None
        self._count = 0
        self._width = 0  # the embedding dimension being averaged: the widest seen so far

    def add(self, stats: Tensor, width: int = 0) -> None:
        """Record one loss computation's diagnostics, computed from embeddings of dimension ``width``."""
        if width < self._width:
            return
        if width > self._width:  # a wider dimension than recorded so far: what was recorded was a truncation
            self._sum, self._count, self._width = None, 0, width
        stats = stats.detach().double()
        self._sum = stats if self._sum is None else self._sum + stats
        self._count += 1

    def pop(self) -> dict[str, float] | None:
        """The mean of each diagnostic over the steps recorded since the last call, or None if none were."""
        if self._sum is None:
            return None
        means = (self._sum / self._count).tolist()
        self._sum, self._count = None, 0
        return dict(zip(PARTITION_STATS, means))


def replays_an_earlier_layer(model: nn.Module | None) -> bool:
    """True while AdaptiveLayerLoss (or Matryoshka2dLoss) computes the loss of a layer before the last.

    It then replaces the forward of the model's first module by its ``TransformerDecorator``, whose ``layer_idx``
    names the layer (None during the last layer's pass).
    """
    try:
        first = model[0]
    except (TypeError, IndexError, KeyError):
        return False
    return getattr(getattr(first, "forward", None), "layer_idx", None) is not None


def resolve_scale(scale: float | None, temperature: float | None, default: float = 20.0) -> float:
    """``scale`` and ``temperature`` are two names for one knob (scale = 1 / temperature)."""
    if scale is not None and temperature is not None and abs(scale * temperature - 1.0) > 1e-9:
        raise ValueError(f"Give either scale ({scale}) or temperature ({temperature}), not two different values.")
    if temperature is not None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        return 1.0 / temperature
    scale = default if scale is None else scale
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return float(scale)


def gather(
    queries: Tensor, docs: list[Tensor], gather_across_devices: bool
) -> tuple[Tensor, list[Tensor], int, list[int]]:
    """All-gather queries and document columns (with gradients) when asked.

    Returns the world's queries, the world's document columns, the offset of this rank's rows, and every
    rank's number of rows. Processes may hold different numbers of rows (a last, smaller batch, or
    ``dataloader_drop_last`` off): each rank's offset is the sum of the sizes of the ranks before it.
    Without an initialised process group, gathering is a no-op and the offset is 0.
    """
    if not gather_across_devices or not is_dist_initialized():
        return queries, docs, 0, [queries.size(0)]
    sizes = _gather_sizes(queries)
    offset = sum(sizes[: dist.get_rank()])
    return _gather_rows(queries, sizes), [_gather_rows(d, sizes) for d in docs], offset, sizes


def _gather_sizes(x: Tensor) -> list[int]:
    """Every rank's number of rows (one tiny all_gather; its values are needed on the host for the offsets)."""
    local = torch.tensor([x.size(0)], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return torch.cat(sizes).tolist()


def _gather_rows(x: Tensor, sizes: list[int]) -> Tensor:
    """sentence-transformers' ``all_gather_with_grad``, for ranks holding different numbers of rows.

    sentence-transformers 6.3 gathers through ``torch.distributed.nn.all_gather``, which needs the same shape on
    every rank (gloo aborts with "Received data size doesn't match expected size"; its ``all_gather_padded``
    pads the token axis of multi-vector embeddings, not the batch axis), and its own losses take the offset as
    ``rank * batch_size``. So: pad to the largest rank's rows, gather with gradients, and cut each rank's padding
    off. The padding rows are never used, so their gradient is zero and nothing leaks into the real rows.
    """
    most = max(sizes)
    if x.size(0) == most and min(sizes) == most:
        return all_gather_with_grad(x)
    padded = F.pad(x, (0, 0, 0, most - x.size(0)))
    parts = all_gather_with_grad(padded).split(most)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def _upcast(x: Tensor) -> Tensor:
    # Under fp16/bf16 autocast the logits and their logsumexp lose too much precision: compute in fp32.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _exclude(logits: Tensor, rows: Tensor, columns: Tensor) -> Tensor:
    """Set logits[rows[k], columns[k]] to -inf (out of the partition), out of place."""
    return logits.index_put((rows, columns), logits.new_tensor(-torch.inf))


# Similarity functions the tiled kernel computes itself: whether it normalises the embeddings first.
# Any other callable takes the plain path below.
KERNEL_SIMILARITIES: dict[Callable[[Tensor, Tensor], Tensor], bool] = {cos_sim: True, dot_score: False}


def bidirectional_loss(
    queries: Tensor,
    docs: list[Tensor],
    *,
    local_batch_size: int,
    offset: int,
    scale: float,
    similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
    doc_doc_mask: DocDocMask = "same_query",
) -> tuple[Tensor, Tensor]:
    """The joint-partition loss for this rank's rows.

    Cosine and dot-product similarity go through the tiled kernel (:mod:`bidir_cli.losses.kernel`), which
    never holds the whole logit matrix when it is large and skips the products that symmetry repeats; any other
    ``similarity_fct`` goes through :func:`plain_bidirectional_loss`, the readable reference.

    Args:
        queries: (W, D) the world's queries.
        docs: K tensors of (W, D): the world's positives, then each hard-negative column.
        local_batch_size: B, the number of rows this rank owns.
        offset: this rank's first row: the earlier ranks' rows (``rank * B`` when all hold B).
        scale: inverse temperature.
        similarity_fct: similarity between two batches of embeddings, (m, D) x (n, D) -> (m, n).
        doc_doc_mask: which documents are left out of row i's d->d block (see the class docstring).

    Returns:
        The mean loss over local rows, and the detached partition diagnostics (:data:`PARTITION_STATS`),
        each averaged over local rows.
    """
    check_doc_doc_mask(doc_doc_mask)
    normalize = KERNEL_SIMILARITIES.get(similarity_fct)
    if normalize is None:
        return plain_bidirectional_loss(
            queries,
            docs,
            local_batch_size=local_batch_size,
            offset=offset,
            scale=scale,
            similarity_fct=similarity_fct,
            doc_doc_mask=doc_doc_mask,
        )
    with torch.autocast(device_type=queries.device.type, enabled=False):
        log_z, blocks, positive = joint_log_partition(
            _upcast(queries),
            [_upcast(d) for d in docs],
            local_batch_size=local_batch_size,
            offset=offset,
            scale=scale,
            normalize=normalize,
            doc_doc_mask=doc_doc_mask,
        )
        loss = (log_z - positive).mean()
        with torch.no_grad():
            shares = torch.exp(blocks - log_z[:, None])
            stats = torch.cat([shares, torch.exp(positive - log_z)[:, None]], dim=1).mean(dim=0)
    return loss, stats


def gathered_loss(settings, anchors: Tensor, documents: list[Tensor]) -> tuple[Tensor, Tensor]:
    """This process's loss and diagnostics from its (anchor, document columns) embeddings, gathered across
    processes when ``settings.gather_across_devices``; ``settings`` is either bidirectional loss, whose
    ``scale``, ``similarity_fct`` and ``doc_doc_mask`` apply.

    With gathering across P processes holding B_r rows each (W in all), this process's loss is its rows' sum
    divided by W / P, not by B_r: DDP averages the processes' gradients, and this weighting makes that average
    the gradient of the mean over the world batch, as one process on all W rows would have it, also when the
    B_r differ (with equal batches it is the mean over local rows). The diagnostics are averaged over all W
    rows, every rank's, so that every process holds the same, world-wide figures.
    """
    local = anchors.size(0)
    queries, docs, offset, sizes = gather(anchors, documents, settings.gather_across_devices)
    loss, stats = bidirectional_loss(
        queries,
        docs,
        local_batch_size=local,
        offset=offset,
        scale=settings.scale,
        similarity_fct=settings.similarity_fct,
        doc_doc_mask=settings.doc_doc_mask,
    )
    if len(sizes) > 1:
        world_rows = sum(sizes)
        loss = loss * (local * len(sizes) / world_rows)
        stats = stats * local  # each rank's row sums, added up over ranks, over all rows
        dist.all_reduce(stats)
        stats = stats / world_rows
    return loss, stats


def plain_bidirectional_loss(
    queries: Tensor,
    docs: list[Tensor],
    *,
    local_batch_size: int,
    offset: int,
    scale: float,
    similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
    doc_doc_mask: DocDocMask = "same_query",
) -> tuple[Tensor, Tensor]:
    """The joint-partition loss for this rank's rows, computed directly (the reference path).

    Builds the four logit blocks with ``similarity_fct`` and autograd: about 18 bytes per logit. Same
    arguments and return value as :func:`bidirectional_loss`.
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        queries = _upcast(queries)
        docs = [_upcast(d) for d in docs]
        world, num_columns = queries.size(0), len(docs)
        rows = torch.arange(local_batch_size, device=queries.device)
        own = rows + offset  # each local row's index among the world's queries
        docs_all = torch.cat(docs)  # (W*K, D): positives first, then each negative column
        local_queries, local_positives = queries[own], docs[0][own]

        # q->d: every document, the positive included (it is the numerator).
        q_d = similarity_fct(local_queries, docs_all) * scale
        # q->q: every other query.
        q_q = _exclude(similarity_fct(local_queries, queries) * scale, rows, own)
        # d->q: s(q_j, d+_i) for every query j; j = i stays, as in the paper.
        d_q = similarity_fct(queries, local_positives).T * scale
        # d->d: s(d_j, d+_i) for every document but d+_i itself, or but every document of query i.
        d_d = similarity_fct(docs_all, local_positives).T * scale
        check_doc_doc_mask(doc_doc_mask)
        if doc_doc_mask == "same_query":
            same_query = torch.zeros(local_batch_size, world, dtype=torch.bool, device=queries.device)
            same_query[rows, own] = True
            d_d = d_d.masked_fill(same_query.repeat(1, num_columns), -torch.inf)
        else:  # "self"
            d_d = _exclude(d_d, rows, own)

        blocks = (q_d, q_q, d_q, d_d)
        logits = torch.cat(blocks, dim=1)
        log_z = torch.logsumexp(logits, dim=1)
        positive = q_d[rows, own]
        loss = (log_z - positive).mean()

        with torch.no_grad():
            shares = [torch.exp(torch.logsumexp(b, dim=1) - log_z) for b in blocks]
            stats = torch.stack([*shares, torch.exp(positive - log_z)], dim=1).mean(dim=0)
    return loss, stats


def check_doc_doc_mask(doc_doc_mask: str) -> None:
    """The one check of ``doc_doc_mask``'s value (every loss and function that takes it calls this)."""
    if doc_doc_mask not in DOC_DOC_MASKS:
        raise ValueError(f"doc_doc_mask must be one of {DOC_DOC_MASKS}, got {doc_doc_mask!r}")
