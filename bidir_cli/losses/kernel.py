"""A memory-lean, fast computation of MNBRL's joint log-partition: tiled, with a custom backward pass.

The plain path in :mod:`bidir_cli.losses.bidirectional` builds four logit blocks, concatenates them and lets
autograd keep every intermediate: about 18 bytes per logit. This kernel computes the same log-partition
``log Z_i`` of every local row with far fewer passes over the logits and far less memory:

* **One product.** Row i's logits are the scaled similarities of two *row embeddings*, its query q_i and its
  positive d+_i, with the *column embeddings* ``Y = [queries; positives; negative columns]``: q_i against the
  documents gives q->d and against the queries q->q; d+_i against the queries gives d->q and against the
  documents d->d. So all four blocks are ``X @ Y.T`` with ``X = [local queries; local positives]``, plus a
  handful of masked entries (q_i itself in q->q, query i's documents in d->d). Cosine similarity normalises
  ``Y`` once; dot product uses it as it is.
* **Tiles** (the idea of Inf-CL, Wang et al. 2024, "Breaking the Memory Barrier"). Rows are processed in
  strips of ``tile_rows``: a strip's logits are made, exponentiated and summed, and only each row's
  log-partition survives. The backward pass rebuilds each strip (or takes it from a cache while the strips'
  total fits ``cache_bytes``, which saves a quarter of the matrix products) and turns it into gradients.
* **Symmetry.** Without gathering, ``X`` is the first 2B rows of ``Y``, so ``X @ Y[:2B].T`` is symmetric:
  d->q is the transpose of q->d's positive part, and q->q and d->d's positive part are symmetric. A strip of
  rows [lo, hi) therefore only computes columns from ``lo`` on; its entries right of the diagonal tile also
  serve, transposed, as the row sums of the later rows (column sums here). That skips about half of the
  query/positive products, less the diagonal tiles (computed whole): 30 to 37% of all the reference's.
* **A known shift.** Cosine logits lie in [-scale, scale], so ``exp(logit - scale)`` can neither overflow nor
  (for the scales allowed by :func:`_bounded`) underflow: row and column sums need no running maximum, and the
  forward pass's exponentials are exactly what the backward pass needs. Dot product (unbounded) subtracts
  each row's maximum instead, and then skips the symmetry (column sums would need their own maxima).

Everything is computed in the inputs' dtype (the caller upcasts half precision to float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

# Bytes of logits one strip of rows may hold. Large enough that each strip's products are efficient matrix
# multiplications (the backward pass adds a rank-`tile_rows` update into the gradient of every column, so a thin
# strip would be bound by memory traffic), small enough to be negligible next to the embeddings of big batches.
TILE_BYTES = 64 * 2**20
# Fewest rows in a strip, whatever TILE_BYTES says (see above); a batch smaller than this is one strip per half.
MIN_TILE_ROWS = 256
# Keep the strips' exponentials from the forward pass for the backward pass while their total stays under this
# many bytes: it saves recomputing the products (a quarter of the work). Above it, strips are recomputed and the
# loss's memory stays at one strip whatever the batch size.
CACHE_BYTES = 2**30


@dataclass(frozen=True)
class Layout:
    """Where the rows and columns of the logit matrix live in ``Y = [queries (W); docs (W each, K columns)]``.

    Attributes:
        world: W, the number of queries after gathering.
        local: B, the number of rows this rank owns.
        offset: this rank's first row among the world's queries.
        symmetric: True when ``X`` is the first 2B rows of ``Y`` (no gathering: W = B), so that a strip
            only computes columns from its own first row on and also fills later rows' sums.
        rows_start: (queries, positives): where this rank's B queries and B positives start in ``Y``.
        masked: (2B, K) the columns of ``Y`` left out of each row's partition (repeated to a common width).
        tiles: row ranges [lo, hi) of the strips, each within the query half or within the positive half.
    """

    world: int
    local: int
    offset: int
    symmetric: bool
    rows_start: tuple[int, int]
    masked: Tensor
    tiles: tuple[tuple[int, int], ...]

    def rows(self, lo: int, hi: int) -> slice:
        """The rows of ``Y`` that are rows [lo, hi) of ``X``; a strip never straddles the two halves."""
        half = 0 if hi <= self.local else 1
        start = self.rows_start[half] + lo - half * self.local
        return slice(start, start + hi - lo)

    def first_column(self, lo: int) -> int:
        """The first column a strip starting at row ``lo`` computes."""
        return lo if self.symmetric else 0

    def partner_columns(self, hi: int) -> tuple[int, int]:
        """Columns [hi, 2B) of a symmetric strip, whose entries also belong, transposed, to rows hi..2B."""
        return (hi, 2 * self.local) if self.symmetric else (0, 0)


def make_layout(
    world: int, local: int, offset: int, num_columns: int, doc_doc_mask: str, tile_rows: int, device, symmetric: bool
) -> Layout:
    """The row indices, the masked columns and the strips for one loss computation."""
    own = torch.arange(local, device=device) + offset  # each local row's index among the world's queries
    # q_i leaves out itself (q->q); d+_i leaves out itself (d->d) and, with "same_query", its query's negatives.
    query_masked = own[:, None].expand(local, num_columns)
    columns = (
        torch.arange(num_columns, device=device)
        if doc_doc_mask == "same_query"
        else torch.zeros(num_columns, dtype=torch.long, device=device)
    )
    doc_masked = world + own[:, None] + columns[None, :] * world
    tiles = tuple(
        (lo, min(lo + tile_rows, half_start + local))
        for half_start in (0, local)
        for lo in range(half_start, half_start + local, tile_rows)
    )
    # q_i is Y[offset + i] and d+_i is Y[W + offset + i].
    rows_start = (offset, world + offset)
    return Layout(world, local, offset, symmetric, rows_start, torch.cat([query_masked, doc_masked]), tiles)


def _bounded(normalize: bool, scale: float, dtype: torch.dtype) -> bool:
    """True when every logit lies in [-scale, scale] and exp(logit - scale) stays a normal number."""
    # exp(-2 * scale) must stay well above the smallest normal float (float32: e^-87) so that a row whose
    # logits are all near -scale keeps its precision, and exp(scale - log Z) <= exp(2 * scale) (the backward
    # pass's row factor) must stay finite; beyond that, fall back to per-row maxima.
    return normalize and 2 * scale <= 0.9 * -math.log(torch.finfo(dtype).tiny)


def _strip(y: Tensor, x_scaled: Tensor, start: int, masked: Tensor, shift: Tensor | None) -> tuple[Tensor, Tensor]:
    """exp(logits - shift) of one strip of rows against the columns ``y[start:]``, masked entries zero.

    ``shift`` is each row's known bound on its logits; None means "use the row maximum" (returned either way).
    """
    p = x_scaled @ y[start:].T
    p.scatter_(1, masked - start, -torch.inf)
    if shift is None:
        shift = p.amax(dim=1)
    return p.sub_(shift[:, None]).exp_(), shift


class _JointLogPartition(torch.autograd.Function):
    """Each local row's log Z_i, block log-partitions and positive logit from ``Y``; gradients flow to ``Y``."""

    @staticmethod
    def forward(ctx, y: Tensor, layout: Layout, scale: float, bounded: bool, cache: bool):
        two_b, device = 2 * layout.local, y.device
        num_queries = layout.world  # columns [0, W) of Y are queries, the rest documents
        # mass[r, s]: sum over row r's logits in segment s (0: query columns, 1: document columns) of
        # exp(logit - shift[r]). With a known bound every row shares the shift `scale`.
        shift = torch.full((two_b,), scale, dtype=y.dtype, device=device) if bounded else None
        mass = y.new_zeros(two_b, 2)
        strips: list[Tensor] = []
        shifts = []
        for lo, hi in layout.tiles:
            start = layout.first_column(lo)
            p, strip_shift = _strip(
                y, y[layout.rows(lo, hi)] * scale, start, layout.masked[lo:hi], None if shift is None else shift[lo:hi]
            )
            shifts.append(strip_shift)
            split = max(num_queries - start, 0)
            mass[lo:hi, 0] += p[:, :split].sum(dim=1)
            mass[lo:hi, 1] += p[:, split:].sum(dim=1)
            p_lo, p_hi = layout.partner_columns(hi)
            if p_hi > p_lo:  # these rows are, for rows p_lo..p_hi, columns of one segment: queries or positives
                segment = 0 if hi <= layout.local else 1
                mass[p_lo:p_hi, segment] += p[:, p_lo - start : p_hi - start].sum(dim=0)
            if cache:
                strips.append(p)
        shift = torch.cat(shifts)
        # Block log-partitions of local row i: its query's row holds q->q (segment 0) and q->d (segment 1),
        # its positive's row d->q (segment 0) and d->d (segment 1). An empty or fully masked block is -inf.
        segment_lse = torch.log(mass) + shift[:, None]
        local = layout.local
        blocks = torch.stack(
            [segment_lse[:local, 1], segment_lse[:local, 0], segment_lse[local:, 0], segment_lse[local:, 1]], dim=1
        )
        log_z = torch.logsumexp(blocks, dim=1)
        queries, positives = y[layout.rows(0, local)], y[layout.rows(local, 2 * local)]
        positive = scale * (queries * positives).sum(dim=1)
        ctx.save_for_backward(y, shift, log_z)
        ctx.layout, ctx.scale, ctx.strips = layout, scale, strips
        ctx.mark_non_differentiable(blocks)
        return log_z, blocks, positive

    @staticmethod
    def backward(ctx, grad_log_z: Tensor, _grad_blocks: Tensor | None, grad_positive: Tensor):
        y, shift, log_z = ctx.saved_tensors
        layout, scale = ctx.layout, ctx.scale
        strips, ctx.strips = ctx.strips, []  # consumed: a second backward pass recomputes
        with torch.autocast(device_type=y.device.type, enabled=False):
            # d log Z_i / d logit[r, c] = exp(logit - log Z_i) = exp(logit - shift[r]) * exp(shift[r] - log Z_i):
            # each strip entry times its row's factor u[r] (and, transposed, its partner row's factor).
            u = torch.cat([grad_log_z, grad_log_z]) * torch.exp(shift - torch.cat([log_z, log_z]))
            grad_y = torch.zeros_like(y)
            grad_x = y.new_empty(2 * layout.local, y.size(1))
            strips.reverse()
            for lo, hi in layout.tiles:
                start = layout.first_column(lo)
                x_scaled = y[layout.rows(lo, hi)] * scale
                if strips:
                    p = strips.pop()
                else:
                    p, _ = _strip(y, x_scaled, start, layout.masked[lo:hi], shift[lo:hi])
                p_lo, p_hi = layout.partner_columns(hi)
                row_factor = u[lo:hi, None]
                if p_hi > p_lo:
                    p[:, p_lo - start : p_hi - start] *= row_factor + u[None, p_lo:p_hi]
                    p[:, : p_lo - start] *= row_factor
                    p[:, p_hi - start :] *= row_factor
                else:
                    p *= row_factor
                # logits = x_scaled @ y[start:].T, so: d/dx = scale * p @ y[start:], d/dy[start:] = p.T @ x_scaled.
                torch.mm(p, y[start:], out=grad_x[lo:hi])
                grad_y[start:].addmm_(p.T, x_scaled)
                del p
            # The positive logit scale * q_i . d+_i, and the rows' own gradients, land in the rows' embeddings.
            local = layout.local
            queries, positives = layout.rows(0, local), layout.rows(local, 2 * local)
            grad_x[:local].addcmul_(grad_positive[:, None], y[positives])
            grad_x[local:].addcmul_(grad_positive[:, None], y[queries])
            grad_x.mul_(scale)
            grad_y[queries] += grad_x[:local]
            grad_y[positives] += grad_x[local:]
        return grad_y, None, None, None, None


