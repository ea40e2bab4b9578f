"""Models: the one to train (a hub id, a local folder, or a StaticEmbedding built from a tokenizer), the one
to evaluate (a run directory, a folder or a hub id), and a model's identity (a fingerprint of its files)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import ModelConfig
from .errors import InputError, first_line
from .io import log
from .runs import RunDir


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A lower-cased WordPiece tokenizer whose vocabulary is learnt from ``texts``, deterministically.

    The vocabulary is every character seen (alone and as a ``##`` continuation, so no word is unknown)
    plus the most frequent words, ties broken alphabetically. The tokenizers library's own WordPiece
    trainer breaks ties in hash order, which differs between processes: a resumed run would then map
    tokens to other rows of the checkpoint's embedding matrix, and two runs of one config would differ.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = sorted({c for word in counts for c in word})
    vocab = specials + characters + [f"##{c}" for c in characters]
    known = set(vocab)
    words = sorted((w for w in counts if w not in known), key=lambda w: (-counts[w], w))
    vocab += words[: max(0, vocab_size - len(vocab))]

    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip


def load_tokenizer(name: str, revision: str | None):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(Path(name).expanduser()) if looks_like_path(name) else name,
                                                  revision=revision)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - offline, missing or malformed: one message
        raise InputError(
            f"model.static.tokenizer: could not load tokenizer {name!r}: {type(e).__name__}: {e}"
        ) from None
    if not tokenizer.is_fast:
        raise InputError(f"model.static.tokenizer: {name!r} is not a fast tokenizer, which StaticEmbedding needs")
    return tokenizer


def build_model(cfg: ModelConfig, train_texts: Iterable[str] | None = None, device: str | None = None):
    """The SentenceTransformer to train, with the config's sequence length and prompts."""
    from sentence_transformers import SentenceTransformer

    if cfg.static is not None:
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding

        if cfg.static.tokenizer == "train":
            if train_texts is None:
                raise InputError("model.static.tokenizer: 'train' needs the training texts")
            tokenizer = train_tokenizer(train_texts, cfg.static.vocab_size)
        else:
            tokenizer = load_tokenizer(cfg.static.tokenizer, cfg.revision)
        model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=cfg.static.dim)], device=device)
    else:
        model = load_model(cfg.name_or_path, revision=cfg.revision, device=device, where="model.name_or_path")
    if cfg.max_seq_length is not None and cfg.static is None:
        model.max_seq_length = cfg.max_seq_length
    prompts = {k: v for k, v in (("query", cfg.query_prompt), ("document", cfg.document_prompt)) if v}
    if prompts:
        model.prompts = {**model.prompts, **prompts}
    return model


# sentence-transformers' inference backends (``--model-backend``) -> (the module it needs, what installs it).
MODEL_BACKENDS = {
    "torch": None,
    "onnx": ("optimum.onnxruntime", "sentence-transformers[onnx]"),
    "openvino": ("optimum.intel.openvino", "bidir[openvino]"),
}


def backend_problem(backend: str) -> str | None:
    """Why a model backend cannot run here (an unknown name, its packages missing), or None."""
    import importlib.util

    if backend not in MODEL_BACKENDS:
        return f"{backend!r} is not one of {', '.join(MODEL_BACKENDS)}"
    if MODEL_BACKENDS[backend] is None:
        return None
    module, extra = MODEL_BACKENDS[backend]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        return (
            f"its packages are not installed (no module {module}); install {extra!r}, in an environment of its "
            "own (docs/eval.md, CPU speed)"
        )
    return None


