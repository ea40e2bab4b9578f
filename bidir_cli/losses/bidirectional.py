"""MultipleNegativesBidirectionalRankingLoss: the GTE "improved contrastive loss" (Li et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.util import (
    cos_sim,
    similarity_fct_name,
)
from torch import Tensor, nn

from .partition import (
    CITATION,
    DocDocMask,
    PartitionTracker,
    check_doc_doc_mask,
    gathered_loss,
    replays_an_earlier_layer,
    resolve_scale,
)


class MultipleNegativesBidirectionalRankingLoss(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        scale: float | None = None,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        doc_doc_mask: DocDocMask = "same_query",
        gather_across_devices: bool = False,
        temperature: float | None = None,
    ) -> None:
        """The GTE "improved contrastive loss" (Li et al. 2023, arXiv 2308.03281): in-batch negatives in
        both directions and of both types, in one softmax partition.

        For query q_i with positive d+_i, the partition Z_i sums four blocks of scaled similarities::

            q->d  s(q_i, d_j)   every document (all positives and hard negatives of the batch)
            q->q  s(q_i, q_j)   every query j != i
            d->q  s(q_j, d+_i)  every query (j = i included, as in the paper)
            d->d  s(d_j, d+_i)  every document except those of query i (``doc_doc_mask="same_query"``)
                                or except d+_i alone (``doc_doc_mask="self"``)

        and ``loss_i = log Z_i - scale * s(q_i, d+_i)``, averaged over the batch. Hard negatives enter
        only as documents: they never act as queries. Compared with
        :class:`~sentence_transformers.losses.MultipleNegativesRankingLoss` (q->d only), each query is also
        pushed away from the other queries, and each positive from the other queries and documents.

        Args:
            model: the SentenceTransformer model being trained.
            scale: inverse temperature applied to the similarities (default 20, i.e. temperature 0.05).
            similarity_fct: similarity between embeddings, (m, D) x (n, D) -> (m, n): cosine
                (``util.cos_sim``, default) or dot product (``util.dot_score``, then use a small scale).
            doc_doc_mask: ``"same_query"`` (default) leaves all of query i's own documents, its hard negatives
                included, out of row i's d->d block, as sentence-transformers' joint mode does;
                ``"self"`` leaves out only d+_i itself, so that query i's hard negatives also repel its positive.
            gather_across_devices: all-gather embeddings (with gradients) across processes, so that every
                process sees the whole world batch as negatives. Each process owns its rows of the world
                batch, after the earlier ranks' rows; processes may hold different numbers of rows, and
                each one's loss is weighted by its share of them, so that DDP's average of the processes'
                gradients is the gradient of the mean over the world batch.
            temperature: alternative to ``scale`` (``scale = 1 / temperature``).

        Requirements:
            1. (anchor, positive) pairs, or (anchor, positive, negative_1, ..., negative_n) tuples.
            2. Use the no-duplicates batch sampler: a duplicate text in the batch is a false negative
               in up to four blocks here, not one.
            3. No text that embeds to a zero vector (an empty text under StaticEmbedding, say). With cosine
               similarity the embeddings are normalised as sentence-transformers' ``cos_sim`` does,
               ``x / max(|x|, 1e-12)``: a zero vector's similarities are 0 and the loss stays finite, but its
               gradient is multiplied by 1e12 (about 5e12 on a random batch, exactly as in
               sentence-transformers' own losses). Gradient clipping (the trainer's ``max_grad_norm``, 1.0 by
               default) bounds the step, but that one text's gradient then swamps the rest of the batch's;
               without clipping, or in fp16, the weights blow up and the next losses are not finite.

        Inputs:
            +-------------------------------------------------+--------+
            | Texts                                           | Labels |
            +=================================================+========+
            | (anchor, positive) pairs                        | none   |
            +-------------------------------------------------+--------+
            | (anchor, positive, negative) triplets           | none   |
            +-------------------------------------------------+--------+
            | (anchor, positive, negative_1, ..., negative_n) | none   |
            +-------------------------------------------------+--------+

        Relations:
            - Equals ``MultipleNegativesRankingLoss(directions=("query_to_doc", "query_to_query",
              "doc_to_query", "doc_to_doc"), partition_mode="joint")`` with ``doc_doc_mask="same_query"``.
            - :class:`CachedMultipleNegativesBidirectionalRankingLoss` computes the same loss with GradCache,
              for batches larger than memory allows. With dropout off (``model.eval()``, or a model without
              dropout) the two are equal in loss and gradients to float tolerance. With dropout on they draw
              different masks, and so differ by dropout noise, whenever there are hard negatives or the
              cached loss's mini-batches are smaller than the batch: this loss embeds the anchors in one pass
              and all document columns together in another (sentence-transformers' ``embed_columns``), the
              cached one column by column and mini-batch by mini-batch (replaying its own masks in its
              second pass).
            - Composes with MatryoshkaLoss, Matryoshka2dLoss and AdaptiveLayerLoss.

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from bidir_cli.losses import MultipleNegativesBidirectionalRankingLoss

                model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
                train_dataset = Dataset.from_dict({
                    "anchor": ["It's nice weather outside today.", "He drove to work."],
                    "positive": ["It's so sunny.", "He took the car to the office."],
                })
                loss = MultipleNegativesBidirectionalRankingLoss(model)
                SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss).train()
        """
        super().__init__()
        check_doc_doc_mask(doc_doc_mask)
        self.model = model
        self.scale = resolve_scale(scale, temperature)
        self.similarity_fct = similarity_fct
        self.doc_doc_mask = doc_doc_mask
        self.gather_across_devices = gather_across_devices
        self.partition = PartitionTracker()

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The loss from (anchor, positive, negative_1, ...) embeddings of this process's rows."""
        if len(embeddings) < 2:
            raise ValueError(f"Expected at least 2 embedding columns (anchor, positive), got {len(embeddings)}")
        loss, stats = gathered_loss(self, embeddings[0], list(embeddings[1:]))
        if torch.is_grad_enabled() and not replays_an_earlier_layer(self.model):
            self.partition.add(stats, width=embeddings[0].size(-1))
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "similarity_fct": similarity_fct_name(self.similarity_fct),
            "doc_doc_mask": self.doc_doc_mask,
            "gather_across_devices": self.gather_across_devices,
        }

    @property
    def citation(self) -> str:
        return CITATION
