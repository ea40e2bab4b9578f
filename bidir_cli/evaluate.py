"""``bidir eval``: encode, search, score; per query and aggregated, exactly as sentence-transformers does.

The metrics are those of sentence-transformers' ``InformationRetrievalEvaluator`` (binary relevance,
ties broken by ascending document id), computed per query so that ``bidir compare`` can test any of
them for significance. Speed comes from work not done twice, never from approximations:

* each unique text is encoded once, in batches of similar token length (less padding than sorting by
  characters, which is what ``SentenceTransformer.encode`` does);
* corpus embeddings are cached on disk under a key naming everything that determines them (model
  files, corpus content, prompts, truncation, precision, batch size, device, library versions), so a
  cached evaluation returns the numbers a cold one would;
* search is an exact top-k over corpus chunks (one matrix product and ``topk`` per chunk).

``--backend mteb`` runs the same loaded data through mteb as a cross-check of nDCG@10.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .results import ACCURACY_AT_K, METRIC_NAMES, PRECISION_AT_K, PRIMARY_METRIC, RECALL_AT_K, DatasetResult, EvalResult
from .retrieval import RetrievalDataset, Suite, first_line, resolve_suite

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from sentence_transformers import SentenceTransformer

BACKENDS = ("bidir", "mteb")
PRECISIONS = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}

# Ranks kept per query: the largest k of any metric (Recall@100, MAP@100).
TOP_K = 100
# Documents scored at once (InformationRetrievalEvaluator's default corpus_chunk_size): one chunk's score
# matrix is all the memory that search needs beyond the embeddings.
CORPUS_CHUNK_SIZE = 50_000
# Queries scored at once: bounds the score block to 2**27 floats (512 MiB) however many queries there are.
SCORE_BLOCK_ELEMENTS = 2**27


def log(message: str) -> None:
    """Progress and diagnostics: standard error, so standard output carries only results."""
    print(f"bidir: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Metrics


def query_metrics(ranking: list[str], relevant: set[str]) -> dict[str, float]:
    """Every metric of METRIC_NAMES for one query, as InformationRetrievalEvaluator computes it.

    Args:
        ranking: Retrieved document ids, best first (at least the top 100 when the corpus has them).
        relevant: The query's relevant document ids (non-empty).
    """
    hits = [doc_id in relevant for doc_id in ranking]
    values: dict[str, float] = {}
    # nDCG@10 with binary gains; the ideal ranking puts every relevant document first.
    dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits[:10]) if hit)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), 10)))
    values["ndcg@10"] = dcg / ideal
    first = next((rank for rank, hit in enumerate(hits[:10]) if hit), None)
    values["mrr@10"] = 0.0 if first is None else 1 / (first + 1)
    # Average precision over the top 100, normalised by min(100, |relevant|) as sentence-transformers does.
    found, precision_sum = 0, 0.0
    for rank, hit in enumerate(hits[:100]):
        if hit:
            found += 1
            precision_sum += found / (rank + 1)
    values["map@100"] = precision_sum / min(100, len(relevant))
    for k in RECALL_AT_K:
        values[f"recall@{k}"] = sum(hits[:k]) / len(relevant)
    for k in PRECISION_AT_K:
        values[f"precision@{k}"] = sum(hits[:k]) / k
    for k in ACCURACY_AT_K:
        values[f"accuracy@{k}"] = float(any(hits[:k]))
    return {name: values[name] for name in METRIC_NAMES}


# --------------------------------------------------------------------------------------------------
# Search


def search(
    query_embeddings: torch.Tensor,
    corpus_embeddings: torch.Tensor,
    similarity,
    corpus_ids: list[str],
    top_k: int = TOP_K,
) -> list[list[int]]:
    """Exact top-k corpus indices per query, ordered by (score descending, document id ascending).

    The order is InformationRetrievalEvaluator's: documents with equal scores are ranked by their id as a
    string, so the result does not depend on chunking or on how ``torch.topk`` breaks ties.

    Args:
        query_embeddings: ``[queries, dim]``.
        corpus_embeddings: ``[documents, dim]`` on the same device.
        similarity: The model's similarity function (``SentenceTransformer.similarity``).
        corpus_ids: Document ids aligned with ``corpus_embeddings``.
        top_k: Ranks kept per query.
    """
    import torch

    n_docs = len(corpus_ids)
    device = corpus_embeddings.device
    order = sorted(range(n_docs), key=corpus_ids.__getitem__)
    id_rank = torch.empty(n_docs, dtype=torch.long, device=device)
    id_rank[torch.tensor(order, device=device)] = torch.arange(n_docs, device=device)

    rankings: list[list[int]] = []
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
    return rankings


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


# --------------------------------------------------------------------------------------------------
# Encoding


def encode(
    model: SentenceTransformer,
    texts: list[str],
    *,
    kind: str,
    batch_size: int,
    truncate_dim: int | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Embed texts with the model's query or document prompt (``encode_query`` / ``encode_document``).

    Each unique text is encoded once. Batches hold texts of similar token length, longest first, so
    little compute is spent on padding and an out-of-memory error comes at once, not at the end.

    Args:
        model: The model.
        texts: Texts, duplicates allowed.
        kind: ``"query"`` or ``"document"``.
        batch_size: Texts per forward pass.
        truncate_dim: Keep the first dimensions only (Matryoshka models).
        precision: ``fp32``, or ``fp16``/``bf16`` autocast on a CUDA device.

    Returns:
        Float32 embeddings ``[len(texts), dim]`` on the model's device.
    """
    import torch

    unique = list(dict.fromkeys(texts))
    position = {text: i for i, text in enumerate(unique)}
    lengths = _token_lengths(model, unique)
    order = sorted(range(len(unique)), key=lambda i: -lengths[i])
    encode_fn = model.encode_query if kind == "query" else model.encode_document
    dtype = PRECISIONS[precision]
    autocast = torch.autocast("cuda", dtype=getattr(torch, dtype)) if dtype else nullcontext()
    parts = []
    with autocast:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            embeddings = encode_fn(
                [unique[i] for i in batch],
                batch_size=len(batch),
                convert_to_tensor=True,
                truncate_dim=truncate_dim,
                show_progress_bar=False,
            )
            parts.append(embeddings.float())
    stacked = torch.cat(parts)
    unsort = torch.empty(len(order), dtype=torch.long, device=stacked.device)
    unsort[torch.tensor(order, device=stacked.device)] = torch.arange(len(order), device=stacked.device)
    return stacked[unsort][torch.tensor([position[t] for t in texts], device=stacked.device)]


