"""The tiled loss kernel against independent computations: the plain path, the sentence-transformers oracle,
finite differences (gradcheck), and a two-process gather. Tiny tiles force many strips per half."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.util import cos_sim, dot_score

from bidir_cli.losses import (
    CachedMultipleNegativesBidirectionalRankingLoss,
    MultipleNegativesBidirectionalRankingLoss,
    kernel,
    partition,
)
from bidir_cli.losses.partition import bidirectional_loss, plain_bidirectional_loss

GTE_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
SIMILARITIES = {"cosine": (cos_sim, 20.0), "dot": (dot_score, 0.5)}


@pytest.fixture
def tiny_tiles(monkeypatch):
    """Strips of 3 rows (unless a test says otherwise), whatever the batch: every loss goes through many tiles."""
    monkeypatch.setattr(kernel, "TILE_BYTES", 0)
    monkeypatch.setattr(kernel, "MIN_TILE_ROWS", 3)


def columns_of(batch, num_negatives, dtype=torch.float64, seed=0, dim=6, world=None):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(world or batch, dim, dtype=dtype, generator=gen) for _ in range(2 + num_negatives)]


def loss_and_grads(fn, columns):
    inputs = [c.clone().requires_grad_() for c in columns]
    loss, stats = fn(inputs)
    loss.backward()
    return loss.detach(), stats, [x.grad for x in inputs]


def assert_close_grads(ours, expected, rel):
    for a, b in zip(ours, expected):
        # Relative to the largest entry, but at least to 1: a single pair's loss is the constant log 2, so its
        # gradient is pure rounding (about scale * eps), which no relative tolerance could compare.
        torch.testing.assert_close(a, b, rtol=rel, atol=rel * max(b.abs().max().item(), 1.0))


# --- 1. Against the plain path, many strips, cached or recomputed ----------------------------------------------------


@pytest.mark.parametrize("batch", [7, 1])  # 7 rows in strips of 3: a ragged last strip in each half
@pytest.mark.parametrize("num_negatives", [0, 1, 3])
@pytest.mark.parametrize("doc_doc_mask", ["same_query", "self"])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("cache_bytes", [0, 2**30], ids=["recompute", "cached"])
def test_kernel_equals_plain_path(batch, num_negatives, doc_doc_mask, similarity, cache_bytes, monkeypatch):
    monkeypatch.setattr(kernel, "CACHE_BYTES", cache_bytes)
    fct, scale = SIMILARITIES[similarity]
    columns = columns_of(batch, num_negatives, seed=batch + num_negatives)
    common = dict(local_batch_size=batch, offset=0, scale=scale, similarity_fct=fct, doc_doc_mask=doc_doc_mask)

    def ours(x):
        return bidirectional_loss(x[0], x[1:], **common)

    def plain(x):
        return plain_bidirectional_loss(x[0], x[1:], **common)

    for tile_rows in (1, 3):
        monkeypatch.setattr(kernel, "TILE_BYTES", 0)
        monkeypatch.setattr(kernel, "MIN_TILE_ROWS", tile_rows)
        loss, stats, grads = loss_and_grads(ours, columns)
        expected_loss, expected_stats, expected_grads = loss_and_grads(plain, columns)
        assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-9)
        torch.testing.assert_close(stats, expected_stats, rtol=1e-9, atol=1e-12)  # the partition diagnostics
        assert_close_grads(grads, expected_grads, rel=1e-9)


@pytest.mark.parametrize("rank", [0, 1, 2])
@pytest.mark.parametrize("doc_doc_mask", ["same_query", "self"])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_kernel_equals_plain_path_for_one_rank_of_a_gathered_batch(rank, doc_doc_mask, similarity, tiny_tiles):
    """With gathering, a rank owns rows [rank*B, rank*B + B) of the world's W = 3B: no symmetry to exploit."""
    fct, scale = SIMILARITIES[similarity]
    batch = 5
    columns = columns_of(batch, 2, world=3 * batch, seed=rank)
    common = dict(local_batch_size=batch, offset=rank * batch, scale=scale, similarity_fct=fct)
    loss, stats, grads = loss_and_grads(
        lambda x: bidirectional_loss(x[0], x[1:], doc_doc_mask=doc_doc_mask, **common), columns
    )
    expected_loss, expected_stats, expected_grads = loss_and_grads(
        lambda x: plain_bidirectional_loss(x[0], x[1:], doc_doc_mask=doc_doc_mask, **common), columns
    )
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-9)
    torch.testing.assert_close(stats, expected_stats, rtol=1e-9, atol=1e-12)
    assert_close_grads(grads, expected_grads, rel=1e-9)
    # The other ranks' rows get gradients too: they are negatives here (all_gather_with_grad sums them back).
    assert all(g[: rank * batch].abs().sum() > 0 or rank == 0 for g in grads)


