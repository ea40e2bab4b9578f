"""Models: the one to train (a hub id, a local folder, or a StaticEmbedding built from a tokenizer), the one
to evaluate (a run directory, a folder or a hub id), and a model's identity (a fingerprint of its files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..console import log
from ..errors import InputError, first_line
from ..runs.rundir import RunDir, fingerprint_folder


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


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
