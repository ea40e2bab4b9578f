"""The bidirectional losses against independent computations: hand loops, the sentence-transformers
oracle, uncached replays, and a single-process run of the same batch."""

from __future__ import annotations

import math
import random

import pytest
import torch
from helpers import random_sentence
from sentence_transformers.sentence_transformer.losses import (
    AdaptiveLayerLoss,
    CachedMultipleNegativesRankingLoss,
    Matryoshka2dLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
)
from sentence_transformers.util import cos_sim, dot_score

from bidir_cli.losses import (
    CachedMultipleNegativesBidirectionalRankingLoss,
    MultipleNegativesBidirectionalRankingLoss,
    build_loss,
    partition_tracker,
)

GTE_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")


# --- 1. Hand calculation -------------------------------------------------------------------------------------------


def reference_loss(queries, docs, scale, similarity, doc_doc_mask):
    """The GTE loss with explicit loops over the four blocks, in Python floats (float64)."""
    q = queries.tolist()
    d = [column.tolist() for column in docs]  # d[k][j]: document of column k for query j
    n, num_columns = len(q), len(d)

    def s(a, b):
        dot = sum(x * y for x, y in zip(a, b))
        if similarity == "dot":
            return dot
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    total = 0.0
    for i in range(n):
        logits = []
        for k in range(num_columns):  # q->d: every document
            for j in range(n):
                logits.append(scale * s(q[i], d[k][j]))
        for j in range(n):  # q->q: every other query
            if j != i:
                logits.append(scale * s(q[i], q[j]))
        for j in range(n):  # d->q: every query, j = i included
            logits.append(scale * s(q[j], d[0][i]))
        for k in range(num_columns):  # d->d
            for j in range(n):
                excluded = (j == i) if doc_doc_mask == "same_query" else (j == i and k == 0)
                if not excluded:
                    logits.append(scale * s(d[k][j], d[0][i]))
        top = max(logits)
        log_z = top + math.log(sum(math.exp(x - top) for x in logits))
        total += log_z - scale * s(q[i], d[0][i])
    return total / n


@pytest.mark.parametrize("num_negatives", [0, 1, 3])
@pytest.mark.parametrize("doc_doc_mask", ["same_query", "self"])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_loss_equals_hand_calculation(num_negatives, doc_doc_mask, similarity):
    gen = torch.Generator().manual_seed(num_negatives)
    queries = torch.randn(4, 8, dtype=torch.float64, generator=gen)
    docs = [torch.randn(4, 8, dtype=torch.float64, generator=gen) for _ in range(1 + num_negatives)]
    scale = 20.0 if similarity == "cosine" else 0.5
    loss_fn = MultipleNegativesBidirectionalRankingLoss(
        None, scale=scale, similarity_fct=cos_sim if similarity == "cosine" else dot_score, doc_doc_mask=doc_doc_mask
    )
    ours = loss_fn.compute_loss_from_embeddings([queries, *docs]).item()
    expected = reference_loss(queries, docs, scale, similarity, doc_doc_mask)
    assert ours == pytest.approx(expected, rel=1e-9)


def test_masks_differ_only_with_hard_negatives():
    gen = torch.Generator().manual_seed(1)
    queries, pos, neg = (torch.randn(4, 8, dtype=torch.float64, generator=gen) for _ in range(3))
    same, self_ = (MultipleNegativesBidirectionalRankingLoss(None, doc_doc_mask=m) for m in ("same_query", "self"))
    assert same.compute_loss_from_embeddings([queries, pos]) == self_.compute_loss_from_embeddings([queries, pos])
    # "self" keeps query i's own hard negative in its d->d block: a strictly larger partition.
    assert self_.compute_loss_from_embeddings([queries, pos, neg]) > same.compute_loss_from_embeddings(
        [queries, pos, neg]
    )