def load_model(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    where: str = "model",
    trust_remote_code: bool = False,
    backend: str = "torch",
    model_kwargs: dict[str, Any] | None = None,
):
    """A SentenceTransformer from a local folder or a hub id, with one clear message when it cannot load.

    ``backend`` is sentence-transformers' ``backend`` (``torch``, ``onnx`` or ``openvino``; the latter two
    export a torch model on load when the folder has no exported copy) and ``model_kwargs`` its
    ``model_kwargs`` (e.g. OpenVINO's ``ov_config``).
    """
    from sentence_transformers import SentenceTransformer

    if looks_like_path(name):
        path = Path(name).expanduser()
        named = where if where in (name, str(path)) else f"{where}: {name}"
        if not path.is_dir():
            raise InputError(f"{named}: no such model folder")
        check_model_folder(path, named)
        name = str(path)
    try:
        return SentenceTransformer(
            name,
            revision=revision,
            device=device,
            trust_remote_code=trust_remote_code,
            backend=backend,
            model_kwargs=model_kwargs,
        )
    except Exception as e:  # noqa: BLE001 - offline hub, missing files, bad weights: one message
        hint = "" if looks_like_path(name) else " (offline? give a local model folder instead)"
        raise InputError(f"{where}: could not load model {name!r}{hint}: {type(e).__name__}: {first_line(e)}") from None


def max_seq_length(model: Any) -> int | None:
    """The model's input limit in tokens; None for StaticEmbedding, which reports infinity (not JSON)."""
    length = getattr(model, "max_seq_length", None)
    return length if isinstance(length, int) else None


def model_description(model: Any) -> dict[str, Any]:
    """Architecture facts for meta.json."""
    return {
        "modules": [type(m).__name__ for m in model],
        "embedding_dimension": model.get_embedding_dimension(),
        "max_seq_length": max_seq_length(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompts": dict(model.prompts),
    }


# --------------------------------------------------------------------------------------------------
# The model to evaluate, and its identity


def check_model_folder(path: Path, named: str) -> None:
    """Refuse, in bidir's words, a folder that holds no model (transformers would say "Unrecognized model")."""
    if not any((path / f).is_file() for f in ("modules.json", "config.json")):
        raise InputError(
            f"{named}: not a model folder (a sentence-transformers or transformers model has modules.json or "
            "config.json)"
        )


def resolve_model(spec: str) -> tuple[str, RunDir | None]:
    """Check MODEL_OR_RUN without loading anything: a run directory (then its ``model/``), a folder or a hub id.

    Returns:
        What to load (a folder path or a hub id) and the run directory (or None).
    """
    path = Path(spec).expanduser()
    run = RunDir(path)
    if path.is_dir() and run.is_run():
        if not run.model.is_dir():
            raise InputError(f"{spec}: a run directory without model/ (status: {run.status()}); nothing to evaluate")
        return str(run.model), run
    if path.is_dir():
        check_model_folder(path, spec)
        return str(path), None
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise InputError(f"{spec}: no such model folder or run directory")
    return spec, None  # a hub id


def load_for_evaluation(spec: str, **load_options: Any) -> tuple[Any, dict[str, Any], RunDir | None]:
    """Load MODEL_OR_RUN (a run directory, a model folder or a hub id) and describe it.

    ``load_options`` go to :func:`load_model` (``device``, ``trust_remote_code``, ``backend``, ``model_kwargs``).

    Returns:
        The model; its identity: ``name`` (``spec``), ``path``, ``fingerprint`` (a hash of the model's files;
        None when they cannot be found, which turns the embedding cache off) and, for hub ids, ``revision``;
        and the run directory it belongs to (or None).
    """
    target, run = resolve_model(spec)
    log(f"loading model {target}")
    model = load_model(target, where=spec, **load_options)
    is_local = Path(target).is_dir()
    info: dict[str, Any] = {"name": spec, "path": str(Path(target).resolve()) if is_local else None}
    folder = Path(target) if is_local else _hub_snapshot(target)
    info["fingerprint"] = fingerprint_folder(folder) if folder else None
    if folder and not is_local:
        info["revision"] = folder.name  # the hub cache names a snapshot folder after its commit
    if not folder:
        log(f"{target}: model files not found locally, so no fingerprint; the embedding cache is off")
    return model, info, run


def _hub_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local hub cache: no fingerprint, no caching
        return None


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
