"""``bidir eval``: encode, search, score; per query and aggregated, exactly as sentence-transformers does.

The metrics are those of sentence-transformers' ``InformationRetrievalEvaluator`` (binary relevance,
ties broken by ascending document id; ``metrics.py``), computed per query so that ``bidir compare`` can
test any of them for significance. Speed comes from work not done twice, never from approximations:

* each unique text is encoded once, in batches of similar token length (``encode.py``);
* corpus embeddings are cached on disk under a key naming everything that determines them
  (``embedding_cache.py``), so a cached evaluation returns the numbers a cold one would;
* search is an exact top-k over corpus chunks (``search.py``);
* several Matryoshka truncations (``--truncate-dim 384,128,64``) share one encoding at full dimension:
  each is a slice of it, as sentence-transformers' ``truncate_dim`` slices (it does not renormalise;
  cosine similarity normalises anyway), and each is its own results file.

``--backend mteb`` runs the same loaded data through mteb as a cross-check of nDCG@10 (``mteb_check.py``);
``--run-file`` exports the rankings in TREC format (``run_file.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..console import log
from ..errors import InputError
from ..models.load import backend_problem, load_for_evaluation, resolve_model
from ..models.load import max_seq_length as model_max_seq_length
from ..runs.environment import now, versions
from ..runs.results import DatasetResult, EvalResult, suite_identity
from ..runs.settings import EvalSettings
from .embedding_cache import EmbeddingCache, cache_parts, default_cache_dir
from .encode import encode, precision_problem
from .metrics import METRIC_NAMES, PRIMARY_METRIC, TOP_K, query_metrics
from .model_options import BACKEND_PRECISIONS, apply_overrides, backend_model_kwargs, dataset_prompts, parse_device
from .retrieval import RetrievalDataset
from .run_file import check_ids, run_file_paths, write_qrels, write_run
from .search import search
from .suites import Suite, resolve_suite

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


BACKENDS = ("bidir", "mteb")


# The packages a results file records (and mteb's version with --backend mteb).
EVAL_PACKAGES = ("sentence-transformers", "transformers", "torch", "datasets")


def _embed(
    model: SentenceTransformer,
    dataset: RetrievalDataset,
    *,
    model_info: dict[str, Any],
    settings: dict[str, Any],
    cache: EmbeddingCache | None,
    progress: bool | None,
) -> tuple[Any, Any, str]:
    """Query and corpus embeddings at full dimension (the corpus from the cache when it has them)."""
    encode_kwargs = {"batch_size": settings["batch_size"], "precision": settings["precision"], "progress": progress}
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
        corpus_embeddings = encode(
            model, dataset.corpus_texts, kind="document", desc=f"{dataset.name}: documents", **encode_kwargs
        )
        if cache_state == "miss":
            cache.save(key, corpus_embeddings, parts | {"dataset": dataset.name, "source": dataset.source})
    query_embeddings = encode(
        model, dataset.query_texts, kind="query", desc=f"{dataset.name}: queries", **encode_kwargs
    )
    return query_embeddings, corpus_embeddings, cache_state


def evaluate_dataset(
    model: SentenceTransformer,
    dataset: RetrievalDataset,
    *,
    model_info: dict[str, Any],
    settings: dict[str, Any],
    truncate_dims: Sequence[int | None] = (None,),
    cache: EmbeddingCache | None = None,
    progress: bool | None = None,
    run_files: dict[int | None, Path] | None = None,
    qrels_file: Path | None = None,
) -> dict[int | None, DatasetResult]:
    """Evaluate one dataset: encode once (or read the cache), then per truncation search and score every query.

    Args:
        truncate_dims: The truncations to evaluate (None: full dimension), each a slice of one encoding.
        run_files: A TREC run file to write per truncation (``run_file.py``); ``qrels_file`` its qrels.

    Returns:
        Each truncation's result.
    """
    start = time.perf_counter()
    with dataset_prompts(model, dataset.prompts) as prompts:
        query_embeddings, corpus_embeddings, cache_state = _embed(
            model, dataset, model_info=model_info, settings=settings, cache=cache, progress=progress
        )
    encode_s = time.perf_counter() - start
    results = {}
    for dim in truncate_dims:
        scored = time.perf_counter()
        run_file = (run_files or {}).get(dim)
        rankings, scores = search(
            query_embeddings[:, :dim], corpus_embeddings[:, :dim], model.similarity, dataset.corpus_ids,
            with_scores=True,
        )  # fmt: skip
        per_query: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
        for query_id, ranking in zip(dataset.query_ids, rankings, strict=True):
            values = query_metrics([dataset.corpus_ids[i] for i in ranking], dataset.qrels[query_id])
            for name, value in values.items():
                per_query[name].append(value)
        metrics = {name: sum(values) / len(values) for name, values in per_query.items()}
        extra: dict[str, Any] = {
            "corpus_hash": dataset.corpus_hash,
            "embedding_cache": cache_state,
            "notes": list(dataset.notes),
        }
        if dataset.prompts:
            extra["prompts"] = prompts  # the suite file's prompts were in force (results.py: differences)
        if len(truncate_dims) > 1:
            extra["encoded_once_for"] = list(truncate_dims)  # time_s includes the shared encoding
        if run_file:
            write_run(run_file, dataset, rankings, scores)
            extra["run_file"] = str(run_file)
        results[dim] = DatasetResult(
            name=dataset.name,
            hash=dataset.hash,
            source=dataset.source,
            counts=dict(dataset.counts),
            metrics=metrics,
            query_ids=list(dataset.query_ids),
            per_query=per_query,
            time_s=round(encode_s + time.perf_counter() - scored, 3),
            extra=extra,
            created=now(),
        )
    if qrels_file:
        write_qrels(qrels_file, dataset, graded=settings.get("graded", False))
        for result in results.values():
            result.extra["qrels_file"] = str(qrels_file)
    return results


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
    progress: bool | None = None,
) -> EvalResult:
    """Evaluate a loaded model on loaded datasets at one truncation: :func:`evaluate_all` for one result."""
    [result] = evaluate_all(
        model, datasets, suite=suite, model_info=model_info, batch_size=batch_size, truncate_dims=[truncate_dim],
        precision=precision, backend=backend, cache=cache, graded=graded, progress=progress,
    )  # fmt: skip
    return result


def evaluate_all(
    model: SentenceTransformer,
    datasets: list[RetrievalDataset],
    *,
    suite: Suite,
    model_info: dict[str, Any],
    batch_size: int = 64,
    truncate_dims: Sequence[int | None] = (None,),
    precision: str = "fp32",
    backend: str = "bidir",
    cache: EmbeddingCache | None = None,
    graded: bool = False,
    progress: bool | None = None,
    run_files: tuple[dict[tuple[str, int | None], Path], dict[str, Path]] | None = None,
    load_settings: dict[str, Any] | None = None,
) -> list[EvalResult]:
    """Evaluate a loaded model on loaded datasets; the importable core of ``bidir eval``.

    Args:
        model: The model (with any ``--query-prompt``, ``--document-prompt``, ``--max-seq-length`` applied).
        datasets: Datasets from ``suite`` (``Suite.load()``).
        suite: Their suite (name and source go into the results).
        model_info: ``name`` and ``fingerprint`` (``None`` disables the cache: nothing safe to key it by).
        batch_size: Encoding batch size.
        truncate_dims: Truncations (None: full dimension); each dataset is encoded once for all of them.
        precision: ``fp32``, ``fp16`` (CUDA only) or ``bf16``.
        backend: ``bidir``, or ``mteb`` to add mteb's nDCG@10 of the same data (``extra["mteb"]``).
        cache: Corpus-embedding cache, or None.
        graded: Show graded nDCG@10 in the table and write graded qrels beside run files (``ndcg@10_graded``
            is computed and saved either way).
        progress: Progress bars on standard error (None: when it is a terminal).
        run_files: ``run_file.run_file_paths``'s run files per (dataset, truncation) and qrels per dataset.
        load_settings: How the model was loaded, recorded in the settings: ``model_backend``, ``overrides``
            (the prompts and length set on the command line), ``trust_remote_code``.

    Returns:
        One result per truncation, in order.
    """
    base = {
        "batch_size": batch_size,
        "truncate_dim": None,
        "precision": precision,
        "backend": backend,
        "model_backend": "torch",
        "device": str(model.device),
        "similarity": model.similarity_fn_name,
        "max_seq_length": model_max_seq_length(model),
        "prompts": dict(model.prompts),
        "overrides": {},
        "trust_remote_code": False,
        "top_k": TOP_K,
        "embedding_cache": str(cache.root) if cache else None,
        "graded": graded,
    } | (load_settings or {})
    results: dict[int | None, dict[str, DatasetResult]] = {dim: {} for dim in truncate_dims}
    for dataset in datasets:
        by_dim = evaluate_dataset(
            model,
            dataset,
            model_info=model_info,
            settings=base,
            truncate_dims=truncate_dims,
            cache=cache,
            progress=progress,
            run_files={dim: run_files[0][(dataset.name, dim)] for dim in truncate_dims} if run_files else None,
            qrels_file=run_files[1][dataset.name] if run_files else None,
        )
        for dim, result in by_dim.items():
            if backend == "mteb":
                from .mteb_check import mteb_ndcg_at_10

                log(f"{dataset.name}: running mteb on the same data")
                t = time.perf_counter()
                with dataset_prompts(model, dataset.prompts):
                    score = mteb_ndcg_at_10(
                        model, dataset, batch_size=batch_size, truncate_dim=dim, precision=precision
                    )
                result.extra["mteb"] = {"ndcg@10": score, "time_s": round(time.perf_counter() - t, 3)}
            results[dim][dataset.name] = result
            label = f" at dimension {dim}" if dim is not None else ""
            log(
                f"{dataset.name}: {result.counts['queries']} queries evaluated{label}: {PRIMARY_METRIC} "
                f"{result.metrics[PRIMARY_METRIC]:.4f} ({result.time_s:.1f} s)"
            )
    packages = versions(EVAL_PACKAGES + (("mteb",) if backend == "mteb" else ()))
    return [
        EvalResult(
            suite=suite_identity(suite.name, suite.source, results[dim]),
            model=dict(model_info),
            settings=base | {"truncate_dim": dim},
            versions=packages,
            created=now(),
            datasets=results[dim],
        )
        for dim in truncate_dims
    ]


class EvalSuite(NamedTuple):
    """A suite and its loaded datasets."""

    suite: Suite
    datasets: list[RetrievalDataset]


def load_suite(spec: str, datasets: str | None = None) -> EvalSuite:
    """Resolve a suite, choose its datasets and load them all (bad data fails before any model work)."""
    chosen = resolve_suite(spec).select(datasets)
    loaded = chosen.load()
    for dataset in loaded:
        log(f"{dataset.name}: {dataset.counts['corpus']} documents, {dataset.counts['queries']} queries to evaluate")
        for note in dataset.notes:
            log(f"{dataset.name}: {note}")
    return EvalSuite(chosen, loaded)


def parse_truncate_dims(value: str | int | None) -> list[int | None]:
    """``--truncate-dim``: None, one dimension, or several separated by commas (``384,128,64``)."""
    if value is None:
        return [None]
    items = [x.strip() for x in str(value).split(",")]
    if not all(x.isdigit() and int(x) > 0 for x in items):
        raise InputError(f"--truncate-dim {value}: expected positive whole numbers separated by commas (384,128,64)")
    dims = [int(x) for x in items]
    if len(set(dims)) < len(dims):
        raise InputError(f"--truncate-dim {value}: a dimension is repeated")
    return dims


def _output_path(output: Path, dim: int | None, several: bool) -> Path:
    """``--output`` for one truncation of several: ``out.json`` -> ``out--dim64.json``."""
    return output.with_name(EvalSettings(truncate_dim=dim).stem(output.stem) + output.suffix) if several else output


def eval_command(
    model: str,
    *,
    suite: str = "nanobeir",
    datasets: str | None = None,
    batch_size: int = 64,
    truncate_dim: str | int | None = None,
    output: Path | None = None,
    backend: str = "bidir",
    precision: str = "fp32",
    cache_dir: Path | None = None,
    use_cache: bool = True,
    graded: bool = False,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    max_seq_length: int | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
    model_backend: str = "torch",
    run_file: Path | None = None,
    progress: bool | None = None,
) -> list[EvalResult]:
    """``bidir eval``: check the arguments, load the data (fail fast), load the model, evaluate, write, render.

    Returns:
        One result per ``--truncate-dim`` value (one when it has one value or none).
    """
    from .render import render_eval, results_console

    if backend not in BACKENDS:
        raise InputError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if problem := backend_problem(model_backend):
        raise InputError(f"--model-backend {model_backend}: {problem}")
    dims = parse_truncate_dims(truncate_dim)
    device = parse_device(device)
    import torch

    cuda = torch.device(device).type == "cuda" if device else torch.cuda.is_available()
    if problem := precision_problem(precision, cuda):
        raise InputError(f"--precision {precision}: {problem}")
    if precision not in BACKEND_PRECISIONS[model_backend]:
        raise InputError(
            f"--precision {precision}: --model-backend {model_backend} runs "
            f"{' or '.join(BACKEND_PRECISIONS[model_backend])} (torch autocast does not apply to it)"
        )
    if max_seq_length is not None and max_seq_length < 1:
        raise InputError(f"--max-seq-length {max_seq_length}: expected a positive number of tokens")

    resolve_model(model)  # a typo fails before the data is loaded
    chosen, loaded = load_suite(suite, datasets)
    run_files = None
    if run_file:
        for dataset in loaded:
            check_ids(dataset)
        run_files = run_file_paths(run_file, [d.name for d in loaded], dims)
    st_model, model_info, run = load_for_evaluation(
        model,
        device=device,
        trust_remote_code=trust_remote_code,
        backend=model_backend,
        model_kwargs=backend_model_kwargs(model_backend, precision),
    )
    overrides = apply_overrides(st_model, query_prompt=query_prompt, document_prompt=document_prompt,
                                max_seq_length=max_seq_length)  # fmt: skip
    too_large = [d for d in dims if d is not None and d > st_model.get_embedding_dimension()]
    if too_large:
        raise InputError(
            f"--truncate-dim {too_large[0]} exceeds the model's {st_model.get_embedding_dimension()} dimensions"
        )
    cache = EmbeddingCache(cache_dir or default_cache_dir()) if use_cache else None
    results = evaluate_all(
        st_model,
        loaded,
        suite=chosen,
        model_info=model_info,
        batch_size=batch_size,
        truncate_dims=dims,
        precision=precision,
        backend=backend,
        cache=cache,
        graded=graded,
        progress=progress,
        run_files=run_files,
        load_settings={"model_backend": model_backend, "overrides": overrides, "trust_remote_code": trust_remote_code},
    )
    if run_files:
        for path in [*run_files[0].values(), *run_files[1].values()]:
            log(f"run file written: {path}")
    for result in results:
        if run:
            log(f"results written to {result.store(run.results_file(result.stem), numbered=True)}")
        if output:
            path = _output_path(output, result.settings["truncate_dim"], len(results) > 1)
            log(f"results written to {result.store(path, numbered=False)}")
        render_eval(result, results_console())
    return results