def test_temperature_is_inverse_scale():
    gen = torch.Generator().manual_seed(2)
    emb = [torch.randn(4, 8, dtype=torch.float64, generator=gen) for _ in range(2)]
    by_scale = MultipleNegativesBidirectionalRankingLoss(None, scale=40.0)
    by_temperature = MultipleNegativesBidirectionalRankingLoss(None, temperature=0.025)
    assert by_temperature.scale == pytest.approx(40.0)
    assert by_temperature.compute_loss_from_embeddings(emb).item() == pytest.approx(
        reference_loss(emb[0], emb[1:], 40.0, "cosine", "same_query"), rel=1e-9
    )
    assert by_scale.temperature == pytest.approx(0.025)
    with pytest.raises(ValueError, match="either scale"):
        MultipleNegativesBidirectionalRankingLoss(None, scale=20.0, temperature=0.5)


# --- 2. The sentence-transformers oracle ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_negatives", [0, 1, 3])
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_loss_and_gradients_equal_sentence_transformers_joint_mode(num_negatives, dtype, rel):
    gen = torch.Generator().manual_seed(10 + num_negatives)
    columns = [torch.randn(16, 12, dtype=dtype, generator=gen) for _ in range(2 + num_negatives)]
    ours_in = [c.clone().requires_grad_() for c in columns]
    oracle_in = [c.clone().requires_grad_() for c in columns]

    ours = MultipleNegativesBidirectionalRankingLoss(None).compute_loss_from_embeddings(ours_in)
    oracle = MultipleNegativesRankingLoss(
        None, directions=GTE_DIRECTIONS, partition_mode="joint"
    ).compute_loss_from_embeddings(oracle_in, None)
    ours.backward()
    oracle.backward()

    assert ours.item() == pytest.approx(oracle.item(), rel=rel)
    for a, b in zip(ours_in, oracle_in):
        torch.testing.assert_close(a.grad, b.grad, rtol=rel, atol=rel * b.grad.abs().max().item())


# --- 3. Cached equals uncached -------------------------------------------------------------------------------------


def features_for(model, batch):
    """Tokenised columns of a batch of tuples."""
    return [model.tokenize(list(column)) for column in zip(*batch)]


def batch_of(n, columns, seed=0):
    rng = random.Random(seed)
    return [tuple(random_sentence(rng) for _ in range(columns)) for _ in range(n)]


def parameter_grads(model):
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a, b, atol=1e-5):
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=atol, msg=name)


@pytest.mark.parametrize("mini_batch_size", [4, 3])
@pytest.mark.parametrize("columns", [2, 3])
def test_cached_equals_uncached_without_dropout(tiny_bert, mini_batch_size, columns):
    tiny_bert.eval()  # dropout off
    features = features_for(tiny_bert, batch_of(8, columns))

    tiny_bert.zero_grad()
    uncached = MultipleNegativesBidirectionalRankingLoss(tiny_bert)(features, None)
    uncached.backward()
    expected = parameter_grads(tiny_bert)

    tiny_bert.zero_grad()
    cached = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=mini_batch_size)(features, None)
    cached.backward()

    assert cached.item() == pytest.approx(uncached.item(), rel=1e-5)
    assert_same_grads(parameter_grads(tiny_bert), expected)


@pytest.mark.parametrize("mini_batch_size", [4, 3])
def test_cached_replays_dropout_of_first_pass(tiny_bert, mini_batch_size):
    tiny_bert.train()  # dropout on: the second pass must draw the first pass's masks
    features = features_for(tiny_bert, batch_of(8, 3))
    cached_loss = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=mini_batch_size)

    # Reference: embed the same mini-batches in the same order from the same seed, with gradients.
    tiny_bert.zero_grad()
    torch.manual_seed(123)
    embeddings = []
    for feature in features:
        parts = [
            tiny_bert(cached_loss_minibatch(feature, begin, mini_batch_size))["sentence_embedding"]
            for begin in range(0, 8, mini_batch_size)
        ]
        embeddings.append(torch.cat(parts))
    reference = MultipleNegativesBidirectionalRankingLoss(tiny_bert).compute_loss_from_embeddings(embeddings)
    reference.backward()
    expected = parameter_grads(tiny_bert)

    tiny_bert.zero_grad()
    torch.manual_seed(123)
    cached = cached_loss(features, None)
    cached.backward()

    assert cached.item() == pytest.approx(reference.item(), rel=1e-5)
    assert_same_grads(parameter_grads(tiny_bert), expected)

    # Guard: with another seed the dropout masks differ, so the gradients must differ too.
    tiny_bert.zero_grad()
    torch.manual_seed(999)
    cached_loss(features, None).backward()
    other = parameter_grads(tiny_bert)
    assert any(not torch.allclose(other[n], expected[n], atol=1e-5) for n in expected)


