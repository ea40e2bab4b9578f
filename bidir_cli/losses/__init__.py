"""The losses bidir trains with, and the registry that builds one from the config's ``loss`` section.

:data:`LOSSES` is the one table of losses: the config accepts exactly its names, and ``build_loss``
builds from it. Adding a loss is one module (``losses/<name>.py``, one class) plus one entry here.
This module imports no torch, so that validating a config and ``bidir --help`` stay fast; the loss
classes are imported when first used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .bidirectional import PartitionTracker


@dataclass(frozen=True)
class LossSpec:
    """One loss of the registry.

    Attributes:
        target: ``module:Class`` of the loss, imported when it is built.
        bidirectional: Takes ``doc_doc_mask`` and records partition shares (the GTE loss).
        cached: Takes ``mini_batch_size`` (GradCache); cannot train a StaticEmbedding model.
        summary: One line for documentation.
    """

    target: str
    bidirectional: bool
    cached: bool
    summary: str


_ST_LOSSES = "sentence_transformers.sentence_transformer.losses"

LOSSES: dict[str, LossSpec] = {
    "mnbrl": LossSpec(
        "bidir_cli.losses.bidirectional:MultipleNegativesBidirectionalRankingLoss", True, False,
        "MultipleNegativesBidirectionalRankingLoss (GTE improved contrastive loss)",
    ),
    "cmnbrl": LossSpec(
        "bidir_cli.losses.cached_bidirectional:CachedMultipleNegativesBidirectionalRankingLoss", True, True,
        "CachedMultipleNegativesBidirectionalRankingLoss (the same, with GradCache)",
    ),
    "mnrl": LossSpec(
        f"{_ST_LOSSES}:MultipleNegativesRankingLoss", False, False,
        "sentence-transformers' MultipleNegativesRankingLoss (baseline, q->d only)",
    ),
    "cmnrl": LossSpec(
        f"{_ST_LOSSES}:CachedMultipleNegativesRankingLoss", False, True,
        "sentence-transformers' CachedMultipleNegativesRankingLoss (baseline, with GradCache)",
    ),
}  # fmt: skip
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)
BIDIRECTIONAL_LOSSES: tuple[str, ...] = tuple(name for name, spec in LOSSES.items() if spec.bidirectional)
CACHED_LOSSES: tuple[str, ...] = tuple(name for name, spec in LOSSES.items() if spec.cached)

# Names importable from this package, loaded on first use (they need torch).
_LAZY = {
    "BLOCKS": "bidirectional",
    "PARTITION_STATS": "bidirectional",
    "PartitionTracker": "bidirectional",
    "MultipleNegativesBidirectionalRankingLoss": "bidirectional",
    "CachedMultipleNegativesBidirectionalRankingLoss": "cached_bidirectional",
}

__all__ = [
    "BIDIRECTIONAL_LOSSES",
    "CACHED_LOSSES",
    "LOSSES",
    "LOSS_NAMES",
    "LossSpec",
    "build_loss",
    "partition_tracker",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def similarity_function(name: str):
    """``cosine`` or ``dot``, as sentence-transformers' similarity functions."""
    from sentence_transformers import util

    functions = {"cosine": util.cos_sim, "dot": util.dot_score}
    if name not in functions:
        raise ValueError(f"similarity must be one of {sorted(functions)}, got {name!r}")
    return functions[name]


def build_loss(model: nn.Module, cfg: Any) -> nn.Module:
    """Build the loss that the config's ``loss`` section (:class:`bidir_cli.config.LossConfig`) names.

    Raises:
        ValueError: the loss refuses the model (a cached loss and a StaticEmbedding model).
    """
    from sentence_transformers.sentence_transformer import losses as st_losses

    s = cfg.settings()
    if s["name"] not in LOSSES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {s['name']!r}")
    spec = LOSSES[s["name"]]
    module, _, cls = spec.target.partition(":")
    options = dict(
        scale=s["scale"], similarity_fct=similarity_function(s["similarity"]),
        gather_across_devices=s["gather_across_devices"],
    )  # fmt: skip
    if spec.bidirectional:
        options["doc_doc_mask"] = s["doc_doc_mask"]
    if spec.cached:
        options["mini_batch_size"] = s["mini_batch_size"]
    loss = getattr(importlib.import_module(module), cls)(model, **options)
    if s["matryoshka_dims"]:
        loss = st_losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(s["matryoshka_dims"]))
    return loss


def partition_tracker(loss: nn.Module) -> PartitionTracker | None:
    """The partition diagnostics of a bidirectional loss, also behind a MatryoshkaLoss; None for others."""
    from torch import nn

    inner = getattr(loss, "loss", loss)
    return getattr(inner, "partition", None) if isinstance(inner, nn.Module) else None
