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

    from .partition import PartitionTracker


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


@dataclass(frozen=True)
class WrapperSpec:
    """A sentence-transformers loss modifier that ``loss.wrapper`` puts around a loss of :data:`LOSSES`.

    Attributes:
        target: ``module:Class`` of the wrapper, imported when it is built.
        options: The ``loss`` fields it takes, passed under their own names (the wrapper's arguments) when given.
        required: The options it cannot do without.
        wraps_cached: Whether it can wrap a cached loss. AdaptiveLayerLoss (and Matryoshka2dLoss, built on it)
            runs the inner loss once per layer inside a forward-patching context, which GradCache's deferred
            backward outlives; MatryoshkaLoss knows the cached losses' interface.
        needs_layers: Whether it needs a transformer model (it trains the outputs of earlier layers too).
        summary: One line for documentation.
    """

    target: str
    options: tuple[str, ...]
    required: tuple[str, ...]
    wraps_cached: bool
    needs_layers: bool
    summary: str


MATRYOSHKA_OPTIONS = ("matryoshka_dims", "matryoshka_weights", "n_dims_per_step")
LAYER_OPTIONS = (
    "n_layers_per_step", "last_layer_weight", "prior_layers_weight", "kl_div_weight", "kl_temperature", "layer_weighting",
)  # fmt: skip

WRAPPERS: dict[str, WrapperSpec] = {
    "matryoshka": WrapperSpec(
        f"{_ST_LOSSES}:MatryoshkaLoss", MATRYOSHKA_OPTIONS, ("matryoshka_dims",), True, False,
        "MatryoshkaLoss: the loss at each of matryoshka_dims, so embeddings can be truncated",
    ),
    "matryoshka2d": WrapperSpec(
        f"{_ST_LOSSES}:Matryoshka2dLoss", (*MATRYOSHKA_OPTIONS, *LAYER_OPTIONS), ("matryoshka_dims",), False, True,
        "Matryoshka2dLoss: MatryoshkaLoss inside AdaptiveLayerLoss (fewer dimensions and fewer layers)",
    ),
    "adaptive_layer": WrapperSpec(
        f"{_ST_LOSSES}:AdaptiveLayerLoss", LAYER_OPTIONS, (), False, True,
        "AdaptiveLayerLoss: the loss at earlier layers too, so the model can be cut short",
    ),
}  # fmt: skip
WRAPPER_NAMES: tuple[str, ...] = tuple(WRAPPERS)
WRAPPER_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(o for spec in WRAPPERS.values() for o in spec.options))

# Names importable from this package, loaded on first use (they need torch).
_LAZY = {
    "BLOCKS": "partition",
    "PARTITION_STATS": "partition",
    "PartitionTracker": "partition",
    "MultipleNegativesBidirectionalRankingLoss": "bidirectional",
    "CachedMultipleNegativesBidirectionalRankingLoss": "cached_bidirectional",
}

__all__ = [
    "BIDIRECTIONAL_LOSSES",
    "CACHED_LOSSES",
    "LOSSES",
    "LOSS_NAMES",
    "WRAPPERS",
    "WRAPPER_NAMES",
    "WRAPPER_OPTIONS",
    "LossSpec",
    "WrapperSpec",
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


def _load(target: str) -> type:
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def build_loss(model: nn.Module, cfg: Any) -> nn.Module:
    """Build the loss that the config's ``loss`` section (:class:`bidir_cli.config.LossConfig`) names, inside
    its wrapper (:data:`WRAPPERS`) when it has one.

    Raises:
        ValueError: the loss refuses the model (a cached loss and a StaticEmbedding model), or the wrapper
            refuses the loss (a layer wrapper around a cached loss).
    """
    s = cfg.settings()
    if s["name"] not in LOSSES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {s['name']!r}")
    spec = LOSSES[s["name"]]
    options = dict(
        scale=s["scale"], similarity_fct=similarity_function(s["similarity"]),
        gather_across_devices=s["gather_across_devices"],
    )  # fmt: skip
    if spec.bidirectional:
        options["doc_doc_mask"] = s["doc_doc_mask"]
    if spec.cached:
        options["mini_batch_size"] = s["mini_batch_size"]
    loss = _load(spec.target)(model, **options)
    if s["wrapper"] is None:
        return loss
    wrapper = WRAPPERS[s["wrapper"]]
    if spec.cached and not wrapper.wraps_cached:
        raise ValueError(f"wrapper {s['wrapper']} cannot wrap a cached loss ({s['name']})")
    return _load(wrapper.target)(model, loss, **{k: s[k] for k in wrapper.options if s.get(k) is not None})


def partition_tracker(loss: nn.Module) -> PartitionTracker | None:
    """The partition diagnostics of a bidirectional loss, also inside wrappers (each keeps its inner loss as
    ``.loss``); None for others."""
    from torch import nn

    while isinstance(loss, nn.Module):
        if (tracker := getattr(loss, "partition", None)) is not None:
            return tracker
        loss = getattr(loss, "loss", None)
    return None