def cached_loss_minibatch(feature, begin, size):
    from sentence_transformers.base.losses.gradcache import _create_minibatch

    return _create_minibatch(feature, begin, begin + size)


def test_cached_refuses_static_embedding(tiny_static):
    with pytest.raises(ValueError, match="StaticEmbedding"):
        CachedMultipleNegativesBidirectionalRankingLoss(tiny_static)


# --- 4. Across devices ---------------------------------------------------------------------------------------------


GATHER_CASES = [("mnbrl", (4, 4)), ("cmnbrl", (4, 4)), ("mnbrl", (5, 3)), ("cmnbrl", (5, 3))]


def _distributed_worker(rank, world_size, init_file, model_path, batch, out_file):
    """Every case of GATHER_CASES in one process group (starting processes costs more than the losses)."""
    import torch.distributed as dist
    from sentence_transformers import SentenceTransformer

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        results = []
        for loss_name, sizes in GATHER_CASES:
            model = SentenceTransformer(model_path, device="cpu")
            model.eval()
            start = sum(sizes[:rank])
            features = features_for(model, batch[start : start + sizes[rank]])
            loss_fn = make_loss(loss_name, model, gather=True)
            loss = loss_fn(features, None)
            loss.backward()
            grads = parameter_grads(model)
            for g in grads.values():  # average across ranks, as DDP does
                dist.all_reduce(g)
                g /= world_size
            losses = [torch.zeros(()) for _ in range(world_size)]
            dist.all_gather(losses, loss.detach().reshape(()))
            partition = torch.tensor(list(loss_fn.partition.pop().values()), dtype=torch.float64)
            partitions = [torch.zeros_like(partition) for _ in range(world_size)]
            dist.all_gather(partitions, partition)
            results.append({"grads": grads, "losses": torch.stack(losses), "partitions": partitions})
        if rank == 0:
            torch.save(results, out_file)
    finally:
        dist.destroy_process_group()


def make_loss(name, model, gather=False):
    if name == "mnbrl":
        return MultipleNegativesBidirectionalRankingLoss(model, gather_across_devices=gather)
    return CachedMultipleNegativesBidirectionalRankingLoss(model, mini_batch_size=3, gather_across_devices=gather)


@pytest.mark.heavy
def test_gather_across_two_processes_equals_full_batch(tiny_bert, tiny_bert_path, tmp_path):
    """Two processes holding 4 and 4, then 5 and 3 rows of one batch of 8 (a smaller last batch makes unequal
    batches), their gradients averaged as DDP does, against one process on all 8 rows: the same mean loss, the
    same gradients, and the same partition diagnostics (over all 8 rows) on every rank."""
    import torch.multiprocessing as mp

    batch = batch_of(8, 3, seed=5)  # anchors, positives, one hard-negative column
    out_file = tmp_path / "grads.pt"
    mp.spawn(
        _distributed_worker,
        args=(2, str(tmp_path / "init"), str(tiny_bert_path), batch, str(out_file)),
        nprocs=2,
        join=True,
    )
    tiny_bert.eval()
    for (loss_name, sizes), result in zip(GATHER_CASES, torch.load(out_file), strict=True):
        tiny_bert.zero_grad()
        full_fn = make_loss(loss_name, tiny_bert)
        full = full_fn(features_for(tiny_bert, batch), None)
        full.backward()

        case = f"{loss_name} with {sizes} rows"
        # DDP averages the ranks' gradients; the trainer logs the ranks' mean loss.
        assert result["losses"].mean().item() == pytest.approx(full.item(), rel=1e-5), case
        assert not torch.allclose(result["losses"][0], result["losses"][1]), case  # each rank owns other rows
        assert_same_grads(result["grads"], parameter_grads(tiny_bert))
        expected_partition = torch.tensor(list(full_fn.partition.pop().values()), dtype=torch.float64)
        for partition in result["partitions"]:
            torch.testing.assert_close(partition, expected_partition, rtol=1e-5, atol=1e-7, msg=case)


# --- 5. Composition ------------------------------------------------------------------------------------------------