# exp(logit - 1) overflows at these scales (float32: e^88, float64: e^709): the shift must be the row maximum.
@pytest.mark.parametrize("dtype,scale", [(torch.float32, 100.0), (torch.float64, 1000.0)])
def test_large_scale_uses_row_maxima_and_still_matches(dtype, scale, tiny_tiles):
    """Past the scale where exp(logit - scale) could underflow, the kernel shifts by each row's maximum."""
    assert not kernel._bounded(True, scale, dtype)
    columns = columns_of(7, 1, dtype=dtype, seed=3)
    common = dict(local_batch_size=7, offset=0, scale=scale, doc_doc_mask="same_query")
    loss, stats, grads = loss_and_grads(lambda x: bidirectional_loss(x[0], x[1:], **common), columns)
    expected_loss, expected_stats, expected_grads = loss_and_grads(
        lambda x: plain_bidirectional_loss(x[0], x[1:], **common), columns
    )
    rel = 1e-9 if dtype == torch.float64 else 1e-5
    assert loss.item() == pytest.approx(expected_loss.item(), rel=rel)
    torch.testing.assert_close(stats, expected_stats, rtol=rel, atol=rel)
    assert_close_grads(grads, expected_grads, rel=rel)


# --- 2. Against the sentence-transformers oracle ---------------------------------------------------------------------


@pytest.mark.parametrize("batch", [7, 1])
@pytest.mark.parametrize("num_negatives", [0, 1, 3])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_tiled_loss_and_gradients_equal_sentence_transformers_joint_mode(
    batch, num_negatives, similarity, dtype, rel, tiny_tiles
):
    fct, scale = SIMILARITIES[similarity]
    columns = columns_of(batch, num_negatives, dtype=dtype, seed=20 + num_negatives, dim=12)
    ours_fn = MultipleNegativesBidirectionalRankingLoss(None, scale=scale, similarity_fct=fct)
    oracle_fn = MultipleNegativesRankingLoss(
        None, scale=scale, similarity_fct=fct, directions=GTE_DIRECTIONS, partition_mode="joint"
    )
    loss, _, grads = loss_and_grads(lambda x: (ours_fn.compute_loss_from_embeddings(x), None), columns)
    expected, _, expected_grads = loss_and_grads(
        lambda x: (oracle_fn.compute_loss_from_embeddings(x, None), None), columns
    )
    assert loss.item() == pytest.approx(expected.item(), rel=rel)
    assert_close_grads(grads, expected_grads, rel=rel)


