"""CachedMultipleNegativesBidirectionalRankingLoss: MNBRL with GradCache (Gao et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin, has_static_embedding_input
from sentence_transformers.util import cos_sim, similarity_fct_name
from torch import Tensor, nn

from .partition import CITATION, DocDocMask, PartitionTracker, check_doc_doc_mask, gathered_loss, resolve_scale

GRADCACHE_CITATION = """
@misc{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    year={2021},
    eprint={2101.06983},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""


class CachedMultipleNegativesBidirectionalRankingLoss(CachedLossMixin, nn.Module):
    def __init__(
        self,
        model: nn.Module,
        scale: float | None = None,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        doc_doc_mask: DocDocMask = "same_query",
        mini_batch_size: int = 32,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
        temperature: float | None = None,
    ) -> None:
        """:class:`MultipleNegativesBidirectionalRankingLoss` with GradCache, so that the batch size, and with it
        the number of negatives, is not bounded by the encoder's activation memory.

        GradCache works in three steps: (1) embed every mini-batch without building a graph, keeping each
        mini-batch's random state; (2) compute the loss over the whole batch and its gradient with respect
        to the embeddings; (3) in the backward pass, re-embed mini-batch by mini-batch with the saved random
        state (so dropout draws the same masks) and back-propagate the cached gradient. The price is a second
        forward pass.

        Args:
            model: the SentenceTransformer model being trained. Not a StaticEmbedding model: its inputs have
                no batch dimension to cut into mini-batches, and it needs no caching (use the uncached loss).
            scale: inverse temperature (default 20).
            similarity_fct: cosine (``util.cos_sim``, default) or dot product (``util.dot_score``).
            doc_doc_mask: ``"same_query"`` (default) or ``"self"``; see the uncached loss.
            mini_batch_size: texts embedded at once; bounds activation memory, not the loss.
            gather_across_devices: all-gather embeddings across processes, with gradients.
            show_progress_bar: show progress over the mini-batches.
            temperature: alternative to ``scale``.

        Requirements:
            1. (anchor, positive) pairs, or (anchor, positive, negative_1, ..., negative_n) tuples.
            2. A model whose inputs can be split along the batch (any transformer; not StaticEmbedding).
            3. The no-duplicates batch sampler.
            4. No text that embeds to a zero vector: with cosine similarity its gradient is multiplied by 1e12
               (see the uncached loss).

        Inputs:
            +-------------------------------------------------+--------+
            | Texts                                           | Labels |
            +=================================================+========+
            | (anchor, positive) pairs                        | none   |
            +-------------------------------------------------+--------+
            | (anchor, positive, negative_1, ..., negative_n) | none   |
            +-------------------------------------------------+--------+

        Relations:
            - Equals :class:`MultipleNegativesBidirectionalRankingLoss` in loss and gradients, to float tolerance,
              with dropout off. With dropout on the masks differ (with hard negatives, or mini-batches smaller
              than the batch), and so do loss and gradients, by dropout noise: the uncached loss embeds all
              document columns together in one forward pass, this one column by column and mini-batch by
              mini-batch (and its second pass replays its own first pass's masks exactly).
            - The bidirectional twin of sentence-transformers' CachedMultipleNegativesRankingLoss.
            - Composes with MatryoshkaLoss (which recognises sentence-transformers' GradCache interface).
              AdaptiveLayerLoss and Matryoshka2dLoss cannot wrap a cached loss.

        Example:
            ::

                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from bidir_cli.losses import CachedMultipleNegativesBidirectionalRankingLoss

                model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
                loss = CachedMultipleNegativesBidirectionalRankingLoss(model, mini_batch_size=32)
                SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss).train()
        """
        super().__init__()
        if has_static_embedding_input(model):
            raise ValueError(
                "CachedMultipleNegativesBidirectionalRankingLoss cannot train a StaticEmbedding model: its inputs "
                "cannot be split into mini-batches, and it needs no caching. Use "
                "MultipleNegativesBidirectionalRankingLoss (loss: mnbrl) instead."
            )
        check_doc_doc_mask(doc_doc_mask)
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be at least 1, got {mini_batch_size}")
        self.model = model
        self.scale = resolve_scale(scale, temperature)
        self.similarity_fct = similarity_fct
        self.doc_doc_mask = doc_doc_mask
        self.mini_batch_size = mini_batch_size
        self.gather_across_devices = gather_across_devices
        self.show_progress_bar = show_progress_bar
        self.partition = PartitionTracker()

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        """The loss over the whole batch from the per-mini-batch embeddings (GradCache step 2)."""
        loss, stats = gathered_loss(self, torch.cat(reps[0]), [torch.cat(column) for column in reps[1:]])
        if with_backward:
            self.partition.add(stats, width=reps[0][0].size(-1))
            loss.backward()
            loss = loss.detach()
        return loss

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = list(sentence_features)
        if len(sentence_features) < 2:
            raise ValueError(f"Expected at least 2 inputs (anchor, positive), got {len(sentence_features)}")
        return self.forward_cached(sentence_features, labels)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "similarity_fct": similarity_fct_name(self.similarity_fct),
            "doc_doc_mask": self.doc_doc_mask,
            "mini_batch_size": self.mini_batch_size,
            "gather_across_devices": self.gather_across_devices,
        }

    @property
    def citation(self) -> str:
        return CITATION + GRADCACHE_CITATION