ORACLE = MultipleNegativesRankingLoss(None, directions=GTE_DIRECTIONS, partition_mode="joint")


def pooled_layers(model, features):
    """Every layer's mean-pooled embeddings (the embedding layer's output first), from the transformer's hidden
    states by hand: layers x columns of (batch, dim) tensors, with gradients."""
    columns = []
    for f in features:
        inputs = {k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in f}
        hidden = model[0].auto_model(**inputs, output_hidden_states=True).hidden_states
        mask = f["attention_mask"].unsqueeze(-1).to(hidden[0].dtype)
        columns.append([(h * mask).sum(1) / mask.sum(1) for h in hidden])
    return [list(layer) for layer in zip(*columns)]


def hand_sum(layers, dims, dim_weights, last_weight=1.0, prior_weight=1.0, layer_weight=lambda i: 1.0):
    """sentence-transformers' weighting, written out: ``last_weight`` times the last layer's loss, plus
    ``prior_weight * layer_weight(i) / (number of earlier layers)`` times each earlier layer i's loss, where a
    layer's loss is the ``dim_weights``-weighted sum of the inner loss (the joint-mode oracle) at each
    truncated dimension (truncation renormalises, which cosine similarity ignores)."""

    def at_dims(columns):
        return sum(w * ORACLE.compute_loss_from_embeddings([c[:, :d] for c in columns], None)
                   for d, w in zip(dims, dim_weights))  # fmt: skip

    *earlier, last = layers
    total = last_weight * at_dims(last)
    for i, columns in enumerate(earlier):
        total = total + at_dims(columns) * layer_weight(i) / len(earlier) * prior_weight
    return total


@pytest.mark.parametrize("wrap", ["matryoshka", "matryoshka-cached", "matryoshka2d", "adaptive-layer"])
def test_wrappers_equal_a_hand_written_sum_over_dimensions_and_layers(tiny_bert, wrap):
    """MatryoshkaLoss, Matryoshka2dLoss and AdaptiveLayerLoss around our losses, made deterministic (every layer,
    every dimension, no KL term) and with uneven weights, against the weighted sum of the oracle's loss over
    hand-pooled layers and truncated dimensions: loss and parameter gradients."""
    tiny_bert.eval()
    features = features_for(tiny_bert, batch_of(8, 3, seed=7))
    dims, dim_weights = [32, 16, 8], [1.0, 0.6, 0.3]
    layer_weights = dict(last_layer_weight=0.7, prior_layers_weight=1.6, layer_weighting="linear")
    mnbrl = MultipleNegativesBidirectionalRankingLoss(tiny_bert)
    if wrap == "matryoshka":
        loss_fn = MatryoshkaLoss(tiny_bert, mnbrl, dims, matryoshka_weights=dim_weights)
    elif wrap == "matryoshka-cached":
        cmnbrl = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=3)
        loss_fn = MatryoshkaLoss(tiny_bert, cmnbrl, dims, matryoshka_weights=dim_weights)
    elif wrap == "matryoshka2d":
        loss_fn = Matryoshka2dLoss(
            tiny_bert, mnbrl, dims, matryoshka_weights=dim_weights, n_layers_per_step=-1, n_dims_per_step=-1,
            kl_div_weight=0.0, **layer_weights,
        )  # fmt: skip
    else:
        loss_fn = AdaptiveLayerLoss(tiny_bert, mnbrl, n_layers_per_step=-1, kl_div_weight=0.0, **layer_weights)

    tiny_bert.zero_grad()
    loss = loss_fn(features, None)
    loss.backward()
    got = parameter_grads(tiny_bert)

    tiny_bert.zero_grad()
    layers = pooled_layers(tiny_bert, features)
    with torch.no_grad():  # the hand pooling is the model's own
        torch.testing.assert_close(layers[-1][0], tiny_bert(dict(features[0]))["sentence_embedding"])
    if wrap in ("matryoshka", "matryoshka-cached"):
        expected = hand_sum(layers[-1:], dims, dim_weights)
    elif wrap == "matryoshka2d":
        expected = hand_sum(layers, dims, dim_weights, 0.7, 1.6, lambda i: 1 / (1 + i))
    else:
        expected = hand_sum(layers, [32], [1.0], 0.7, 1.6, lambda i: 1 / (1 + i))
    expected.backward()

    assert len(layers) == 3  # the embedding layer and two transformer layers: two earlier "layers"
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert_same_grads(got, parameter_grads(tiny_bert))


