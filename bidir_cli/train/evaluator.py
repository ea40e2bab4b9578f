"""Retrieval evaluation during training, as a sentence-transformers evaluator (``evaluation.during_training``).

It runs the same code as ``bidir eval`` on the config's suite at ``training.eval_steps`` and reports each
dataset's nDCG@10 and their mean, which the trainer logs (and train_log.jsonl records as ``eval_*`` keys).
"""

from __future__ import annotations

from typing import Any

from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from ..eval.command import EvalSuite, evaluate
from ..eval.metrics import PRIMARY_METRIC


class TrainingEvaluator(BaseEvaluator):
    def __init__(self, suite: EvalSuite, batch_size: int) -> None:
        super().__init__()
        self.suite = suite.suite
        self.datasets = suite.datasets  # loaded once, before training: the data does not change
        self.batch_size = batch_size
        self.primary_metric = f"mean_{PRIMARY_METRIC}"

    def __call__(self, model, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, Any]:
        result = evaluate(
            model, self.datasets, suite=self.suite, model_info={"name": "training", "fingerprint": None},
            batch_size=self.batch_size,
        )  # fmt: skip
        metrics = {f"{name}_{PRIMARY_METRIC}": d.metrics[PRIMARY_METRIC] for name, d in result.datasets.items()}
        metrics[self.primary_metric] = result.mean[PRIMARY_METRIC]
        return metrics