# --- 3. Finite differences -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset,world", [(0, 4), (4, 12)], ids=["single", "gathered"])
@pytest.mark.parametrize("doc_doc_mask", ["same_query", "self"])
@pytest.mark.parametrize("normalize", [True, False], ids=["cosine", "dot"])
@pytest.mark.parametrize("cache_bytes", [0, 2**30], ids=["recompute", "cached"])
def test_custom_backward_passes_gradcheck(offset, world, doc_doc_mask, normalize, cache_bytes):
    """gradcheck differentiates numerically; it also runs backward more than once (the cache is used once)."""
    gen = torch.Generator().manual_seed(5)
    inputs = [torch.randn(world, 3, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(3)]

    def loss(q, p, n):
        log_z, _, positive = kernel.joint_log_partition(
            q, [p, n], local_batch_size=4, offset=offset, scale=2.0, normalize=normalize,
            doc_doc_mask=doc_doc_mask, tile_rows=3, cache_bytes=cache_bytes,
        )  # fmt: skip
        return log_z * torch.arange(1.0, 5.0, dtype=torch.float64) - positive  # unequal weights per row

    assert torch.autograd.gradcheck(loss, inputs)


def test_second_backward_recomputes_after_the_cache_is_spent():
    columns = columns_of(7, 1, seed=9)
    x = [c.clone().requires_grad_() for c in columns]
    log_z, _, positive = kernel.joint_log_partition(
        x[0], x[1:], local_batch_size=7, offset=0, scale=20.0, normalize=True, doc_doc_mask="same_query",
        tile_rows=3, cache_bytes=2**30,
    )  # fmt: skip
    loss = (log_z - positive).mean()
    loss.backward(retain_graph=True)
    first = [g.clone() for g in (t.grad for t in x)]
    loss.backward()
    for once, twice in zip(first, (t.grad for t in x)):
        torch.testing.assert_close(twice, 2 * once, rtol=1e-12, atol=1e-15)


# --- 4. Diagnostics, precision, dispatch -----------------------------------------------------------------------------


def test_kernel_diagnostics_match_hand_softmax_with_a_batch_of_one(tiny_tiles):
    """One pair: q->q and d->d are empty, so the partition is q->d (the positive) and d->q (the same pair)."""
    q, p = columns_of(1, 0, seed=4)
    _, stats = bidirectional_loss(q, [p], local_batch_size=1, offset=0, scale=20.0)
    torch.testing.assert_close(stats, torch.tensor([0.5, 0.0, 0.5, 0.0, 0.5], dtype=torch.float64))


def test_bf16_inputs_under_autocast_are_computed_in_fp32(tiny_tiles):
    """bf16 embeddings under bf16 autocast: the loss must be the fp32 computation on those bf16 numbers.

    The reference is the plain path in float64 on the same bf16-rounded inputs, so any difference is the
    kernel's own arithmetic: fp32 gives about 1e-7, bf16 arithmetic about 2e-3. Rounding the inputs to bf16
    moves the loss of this batch by about 2e-4 against the fp32 inputs, which 1e-3 also bounds. The gradient
    comes back in the inputs' dtype, bf16: it is compared at bf16's resolution (2**-8), the rounding it got.
    """
    columns = columns_of(8, 1, dtype=torch.float32, seed=6)
    common = dict(local_batch_size=8, offset=0, scale=20.0)
    fp32, _, _ = loss_and_grads(lambda x: bidirectional_loss(x[0], x[1:], **common), columns)
    rounded = [c.to(torch.bfloat16) for c in columns]
    expected, _, expected_grads = loss_and_grads(
        lambda x: plain_bidirectional_loss(x[0], x[1:], **common), [c.double() for c in rounded]
    )
    bf16_in = [c.clone().requires_grad_() for c in rounded]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = bidirectional_loss(bf16_in[0], bf16_in[1:], **common)
    loss.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() == pytest.approx(fp32.item(), rel=1e-3)
    for got, want in zip((x.grad for x in bf16_in), expected_grads):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.double(), want, rtol=2**-8, atol=2**-8 * want.abs().max().item())


def test_backward_inside_autocast_still_multiplies_in_fp32(tiny_tiles, monkeypatch):
    """A backward pass started inside an autocast region must not recompute the strips in bf16."""
    monkeypatch.setattr(kernel, "CACHE_BYTES", 0)
    columns = columns_of(8, 1, dtype=torch.float32, seed=7)

    def fn(x):
        return bidirectional_loss(x[0], x[1:], local_batch_size=8, offset=0, scale=20.0)

    _, _, expected = loss_and_grads(fn, columns)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, grads = loss_and_grads(fn, columns)
    assert_close_grads(grads, expected, rel=1e-6)