def test_matryoshka_around_cached_equals_around_uncached(tiny_bert):
    tiny_bert.eval()
    features = features_for(tiny_bert, batch_of(8, 2))
    tiny_bert.zero_grad()
    uncached = MatryoshkaLoss(tiny_bert, MultipleNegativesBidirectionalRankingLoss(tiny_bert), [32, 8])
    u = uncached(features, None)
    u.backward()
    expected = parameter_grads(tiny_bert)
    tiny_bert.zero_grad()
    cached = MatryoshkaLoss(
        tiny_bert, CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=3), [32, 8]
    )
    c = cached(features, None)
    c.backward()
    assert c.item() == pytest.approx(u.item(), rel=1e-5)
    assert_same_grads(parameter_grads(tiny_bert), expected)


# --- 6. Edges ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_name", ["mnbrl", "cmnbrl"])
@pytest.mark.parametrize("columns", [2, 3])
def test_batch_of_one_is_finite(tiny_bert, loss_name, columns):
    features = features_for(tiny_bert, batch_of(1, columns))
    loss = make_loss(loss_name, tiny_bert)(features, None)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in tiny_bert.parameters() if p.grad is not None)


@pytest.mark.parametrize("loss_name", ["mnbrl", "cmnbrl"])
def test_identical_texts_give_no_nan(tiny_bert, loss_name):
    features = features_for(tiny_bert, [("the cat runs", "the cat runs", "the cat runs")] * 6)
    loss = make_loss(loss_name, tiny_bert)(features, None)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in tiny_bert.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("precision", ["bf16-autocast", "bf16-weights"])
def test_bf16_loss_equals_a_float64_computation_and_stays_near_fp32(tiny_bert, precision):
    """Half precision is the encoder's business; the partition must be computed in fp32 whatever comes in.

    bf16 autocast on the CPU gives fp32 embeddings (layer norm runs in fp32); a model whose weights are bf16
    gives bf16 ones. Either way the loss must equal a float64 hand calculation on the very embeddings it got, to
    fp32 accuracy (measured: 2e-7; computing the partition in bf16 instead is off by about 2e-3). Against the
    fp32 model, the encoder's own rounding moves the loss by about 1e-4 on this model, so 1e-3 holds there too.
    """
    tiny_bert.eval()
    features = features_for(tiny_bert, batch_of(8, 3))
    fp32 = MultipleNegativesBidirectionalRankingLoss(tiny_bert)(features, None).item()
    if precision == "bf16-weights":
        tiny_bert.to(torch.bfloat16)
    loss_fn = MultipleNegativesBidirectionalRankingLoss(tiny_bert)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-autocast"):
        with torch.no_grad():
            embeddings = [tiny_bert(dict(f))["sentence_embedding"] for f in features]
        loss = loss_fn(features, None)
    assert embeddings[0].dtype == (torch.bfloat16 if precision == "bf16-weights" else torch.float32)
    assert loss.dtype == torch.float32
    expected = reference_loss(embeddings[0].double(), [e.double() for e in embeddings[1:]], 20.0, "cosine",
                              "same_query")  # fmt: skip
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(fp32, rel=1e-3)


def test_zero_norm_embedding_gets_a_gradient_near_1e12_as_in_sentence_transformers():
    """The docstrings' warning, measured: a zero query embedding keeps the loss finite (its similarities are 0),
    but normalising x / max(|x|, 1e-12) multiplies its gradient by 1e12, in the oracle just as here."""
    gen = torch.Generator().manual_seed(12)
    columns = [torch.randn(4, 6, dtype=torch.float64, generator=gen) for _ in range(3)]
    columns[0][1] = 0.0
    ours_in = [c.clone().requires_grad_() for c in columns]
    oracle_in = [c.clone().requires_grad_() for c in columns]
    ours = MultipleNegativesBidirectionalRankingLoss(None).compute_loss_from_embeddings(ours_in)
    oracle = ORACLE.compute_loss_from_embeddings(oracle_in, None)
    ours.backward()
    oracle.backward()
    assert torch.isfinite(ours) and ours.item() == pytest.approx(oracle.item(), rel=1e-12)
    for a, b in zip(ours_in, oracle_in):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9 * b.grad.abs().max().item())
    assert ours_in[0].grad[1].norm() > 1e11  # the zero row
    assert ours_in[0].grad[[0, 2, 3]].norm() < 100 and ours_in[1].grad.norm() < 100  # the others are ordinary


