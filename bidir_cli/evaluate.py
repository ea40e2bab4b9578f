"""``bidir eval``: encode, search, score; per query and aggregated, exactly as sentence-transformers does.

The metrics are those of sentence-transformers' ``InformationRetrievalEvaluator`` (binary relevance,
ties broken by ascending document id; ``metrics.py``), computed per query so that ``bidir compare`` can
test any of them for significance. Speed comes from work not done twice, never from approximations:

* each unique text is encoded once, in batches of similar token length (``encode.py``);
* corpus embeddings are cached on disk under a key naming everything that determines them
  (``embedding_cache.py``), so a cached evaluation returns the numbers a cold one would;
* search is an exact top-k over corpus chunks (``search.py``).

``--backend mteb`` runs the same loaded data through mteb as a cross-check of nDCG@10 (``mteb_check.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .embedding_cache import EmbeddingCache, cache_parts, default_cache_dir
from .encode import encode, precision_problem
from .errors import InputError
from .io import log
from .metrics import METRIC_NAMES, PRIMARY_METRIC, TOP_K, query_metrics
from .models import load_for_evaluation, max_seq_length, resolve_model
from .results import DatasetResult, EvalResult, suite_identity
from .retrieval import RetrievalDataset
from .runs import now, versions
from .search import search
from .suites import Suite, resolve_suite

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BACKENDS = ("bidir", "mteb")
# The packages a results file records (and mteb's version with --backend mteb).
EVAL_PACKAGES = ("sentence-transformers", "transformers", "torch", "datasets")


def evaluate_dataset(
    model: SentenceTransformer,
    dataset: RetrievalDataset,
    *,
    model_info: dict[str, Any],
    settings: dict[str, Any],
    cache: EmbeddingCache | None = None,
) -> DatasetResult:
    """Evaluate one dataset: encode (or read the cache), search, score every query."""
    start = time.perf_counter()
    encode_kwargs = {k: settings[k] for k in ("batch_size", "truncate_dim", "precision")}
    corpus_embeddings = None
    cache_state = "off"
    if cache is not None and model_info.get("fingerprint"):
        parts = cache_parts(model, dataset, model_info, settings)
        key = cache.key(parts)
        corpus_embeddings = cache.load(key, len(dataset.corpus_ids))
        cache_state = "miss" if corpus_embeddings is None else "hit"
        if corpus_embeddings is not None:
            corpus_embeddings = corpus_embeddings.to(model.device)
            log(f"{dataset.name}: corpus embeddings read from the cache {cache.path(key)} (--no-cache to re-encode)")
    if corpus_embeddings is None:
        log(f"{dataset.name}: encoding {len(dataset.corpus_ids)} documents")
        corpus_embeddings = encode(model, dataset.corpus_texts, kind="document", **encode_kwargs)
        if cache_state == "miss":
            cache.save(key, corpus_embeddings, parts | {"dataset": dataset.name, "source": dataset.source})
    query_embeddings = encode(model, dataset.query_texts, kind="query", **encode_kwargs)

    rankings = search(query_embeddings, corpus_embeddings, model.similarity, dataset.corpus_ids)
    per_query: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    for query_id, ranking in zip(dataset.query_ids, rankings, strict=True):
        values = query_metrics([dataset.corpus_ids[i] for i in ranking], dataset.qrels[query_id])
        for name, value in values.items():
            per_query[name].append(value)
    metrics = {name: sum(values) / len(values) for name, values in per_query.items()}
    return DatasetResult(
        name=dataset.name,
        hash=dataset.hash,
        source=dataset.source,
        counts=dict(dataset.counts),
        metrics=metrics,
        query_ids=list(dataset.query_ids),
        per_query=per_query,
        time_s=round(time.perf_counter() - start, 3),
        extra={"corpus_hash": dataset.corpus_hash, "embedding_cache": cache_state, "notes": list(dataset.notes)},
        created=now(),
    )


def evaluate(
    model: SentenceTransformer,
    datasets: list[RetrievalDataset],
    *,
    suite: Suite,
    model_info: dict[str, Any],
    batch_size: int = 64,
    truncate_dim: int | None = None,
    precision: str = "fp32",
    backend: str = "bidir",
    cache: EmbeddingCache | None = None,
    graded: bool = False,
) -> EvalResult:
    """Evaluate a loaded model on loaded datasets; the importable core of ``bidir eval``.

    Args:
        model: The model.
        datasets: Datasets from ``suite`` (``Suite.load()``).
        suite: Their suite (name and source go into the results).
        model_info: ``name`` and ``fingerprint`` (``None`` disables the cache: nothing safe to key it by).
        batch_size: Encoding batch size.
        truncate_dim: Truncate embeddings to this many dimensions.
        precision: ``fp32``, ``fp16`` (CUDA only) or ``bf16``.
        backend: ``bidir``, or ``mteb`` to add mteb's nDCG@10 of the same data (``extra["mteb"]``).
        cache: Corpus-embedding cache, or None.
        graded: Show graded nDCG@10 in the table (``ndcg@10_graded`` is computed and saved either way).
    """
    settings = {
        "batch_size": batch_size,
        "truncate_dim": truncate_dim,
        "precision": precision,
        "backend": backend,
        "device": str(model.device),
        "similarity": model.similarity_fn_name,
        "max_seq_length": max_seq_length(model),
        "prompts": dict(model.prompts),
        "top_k": TOP_K,
        "embedding_cache": str(cache.root) if cache else None,
        "graded": graded,
    }
    results = {}
    for dataset in datasets:
        result = evaluate_dataset(model, dataset, model_info=model_info, settings=settings, cache=cache)
        if backend == "mteb":
            from .mteb_check import mteb_ndcg_at_10

            log(f"{dataset.name}: running mteb on the same data")
            t = time.perf_counter()
            score = mteb_ndcg_at_10(
                model, dataset, batch_size=batch_size, truncate_dim=truncate_dim, precision=precision
            )
            result.extra["mteb"] = {"ndcg@10": score, "time_s": round(time.perf_counter() - t, 3)}
        results[dataset.name] = result
        log(f"{dataset.name}: {PRIMARY_METRIC} {result.metrics[PRIMARY_METRIC]:.4f} ({result.time_s:.1f} s)")
    return EvalResult(
        suite=suite_identity(suite.name, suite.source, results),
        model=dict(model_info),
        settings=settings,
        versions=versions(EVAL_PACKAGES + (("mteb",) if backend == "mteb" else ())),
        created=now(),
        datasets=results,
    )


class EvalSuite(NamedTuple):
    """A suite and its loaded datasets."""

    suite: Suite
    datasets: list[RetrievalDataset]


def load_suite(spec: str, datasets: str | None = None) -> EvalSuite:
    """Resolve a suite, choose its datasets and load them all (bad data fails before any model work)."""
    chosen = resolve_suite(spec).select(datasets)
    loaded = chosen.load()
    for dataset in loaded:
        log(f"{dataset.name}: {dataset.counts['corpus']} documents, {dataset.counts['queries']} queries evaluated")
        for note in dataset.notes:
            log(f"{dataset.name}: {note}")
    return EvalSuite(chosen, loaded)


def eval_command(
    model: str,
    *,
    suite: str = "nanobeir",
    datasets: str | None = None,
    batch_size: int = 64,
    truncate_dim: int | None = None,
    output: Path | None = None,
    backend: str = "bidir",
    precision: str = "fp32",
    cache_dir: Path | None = None,
    use_cache: bool = True,
    graded: bool = False,
) -> EvalResult:
    """``bidir eval``: check the arguments, load the data (fail fast), load the model, evaluate, write, render."""
    from .report import render_eval, results_console

    if backend not in BACKENDS:
        raise InputError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    import torch

    if problem := precision_problem(precision, torch.cuda.is_available()):
        raise InputError(f"--precision {precision}: {problem}")

    resolve_model(model)  # a typo fails before the data is loaded
    chosen, loaded = load_suite(suite, datasets)
    st_model, model_info, run = load_for_evaluation(model)
    if truncate_dim is not None and truncate_dim > st_model.get_embedding_dimension():
        raise InputError(
            f"--truncate-dim {truncate_dim} exceeds the model's {st_model.get_embedding_dimension()} dimensions"
        )
    cache = EmbeddingCache(cache_dir or default_cache_dir()) if use_cache else None
    result = evaluate(
        st_model,
        loaded,
        suite=chosen,
        model_info=model_info,
        batch_size=batch_size,
        truncate_dim=truncate_dim,
        precision=precision,
        backend=backend,
        cache=cache,
        graded=graded,
    )
    if run:
        log(f"results written to {result.store(run.results_file(result.stem), numbered=True)}")
    if output:
        log(f"results written to {result.store(output, numbered=False)}")
    render_eval(result, results_console())
    return result