def _token_lengths(model: SentenceTransformer, texts: list[str]) -> list[int]:
    """Token counts after truncation, or character counts for models without a Hugging Face tokenizer."""
    from transformers import PreTrainedTokenizerBase

    tokenizer = getattr(model, "tokenizer", None)
    if not isinstance(tokenizer, PreTrainedTokenizerBase) or not texts:
        return [len(t) for t in texts]
    ids = tokenizer(
        texts,
        truncation=True,
        max_length=getattr(model, "max_seq_length", None),
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]
    return [len(x) for x in ids]


# --------------------------------------------------------------------------------------------------
# Model identity and the corpus-embedding cache


def fingerprint_folder(path: str | os.PathLike) -> str:
    """SHA-256 of a model folder: every file's relative path and content.

    README.md (the model card) and hidden files (download metadata) are left out: they describe a model
    without changing what it computes.
    """
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel == "README.md" or any(part.startswith(".") for part in rel.split("/")):
            continue
        h.update(rel.encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("BIDIR_CACHE_DIR") or Path.home() / ".cache" / "bidir" / "embeddings")


class EmbeddingCache:
    """Corpus embeddings on disk: ``<key>.npy`` (float32) beside ``<key>.json`` (what the key was made of)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str, rows: int) -> torch.Tensor | None:
        """The cached embeddings, or None when absent or unreadable (then they are computed again)."""
        import numpy as np
        import torch

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            array = np.load(path)
        except (OSError, ValueError) as e:
            log(f"ignoring unreadable cache file {path} ({e})")
            return None
        if array.ndim != 2 or array.shape[0] != rows:
            log(f"ignoring cache file {path}: shape {array.shape} does not fit {rows} documents")
            return None
        return torch.from_numpy(array)

    def save(self, key: str, embeddings: torch.Tensor, parts: dict[str, Any]) -> None:
        """Write atomically (temporary file, then rename): a killed run never leaves half a file."""
        import numpy as np

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, embeddings.detach().float().cpu().numpy())
                os.replace(tmp, self.path(key))
            finally:
                Path(tmp).unlink(missing_ok=True)
            self.path(key).with_suffix(".json").write_text(json.dumps(parts, indent=2, sort_keys=True) + "\n")
        except OSError as e:
            log(f"could not write the embedding cache in {self.root} ({e}); continuing without it")


def _cache_parts(model: SentenceTransformer, dataset: RetrievalDataset, model_info: dict, settings: dict) -> dict:
    """Everything that determines a corpus's embeddings: equal keys give bit-identical embeddings."""
    return {
        "model": model_info["fingerprint"],
        "corpus": dataset.corpus_hash,
        "prompts": dict(model.prompts),
        "default_prompt_name": model.default_prompt_name,
        # StaticEmbedding reports an infinite max_seq_length, which JSON cannot hold.
        "max_seq_length": seq if isinstance(seq := getattr(model, "max_seq_length", None), int) else None,
        "truncate_dim": settings["truncate_dim"],
        "precision": settings["precision"],
        "batch_size": settings["batch_size"],
        "device": settings["device"],
        "versions": {k: v for k, v in _versions().items() if k in ("sentence-transformers", "transformers", "torch")},
    }