@pytest.mark.parametrize("columns", [2, 3])
def test_with_dropout_cached_and_uncached_draw_different_masks_with_hard_negatives(tiny_bert, columns):
    """The docstrings' caveat: equal with dropout off (test_cached_equals_uncached_without_dropout). With dropout
    on, the uncached loss embeds the anchors in one pass and all document columns together in another, the cached
    one column by column (here in one mini-batch each): from the same seed, pairs draw the same masks, but with
    a hard-negative column the merged document pass draws other masks."""
    tiny_bert.train()
    features = features_for(tiny_bert, batch_of(8, columns))
    torch.manual_seed(0)
    uncached = MultipleNegativesBidirectionalRankingLoss(tiny_bert)(features, None).item()
    torch.manual_seed(0)
    cached = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=8)(features, None).item()
    if columns == 2:
        assert cached == pytest.approx(uncached, rel=1e-6)
    else:
        assert abs(cached - uncached) > 1e-3 * uncached


def test_dot_product_similarity_matches_oracle():
    gen = torch.Generator().manual_seed(3)
    cols = [torch.randn(6, 5, dtype=torch.float64, generator=gen) for _ in range(3)]
    ours = MultipleNegativesBidirectionalRankingLoss(None, scale=1.0, similarity_fct=dot_score)
    oracle = MultipleNegativesRankingLoss(
        None, scale=1.0, similarity_fct=dot_score, directions=GTE_DIRECTIONS, partition_mode="joint"
    )
    assert ours.compute_loss_from_embeddings(cols).item() == pytest.approx(
        oracle.compute_loss_from_embeddings(cols, None).item(), rel=1e-9
    )


# --- Partition diagnostics -----------------------------------------------------------------------------------------


def test_partition_shares_sum_to_one_and_match_hand_softmax():
    gen = torch.Generator().manual_seed(4)
    q, p, n = (torch.randn(4, 8, dtype=torch.float64, generator=gen) for _ in range(3))
    loss_fn = MultipleNegativesBidirectionalRankingLoss(None)
    with torch.enable_grad():
        loss_fn.compute_loss_from_embeddings([q, p, n])
    stats = loss_fn.partition.pop()
    assert sum(stats[b] for b in ("q->d", "q->q", "d->q", "d->d")) == pytest.approx(1.0, abs=1e-12)
    assert 0 < stats["positive"] <= 0.5  # the positive pair appears in q->d and again in d->q
    # By hand: each block's summed exp(logit) over Z, averaged over rows (d->d leaves query i's documents out).
    off_diagonal = 1 - torch.eye(4, dtype=torch.float64)
    mass = {
        "q->d": torch.exp(20 * cos_sim(q, torch.cat([p, n]))).sum(1),
        "q->q": (torch.exp(20 * cos_sim(q, q)) * off_diagonal).sum(1),
        "d->q": torch.exp(20 * cos_sim(p, q)).sum(1),
        "d->d": ((torch.exp(20 * cos_sim(p, p)) + torch.exp(20 * cos_sim(p, n))) * off_diagonal).sum(1),
    }
    total = sum(mass.values())
    for block in mass:
        assert stats[block] == pytest.approx((mass[block] / total).mean().item(), rel=1e-9)
    positive = torch.exp(20 * torch.diagonal(cos_sim(q, p))) / total
    assert stats["positive"] == pytest.approx(positive.mean().item(), rel=1e-9)
    assert loss_fn.partition.pop() is None  # popping resets


def partition_of(loss_fn, model, features):
    """The partition diagnostics one training step of ``loss_fn`` records (and only that step's)."""
    model.zero_grad()
    loss_fn(features, None).backward()
    tracker = partition_tracker(loss_fn) or loss_fn.loss.loss.partition  # Matryoshka2dLoss nests two wrappers
    stats = tracker.pop()
    assert stats is not None and tracker.pop() is None
    return stats