def test_other_similarity_functions_take_the_plain_path(monkeypatch):
    def manhattan(a, b):
        return -torch.cdist(a, b, p=1)

    def fail(*args, **kwargs):
        raise AssertionError("the kernel must not run for an arbitrary similarity function")

    monkeypatch.setattr(partition, "joint_log_partition", fail)
    columns = columns_of(4, 1)
    loss, _ = bidirectional_loss(
        columns[0], columns[1:], local_batch_size=4, offset=0, scale=1.0, similarity_fct=manhattan
    )
    assert torch.isfinite(loss)


def test_cached_loss_uses_the_kernel(tiny_bert, monkeypatch):
    calls = []
    original = partition.joint_log_partition

    def spy(*args, **kwargs):
        calls.append(kwargs["local_batch_size"])
        return original(*args, **kwargs)

    monkeypatch.setattr(partition, "joint_log_partition", spy)
    features = [tiny_bert.tokenize(["a cat runs", "the dog sits", "a red car"]) for _ in range(2)]
    CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=2)(features, None).backward()
    assert calls == [3]


def test_cached_equals_uncached_with_tiny_tiles(tiny_bert, tiny_tiles):
    tiny_bert.eval()
    texts = [
        "the cat runs",
        "a dog sits",
        "red car drives",
        "old tree grows",
        "blue bird flies",
        "cold water flows",
        "big house stands",
    ]
    features = [tiny_bert.tokenize(texts), tiny_bert.tokenize(texts[::-1]), tiny_bert.tokenize(texts[3:] + texts[:3])]
    tiny_bert.zero_grad()
    uncached = MultipleNegativesBidirectionalRankingLoss(tiny_bert)(features, None)
    uncached.backward()
    expected = {n: p.grad.clone() for n, p in tiny_bert.named_parameters() if p.grad is not None}
    tiny_bert.zero_grad()
    cached = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=3)(features, None)
    cached.backward()
    assert cached.item() == pytest.approx(uncached.item(), rel=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(dict(tiny_bert.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-5)


# --- 5. Across two processes, with tiny tiles -----------------------------------------------------------------------


def _gather_worker(rank, world_size, init_file, columns, out_file):
    import torch.distributed as dist

    from bidir_cli.losses import kernel as worker_kernel

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        worker_kernel.TILE_BYTES, worker_kernel.MIN_TILE_ROWS = 0, 2  # a spawned process starts from the defaults
        batch = columns[0].size(0) // world_size
        local = [c[rank * batch : (rank + 1) * batch].clone().requires_grad_() for c in columns]
        loss = MultipleNegativesBidirectionalRankingLoss(None, gather_across_devices=True).compute_loss_from_embeddings(
            local
        )
        loss.backward()
        grads = [torch.zeros(columns[0].shape, dtype=columns[0].dtype) for _ in columns]
        for g, x in zip(grads, local):
            g[rank * batch : (rank + 1) * batch] = x.grad
            dist.all_reduce(g)
        losses = [torch.zeros((), dtype=loss.dtype) for _ in range(world_size)]
        dist.all_gather(losses, loss.detach().reshape(()))
        if rank == 0:
            torch.save({"grads": grads, "losses": torch.stack(losses)}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.heavy
def test_gathered_kernel_gradients_reach_each_rank(tmp_path):
    """Each rank's gradient (all_gather_with_grad sums the others' contributions into it) equals world_size times
    the full batch's gradient, as DDP's averaging expects."""
    import torch.multiprocessing as mp

    columns = columns_of(10, 1, seed=11)
    out_file = tmp_path / "out.pt"
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), columns, str(out_file)), nprocs=2, join=True)
    result = torch.load(out_file)

    full = [c.clone().requires_grad_() for c in columns]
    loss, _ = plain_bidirectional_loss(full[0], full[1:], local_batch_size=10, offset=0, scale=20.0)
    loss.backward()
    assert result["losses"].mean().item() == pytest.approx(loss.item(), rel=1e-9)
    for got, x in zip(result["grads"], full):
        torch.testing.assert_close(got, 2 * x.grad, rtol=1e-9, atol=1e-12)
