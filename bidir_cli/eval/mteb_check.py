"""``bidir eval --backend mteb``: nDCG@10 of bidir's loaded data computed by mteb, as a cross-check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .encode import autocast

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .retrieval import RetrievalDataset


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

    previous_dim = model.truncate_dim
    model.truncate_dim = truncate_dim  # mteb calls encode without it; the model's own setting applies
    try:
        with warnings.catch_warnings(), autocast(precision, model.device.type):
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