def test_cached_partition_diagnostics_equal_the_uncached_ones(tiny_bert):
    """CMNBRL records the same diagnostics as MNBRL (checked by hand above) on the same batch, once per
    training step, and nothing in evaluation."""
    tiny_bert.eval()
    features = features_for(tiny_bert, batch_of(8, 3, seed=8))
    expected = partition_of(MultipleNegativesBidirectionalRankingLoss(tiny_bert), tiny_bert, features)
    cached = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=3)
    assert partition_of(cached, tiny_bert, features) == pytest.approx(expected, rel=1e-5)
    assert 0.01 < expected["positive"] < 0.5 and min(expected.values()) > 0  # not a degenerate batch
    with torch.no_grad():
        cached(features, None)
    assert cached.partition.pop() is None


@pytest.mark.parametrize("wrap", ["matryoshka", "matryoshka-cached", "matryoshka2d", "adaptive-layer"])
def test_partition_diagnostics_under_wrappers_are_the_full_models(tiny_bert, wrap):
    """Under the wrappers the loss runs once per dimension and layer; the diagnostics are those of the full
    dimension and the last layer alone: what the loss alone records on the same batch."""
    tiny_bert.eval()
    features = features_for(tiny_bert, batch_of(8, 3, seed=9))
    expected = partition_of(MultipleNegativesBidirectionalRankingLoss(tiny_bert), tiny_bert, features)
    dims = [8, 32, 16]  # unsorted: MatryoshkaLoss sorts them
    if wrap == "matryoshka-cached":
        cached = CachedMultipleNegativesBidirectionalRankingLoss(tiny_bert, mini_batch_size=3)
        loss_fn = MatryoshkaLoss(tiny_bert, cached, dims)
    else:
        inner = MultipleNegativesBidirectionalRankingLoss(tiny_bert)
        loss_fn = {
            "matryoshka": lambda: MatryoshkaLoss(tiny_bert, inner, dims),
            "matryoshka2d": lambda: Matryoshka2dLoss(tiny_bert, inner, dims, n_layers_per_step=-1, n_dims_per_step=-1),
            "adaptive-layer": lambda: AdaptiveLayerLoss(tiny_bert, inner, n_layers_per_step=-1),
        }[wrap]()
    assert partition_of(loss_fn, tiny_bert, features) == pytest.approx(expected, rel=1e-5)


# --- The registry --------------------------------------------------------------------------------------------------


def _Cfg(**kw):
    from bidir_cli.config.schema import LossConfig

    return LossConfig(**kw)


@pytest.mark.parametrize(
    "name,cls",
    [
        ("mnbrl", MultipleNegativesBidirectionalRankingLoss),
        ("cmnbrl", CachedMultipleNegativesBidirectionalRankingLoss),
        ("mnrl", MultipleNegativesRankingLoss),
        ("cmnrl", CachedMultipleNegativesRankingLoss),
    ],
)
def test_build_loss_returns_each_loss_and_wraps_matryoshka(tiny_bert, name, cls):
    assert (
        type(build_loss(tiny_bert, _Cfg(name=name, mini_batch_size=4) if name.startswith("c") else _Cfg(name=name)))
        is cls
    )
    wrapped = build_loss(tiny_bert, _Cfg(name=name, matryoshka_dims=[32, 16]))
    assert isinstance(wrapped, MatryoshkaLoss) and type(wrapped.loss) is cls
    assert build_loss(tiny_bert, _Cfg(name=name, scale=33.0)).scale == 33.0