# --------------------------------------------------------------------------------------------------
# Evaluation


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
        parts = _cache_parts(model, dataset, model_info, settings)
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
        values = query_metrics([dataset.corpus_ids[i] for i in ranking], dataset.relevant(query_id))
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
) -> EvalResult:
    """Evaluate a loaded model on loaded datasets; the importable core of ``bidir eval``.

    Args:
        model: The model.
        datasets: Datasets from ``suite`` (``Suite.load()``).
        suite: Their suite (name and source go into the results).
        model_info: ``name`` and ``fingerprint`` (``None`` disables the cache: nothing safe to key it by).
        batch_size: Encoding batch size.
        truncate_dim: Truncate embeddings to this many dimensions.
        precision: ``fp32``, ``fp16`` or ``bf16`` (the latter two on CUDA only).
        backend: ``bidir``, or ``mteb`` to add mteb's nDCG@10 of the same data (``extra["mteb"]``).
        cache: Corpus-embedding cache, or None.
    """
    settings = {
        "batch_size": batch_size,
        "truncate_dim": truncate_dim,
        "precision": precision,
        "backend": backend,
        "device": str(model.device),
        "similarity": model.similarity_fn_name,
        # StaticEmbedding reports an infinite max_seq_length, which JSON cannot hold.
        "max_seq_length": seq if isinstance(seq := getattr(model, "max_seq_length", None), int) else None,
        "prompts": dict(model.prompts),
        "top_k": TOP_K,
        "embedding_cache": str(cache.root) if cache else None,
    }
    results = {}
    for dataset in datasets:
        result = evaluate_dataset(model, dataset, model_info=model_info, settings=settings, cache=cache)
        if backend == "mteb":
            log(f"{dataset.name}: running mteb on the same data")
            t = time.perf_counter()
            score = mteb_ndcg_at_10(
                model, dataset, batch_size=batch_size, truncate_dim=truncate_dim, precision=precision
            )
            result.extra["mteb"] = {"ndcg@10": score, "time_s": round(time.perf_counter() - t, 3)}
        results[dataset.name] = result
        log(f"{dataset.name}: {PRIMARY_METRIC} {result.metrics[PRIMARY_METRIC]:.4f} ({result.time_s:.1f} s)")
    return EvalResult(
        suite={
            "name": suite.name,
            "source": suite.source,
            "hash": hashlib.sha256("".join(r.hash for r in results.values()).encode()).hexdigest(),
            "datasets": list(results),
        },
        model=dict(model_info),
        settings=settings,
        versions=_versions(with_mteb=backend == "mteb"),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        datasets=results,
    )