def joint_log_partition(
    queries: Tensor,
    docs: list[Tensor],
    *,
    local_batch_size: int,
    offset: int,
    scale: float,
    normalize: bool,
    doc_doc_mask: str,
    tile_rows: int | None = None,
    cache_bytes: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Each local row's log-partition, its four block log-partitions, and its positive logit.

    Args:
        queries: (W, D) the world's queries.
        docs: K tensors of (W, D): the world's positives, then each hard-negative column.
        local_batch_size: B, the rows this rank owns.
        offset: this rank's first row: the earlier ranks' rows (``rank * B`` when all hold B).
        scale: inverse temperature.
        normalize: True for cosine similarity, False for dot product.
        doc_doc_mask: ``"same_query"`` or ``"self"``.
        tile_rows: rows per strip; None derives it from :data:`TILE_BYTES` and :data:`MIN_TILE_ROWS`.
        cache_bytes: keep the strips for the backward pass up to this many bytes; None means :data:`CACHE_BYTES`.

    Returns:
        ``log_z`` (B,), differentiable; the detached block log-partitions (B, 4) in the order of
        :data:`~bidir_cli.losses.partition.BLOCKS`; and the positive logit ``scale * s(q_i, d+_i)`` (B,),
        differentiable.
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        return _joint_log_partition(
            queries, docs, local_batch_size, offset, scale, normalize, doc_doc_mask, tile_rows, cache_bytes
        )


def _joint_log_partition(
    queries, docs, local_batch_size, offset, scale, normalize, doc_doc_mask, tile_rows, cache_bytes
) -> tuple[Tensor, Tensor, Tensor]:
    world, num_columns, local = queries.size(0), len(docs), local_batch_size
    y = torch.cat([queries, *docs])
    if normalize:
        y = F.normalize(y, p=2, dim=-1)  # as sentence-transformers' cos_sim does
    bounded = _bounded(normalize, scale, y.dtype)
    width = y.size(0)  # columns of the widest strip
    if tile_rows is None:
        tile_rows = max(MIN_TILE_ROWS, TILE_BYTES // (width * y.element_size()))
    tile_rows = max(1, min(tile_rows, local))
    tile_rows = math.ceil(local / math.ceil(local / tile_rows))  # even strips, not full ones and a sliver
    layout = make_layout(
        world,
        local,
        offset,
        num_columns,
        doc_doc_mask,
        tile_rows,
        y.device,
        # Symmetry needs every row's own columns first in Y (no gathering) and column sums under a shared shift.
        symmetric=world == local and offset == 0 and bounded,
    )
    needs_grad = torch.is_grad_enabled() and y.requires_grad
    strip_elements = sum((hi - lo) * (width - layout.first_column(lo)) for lo, hi in layout.tiles)
    cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
    cache = needs_grad and strip_elements * y.element_size() <= cache_bytes
    return _JointLogPartition.apply(y, layout, scale, bounded, cache)