# Each wrapper with options other than its defaults, and the same wrapper assembled by hand from sentence-transformers.
WRAPPER_CASES = {
    "matryoshka": (
        {"matryoshka_dims": [32, 16, 8], "matryoshka_weights": [1.0, 0.5, 0.25]},
        lambda m, inner: MatryoshkaLoss(m, inner, [32, 16, 8], matryoshka_weights=[1.0, 0.5, 0.25]),
        lambda m, inner: MatryoshkaLoss(m, inner, [32, 16, 8]),
    ),
    "matryoshka2d": (
        {"matryoshka_dims": [32, 16], "n_layers_per_step": -1, "n_dims_per_step": -1, "last_layer_weight": 2.0,
         "kl_temperature": 0.5},
        lambda m, inner: Matryoshka2dLoss(m, inner, [32, 16], n_layers_per_step=-1, n_dims_per_step=-1,
                                          last_layer_weight=2.0, kl_temperature=0.5),
        lambda m, inner: Matryoshka2dLoss(m, inner, [32, 16], n_layers_per_step=-1, n_dims_per_step=-1),
    ),
    "adaptive_layer": (
        {"n_layers_per_step": -1, "prior_layers_weight": 0.5, "kl_div_weight": 2.0, "layer_weighting": "linear"},
        lambda m, inner: AdaptiveLayerLoss(m, inner, n_layers_per_step=-1, prior_layers_weight=0.5, kl_div_weight=2.0,
                                           layer_weighting="linear"),
        lambda m, inner: AdaptiveLayerLoss(m, inner, n_layers_per_step=-1),
    ),
}  # fmt: skip


@pytest.mark.parametrize("wrapper", list(WRAPPER_CASES))
def test_build_loss_wraps_as_the_config_says_equal_to_a_hand_assembled_wrapper(tiny_bert, wrapper):
    options, by_hand, with_defaults = WRAPPER_CASES[wrapper]
    tiny_bert.eval()  # no dropout: the three losses see the same embeddings
    features = features_for(tiny_bert, batch_of(8, 3))
    built = build_loss(tiny_bert, _Cfg(name="mnbrl", scale=25.0, doc_doc_mask="self", wrapper=wrapper, **options))
    inner = MultipleNegativesBidirectionalRankingLoss(tiny_bert, scale=25.0, doc_doc_mask="self")
    hand = by_hand(tiny_bert, inner)
    assert type(built) is type(hand)
    reference = hand(features, None).item()
    assert built(features, None).item() == pytest.approx(reference, rel=1e-6)
    # the options reached the wrapper: with its defaults the value differs
    assert with_defaults(tiny_bert, inner)(features, None).item() != pytest.approx(reference, rel=1e-4)


def test_matryoshka_dims_alone_mean_the_matryoshka_wrapper():
    cfg = _Cfg(name="mnbrl", matryoshka_dims=[32, 16])
    assert cfg.resolved_wrapper == "matryoshka" and cfg.settings()["wrapper"] == "matryoshka"


@pytest.mark.parametrize("wrapper", ["matryoshka2d", "adaptive_layer"])
def test_layer_wrappers_refuse_a_cached_loss(wrapper):
    from pydantic import ValidationError

    options = {"matryoshka_dims": [32, 16]} if wrapper == "matryoshka2d" else {}
    with pytest.raises(ValidationError, match=f"wrapper {wrapper} cannot wrap a cached loss \\(cmnbrl\\)"):
        _Cfg(name="cmnbrl", wrapper=wrapper, **options)
    _Cfg(name="cmnbrl", wrapper="matryoshka", **{"matryoshka_dims": [32, 16]})  # MatryoshkaLoss wraps it


@pytest.mark.parametrize(
    "options,message",
    [
        ({"wrapper": "matryoshka2d"}, "wrapper matryoshka2d needs matryoshka_dims"),
        ({"matryoshka_dims": [32, 16], "n_layers_per_step": 2}, "n_layers_per_step applies only to the wrappers"),
        ({"kl_temperature": 0.3}, "kl_temperature applies only to the wrappers matryoshka2d, adaptive_layer, not none"),
        ({"matryoshka_dims": [32, 16], "matryoshka_weights": [1.0]}, "one weight per dimension"),
    ],
)
def test_wrapper_options_are_checked_against_the_wrapper(options, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        _Cfg(name="mnbrl", **options)


def test_baseline_mnrl_is_standard_infonce():
    """The baseline is unchanged sentence-transformers MNRL: q->d only, checked by hand."""
    gen = torch.Generator().manual_seed(6)
    q, p = (torch.randn(5, 4, dtype=torch.float64, generator=gen) for _ in range(2))
    loss = build_loss(None, _Cfg(name="mnrl")).compute_loss_from_embeddings([q, p], None)
    logits = 20 * cos_sim(q, p)
    expected = sum(torch.logsumexp(logits[i], 0) - logits[i, i] for i in range(5)) / 5
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