def mteb_ndcg_at_10(
    model: SentenceTransformer,
    dataset: RetrievalDataset,
    *,
    batch_size: int,
    truncate_dim: int | None = None,
    precision: str = "fp32",
) -> float:
    """nDCG@10 of the same data computed by mteb: a retrieval task whose data loading is overridden.

    The qrels are binarised (relevant = score > 0) as ours are, the texts are ours (titles joined),
    identical query and document ids are not ignored (DESIGN.md), and mteb's result cache is off: it keys
    local models by a generic name and could return another model's scores.
    """
    import warnings

    import mteb
    import torch
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    split = {
        "queries": Dataset.from_dict({"id": dataset.query_ids, "text": dataset.query_texts}),
        "corpus": Dataset.from_dict(
            {"id": dataset.corpus_ids, "text": dataset.corpus_texts, "title": [""] * len(dataset.corpus_ids)}
        ),
        "relevant_docs": {q: dict.fromkeys(dataset.relevant(q), 1) for q in dataset.query_ids},
        "top_ranked": None,
    }

    class CrossCheckTask(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="BidirCrossCheck",
            description=f"bidir's loaded copy of {dataset.source}",
            reference=None,
            dataset={"path": "bidir/local", "revision": dataset.hash[:12]},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="ndcg_at_10",
            date=None,
            domains=None,
            task_subtypes=None,
            license=None,
            annotations_creators=None,
            dialect=None,
            sample_creation=None,
            bibtex_citation=None,
        )
        ignore_identical_ids = False

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    dtype = PRECISIONS[precision]
    previous_dim = model.truncate_dim
    model.truncate_dim = truncate_dim  # mteb calls encode without it; the model's own setting applies
    try:
        with warnings.catch_warnings(), torch.autocast("cuda", dtype=getattr(torch, dtype)) if dtype else nullcontext():
            warnings.simplefilter("ignore")
            result = mteb.evaluate(
                model,
                CrossCheckTask(),
                cache=None,
                overwrite_strategy="always",
                show_progress_bar=False,
                encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
            )
    finally:
        model.truncate_dim = previous_dim
    return float(result.task_results[0].scores["test"][0]["ndcg_at_10"])


# --------------------------------------------------------------------------------------------------
# The command


def resolve_model(spec: str) -> tuple[str, Path | None]:
    """Check MODEL_OR_RUN without loading anything: a run directory (then its ``model/``), a folder or a hub id.

    Returns:
        What to load (a folder path or a hub id) and the run directory (or None).
    """
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "meta.json").is_file():
        if not (path / "model").is_dir():
            raise InputError(
                f"{spec}: a run directory without model/ (status: {_run_status(path)}); nothing to evaluate"
            )
        return str(path / "model"), path
    if path.is_dir():
        return str(path), None
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise InputError(f"{spec}: no such model folder or run directory")
    return spec, None  # a hub id


def load_model(target: str) -> tuple[SentenceTransformer, dict[str, Any]]:
    """Load a model folder or hub id (from :func:`resolve_model`) and describe it.

    Returns:
        The model and its identity: ``name``, ``path``, ``fingerprint`` (a hash of the model's files; None
        when they cannot be found, which turns the cache off) and, for hub ids, ``revision``.
    """
    from sentence_transformers import SentenceTransformer

    is_local = Path(target).is_dir()
    log(f"loading model {target}")
    try:
        model = SentenceTransformer(target)
    except Exception as e:  # noqa: BLE001 - whatever the reason, the input did not name a loadable model
        where = "model folder" if is_local else "hub id (it is not a local folder either)"
        raise InputError(f"{target}: cannot load as a {where}: {type(e).__name__}: {first_line(e)}") from None

    info: dict[str, Any] = {"name": target, "path": str(Path(target).resolve()) if is_local else None}
    folder = Path(target) if is_local else _hub_snapshot(target)
    info["fingerprint"] = fingerprint_folder(folder) if folder else None
    if folder and not is_local:
        info["revision"] = folder.name  # the hub cache names a snapshot folder after its commit
    if not folder:
        log(f"{target}: model files not found locally, so no fingerprint; the embedding cache is off")
    return model, info


