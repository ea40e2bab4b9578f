"""The losses bidir trains with, and the registry that builds one from the config's ``loss`` section.

* ``mnbrl``  MultipleNegativesBidirectionalRankingLoss (GTE improved contrastive loss)
* ``cmnbrl`` CachedMultipleNegativesBidirectionalRankingLoss (the same, with GradCache)
* ``mnrl``   sentence-transformers' MultipleNegativesRankingLoss (baseline, q->d only)
* ``cmnrl``  sentence-transformers' CachedMultipleNegativesRankingLoss (baseline, with GradCache)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .bidirectional import (
    BLOCKS,
    PARTITION_STATS,
    MultipleNegativesBidirectionalRankingLoss,
    PartitionTracker,
)
from .cached_bidirectional import CachedMultipleNegativesBidirectionalRankingLoss

LOSS_NAMES: tuple[str, ...] = ("mnbrl", "cmnbrl", "mnrl", "cmnrl")
CACHED_LOSSES: tuple[str, ...] = ("cmnbrl", "cmnrl")
BIDIRECTIONAL_LOSSES: tuple[str, ...] = ("mnbrl", "cmnbrl")

__all__ = [
    "BLOCKS",
    "CACHED_LOSSES",
    "BIDIRECTIONAL_LOSSES",
    "LOSS_NAMES",
    "PARTITION_STATS",
    "CachedMultipleNegativesBidirectionalRankingLoss",
    "MultipleNegativesBidirectionalRankingLoss",
    "PartitionTracker",
    "build_loss",
    "partition_tracker",
]


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
    common = dict(
        scale=s["scale"], similarity_fct=similarity_function(s["similarity"]),
        gather_across_devices=s["gather_across_devices"],
    )  # fmt: skip
    if s["name"] == "mnbrl":
        loss = MultipleNegativesBidirectionalRankingLoss(model, doc_doc_mask=s["doc_doc_mask"], **common)
    elif s["name"] == "cmnbrl":
        loss = CachedMultipleNegativesBidirectionalRankingLoss(
            model, doc_doc_mask=s["doc_doc_mask"], mini_batch_size=s["mini_batch_size"], **common
        )
    elif s["name"] == "mnrl":
        loss = st_losses.MultipleNegativesRankingLoss(model, **common)
    elif s["name"] == "cmnrl":
        loss = st_losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=s["mini_batch_size"], **common)
    else:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {s['name']!r}")
    if s["matryoshka_dims"]:
        loss = st_losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(s["matryoshka_dims"]))
    return loss


def partition_tracker(loss: nn.Module) -> PartitionTracker | None:
    """The partition diagnostics of a bidirectional loss, also behind a MatryoshkaLoss; None for others."""
    inner = getattr(loss, "loss", loss)
    return getattr(inner, "partition", None) if isinstance(inner, nn.Module) else None
