"""Encoding texts for evaluation: each unique text once, in batches of similar token length."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


# A precision -> the torch dtype of autocast (None: plain fp32).
PRECISIONS = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}


def precision_problem(precision: str, cuda: bool) -> str | None:
    """The one rule for training and evaluation precision: fp16 needs a CUDA device, bf16 and fp32 run anywhere.

    fp16 mixed precision needs a loss scaler and half-precision kernels that only CUDA has (transformers' fp16
    on a CPU does not train in fp16); bf16 autocast exists on CPUs too.
    """
    if precision not in PRECISIONS:
        return f"{precision!r} is not one of {', '.join(PRECISIONS)}"
    if precision == "fp16" and not cuda:
        return "fp16 needs a CUDA device; on a CPU use bf16 or fp32"
    return None


def autocast(precision: str, device_type: str = "cuda"):
    """The autocast context of a precision on a device type (``cuda`` or ``cpu``); nothing for fp32."""
    import torch

    dtype = PRECISIONS[precision]
    return torch.autocast(device_type, dtype=getattr(torch, dtype)) if dtype else nullcontext()


def encode(
    model: SentenceTransformer,
    texts: list[str],
    *,
    kind: str,
    batch_size: int,
    truncate_dim: int | None = None,
    precision: str = "fp32",
    progress: bool | None = None,
    desc: str = "encoding",
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
        precision: ``fp32``, or ``fp16``/``bf16`` autocast on the model's device (see :func:`precision_problem`).
        progress: A progress bar on standard error (texts encoded, rate, time left): True, False, or None
            for "when standard error is a terminal" (a log file gets no bar).
        desc: The bar's label.

    Returns:
        Float32 embeddings ``[len(texts), dim]`` on the model's device.
    """
    import torch
    from tqdm.auto import tqdm

    unique = list(dict.fromkeys(texts))
    position = {text: i for i, text in enumerate(unique)}
    lengths = _token_lengths(model, unique)
    order = sorted(range(len(unique)), key=lambda i: -lengths[i])
    encode_fn = model.encode_query if kind == "query" else model.encode_document
    parts = []
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(unique), desc=desc, unit=" texts", file=sys.stderr, disable=not show, leave=False)
    with bar, autocast(precision, model.device.type):
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
            bar.update(len(batch))
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