def _hub_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local hub cache: no fingerprint, no caching
        return None


def _run_status(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "meta.json").read_text(encoding="utf-8")).get("status", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unreadable meta.json"


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
) -> EvalResult:
    """``bidir eval``: check the arguments, load the data (fail fast), load the model, evaluate, write, render."""
    from rich.console import Console

    if backend not in BACKENDS:
        raise InputError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise InputError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "fp32":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--precision {precision} needs a CUDA device; on a CPU use fp32")

    target, run_dir = resolve_model(model)
    chosen = resolve_suite(suite).select(datasets)
    loaded = chosen.load()
    for dataset in loaded:
        log(f"{dataset.name}: {dataset.counts['corpus']} documents, {dataset.counts['queries']} queries evaluated")
        for note in dataset.notes:
            log(f"{dataset.name}: {note}")

    st_model, model_info = load_model(target)
    model_info["name"] = model
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
    )
    targets = ([run_dir / "eval" / f"{_file_name(chosen.name)}.json"] if run_dir else []) + ([output] if output else [])
    for target in targets:
        result.save(target)
        log(f"results written to {target}")
    console = Console()
    if not console.is_terminal:  # a pipe or file has no width: do not squeeze the table into 80 columns
        console = Console(width=160)
    render(result, console)
    return result


def render(result: EvalResult, console: Console) -> None:
    """The results table: one row per dataset and their mean; with mteb, both backends' nDCG@10."""
    from rich.table import Table

    with_mteb = any("mteb" in d.extra for d in result.datasets.values())
    columns = ["ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100", "precision@1"]
    table = Table()
    table.add_column("dataset")
    table.add_column("docs", justify="right")
    table.add_column("queries", justify="right")
    for name in columns:
        table.add_column(name, justify="right")
    if with_mteb:
        table.add_column("mteb ndcg@10", justify="right")
        table.add_column("|diff|", justify="right")
    table.add_column("time (s)", justify="right")

    def mteb_cells(ours: float, theirs: float | None) -> list[str]:
        return ["-", "-"] if theirs is None else [f"{theirs:.4f}", f"{abs(ours - theirs):.1e}"]

    for d in result.datasets.values():
        theirs = d.extra.get("mteb", {}).get("ndcg@10")
        row = [d.name, str(d.counts["corpus"]), str(d.counts["queries"]), *(f"{d.metrics[m]:.4f}" for m in columns)]
        table.add_row(*row, *(mteb_cells(d.metrics["ndcg@10"], theirs) if with_mteb else []), f"{d.time_s:.1f}")
    if len(result.datasets) > 1:
        mean = result.mean
        theirs = [d.extra.get("mteb", {}).get("ndcg@10") for d in result.datasets.values()]
        mteb_mean = sum(theirs) / len(theirs) if with_mteb and None not in theirs else None
        table.add_section()
        table.add_row(
            "mean",
            "",
            "",
            *(f"{mean[m]:.4f}" for m in columns),
            *(mteb_cells(mean["ndcg@10"], mteb_mean) if with_mteb else []),
            f"{sum(d.time_s for d in result.datasets.values()):.1f}",
        )
    console.print(f"{result.model.get('name')} on {result.suite['name']}", highlight=False)
    console.print(table)


def _versions(with_mteb: bool = False) -> dict[str, str]:
    from . import __version__

    versions = {"bidir": __version__, "python": platform.python_version()}
    for package in ("sentence-transformers", "transformers", "torch", "datasets", *(["mteb"] if with_mteb else [])):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "suite"
