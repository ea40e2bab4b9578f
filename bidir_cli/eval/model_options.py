"""How ``bidir eval`` loads and sets up the model: device, model backend and its precisions, the command line's
prompts and maximum sequence length, and a suite file's per-dataset prompts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..models.load import max_seq_length as model_max_seq_length

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


# The precisions each model backend can run: ONNX Runtime runs the exported fp32 graph; OpenVINO takes a
# precision hint (``INFERENCE_PRECISION_HINT``); torch uses autocast (encode.py).
BACKEND_PRECISIONS = {"torch": ("fp32", "fp16", "bf16"), "onnx": ("fp32",), "openvino": ("fp32", "bf16")}


OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}


def backend_model_kwargs(backend: str, precision: str) -> dict[str, Any] | None:
    """sentence-transformers' ``model_kwargs`` for a backend at a precision (OpenVINO's precision hint)."""
    return {"ov_config": {"INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision]}} if backend == "openvino" else None


@contextmanager
def dataset_prompts(model: SentenceTransformer, prompts: dict[str, str]) -> Iterator[dict[str, str]]:
    """The model's prompts with a dataset's own (from a suite file) in force for the block; yields them."""
    previous = model.prompts
    model.prompts = {**previous, **prompts}
    try:
        yield dict(model.prompts)
    finally:
        model.prompts = previous


def parse_device(device: str | None) -> str | None:
    """``--device``: a torch device (``cpu``, ``cuda``, ``cuda:1``, ``mps``) that exists here, or None (the
    default: sentence-transformers chooses, a GPU when there is one)."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device here")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available here")
    return device


def apply_overrides(
    model: SentenceTransformer,
    *,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    max_seq_length: int | None = None,
) -> dict[str, Any]:
    """Set the command line's prompts and maximum sequence length on a loaded model; return what was set.

    A prompt replaces the model's prompt of that name (``query`` or ``document``, the names
    ``encode_query``/``encode_document`` use); an empty prompt removes it. A suite file's per-dataset prompts
    still take precedence (:func:`dataset_prompts`).

    Raises:
        InputError: the maximum sequence length is beyond the model's position embeddings, or the model
            (a StaticEmbedding) has none.
    """
    overrides: dict[str, Any] = {}
    prompts = {k: v for k, v in (("query", query_prompt), ("document", document_prompt)) if v is not None}
    if prompts:
        model.prompts = {**model.prompts, **prompts}
        overrides |= {f"{kind}_prompt": text for kind, text in prompts.items()}
    if max_seq_length is not None:
        if model_max_seq_length(model) is None:
            raise InputError("--max-seq-length: this model has no maximum sequence length (StaticEmbedding)")
        config = getattr(getattr(model[0], "auto_model", None), "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        if isinstance(limit, int) and max_seq_length > limit:
            raise InputError(f"--max-seq-length {max_seq_length}: the model has {limit} positions")
        model.max_seq_length = max_seq_length
        overrides["max_seq_length"] = max_seq_length
    return overrides
