"""The saved model's card (``model/README.md``): sentence-transformers' model card, with what bidir knows besides.

The trainer fills sentence-transformers' card data as it trains: the loss class and its parameters, the
hyperparameters, the training logs, each dataset's columns and samples. bidir adds the training sources' names
(and hub ids) before training (:func:`describe_training_data`) and, once the final evaluation is done, writes the
card again (:func:`write_model_card`) with its results (the card's evaluation tables and ``model-index``
metadata) and a section naming the loss settings and each training source's identity (as given in the config,
with its rows and content hash: no local absolute path, since the card may be pushed to the hub).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from ..eval.metrics import PRIMARY_METRIC
from ..runs.atomic import atomic_write_text

if TYPE_CHECKING:
    from pathlib import Path

    from ..runs.meta import RunMeta
    from ..runs.results import EvalResult
    from ..runs.rundir import RunDir


SECTION_TITLE = "## Training with bidir"


class FinalEvaluation(BaseEvaluator):
    """One dataset's results of bidir's final evaluation, in the form sentence-transformers' card reads.

    Nothing is evaluated here: the numbers are those of the run's results file (``eval/<suite>.json``), computed
    by ``bidir eval``'s code on the saved model.
    """

    description = "Information Retrieval"

    def __init__(self, suite: str, dataset: str) -> None:
        super().__init__()
        self.name = dataset
        self.suite = suite
        self.primary_metric = PRIMARY_METRIC

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1):
        raise NotImplementedError("FinalEvaluation carries results; run bidir eval to compute them")

    def get_config_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "evaluated_with": "bidir eval"}


def describe_training_data(model, sources: list, concatenated: bool, hub_model_id: str | None) -> None:
    """Before training: name the training sources (and hub ids) in the card data that the trainer fills."""
    from huggingface_hub import constants

    card = model.model_card_data
    card.local_files_only = constants.is_offline_mode()  # no hub look-ups (base model, dataset languages) offline
    entries = []
    for s in sources:
        entry = {"name": s.name}
        if s.identity["kind"] == "hub":
            entry["id"] = s.identity["location"]
            if s.identity.get("revision"):
                entry["revision"] = s.identity["revision"]
        entries.append(entry)
    if concatenated and len(entries) > 1:  # one dataset for the trainer
        entries = [{"name": " + ".join(e["name"] for e in entries)}]
    card.train_datasets = entries
    if hub_model_id:
        card.set_model_id(hub_model_id)


def write_model_card(model, run: RunDir, meta: RunMeta, result: EvalResult | None, results_file: Path | None) -> None:
    """Write ``run/model/README.md`` again: sentence-transformers' card with the final evaluation's results,
    then bidir's section (loss settings, training data identity, the evaluation's results file)."""
    from sentence_transformers.base.model_card import generate_model_card

    card = model.model_card_data
    card.save_dir = str(run.model)
    if result is not None:
        epoch, step = meta.train.get("epochs") or 0, meta.train.get("steps") or 0  # the trained model's last step
        for name, dataset in result.datasets.items():
            card.set_evaluation_metrics(FinalEvaluation(result.suite["name"], name), dict(dataset.metrics), epoch, step)
    text = generate_model_card(model)
    section = bidir_section(meta, result, results_file)
    marker = "\n## Training Details"
    text = text.replace(marker, f"\n{section}{marker}", 1) if marker in text else f"{text.rstrip()}\n\n{section}"
    atomic_write_text(run.model / "README.md", text)


def bidir_section(meta: RunMeta, result: EvalResult | None, results_file: Path | None) -> str:
    """The card's section on the run: the loss settings, each training source's identity, the final evaluation."""
    lines = [
        SECTION_TITLE,
        "",
        f"Trained with bidir (`bidir train`, run `{meta.name}`, seed {meta.seed}).",
        "",
        f"- **Loss:** `{meta.loss.get('name')}` with these settings:",
        "  ```json",
        *("  " + line for line in json.dumps(meta.loss, indent=2).splitlines()),
        "  ```",
        "- **Training data:**",
        "",
        "  | source | as given | revision | split | rows | sha256 |",
        "  |:--|:--|:--|:--|--:|:--|",
    ]
    for s in meta.data.get("sources", []):
        lines.append(
            f"  | {s['name']} | `{s['source']}` | {s.get('revision') or '-'} | {s.get('split') or '-'} | "
            f"{s['rows']} | `{s['hash']}` |"
        )
    if result is not None:
        lines += [
            "",
            f"- **Final evaluation:** suite `{result.suite['name']}` (hash `{result.suite.get('hash')}`), "
            f"{PRIMARY_METRIC} per dataset; every metric is in the Evaluation section above and in the run's "
            f"`eval/{results_file.name if results_file else result.stem + '.json'}`.",
            "",
            f"  | dataset | queries | {PRIMARY_METRIC} |",
            "  |:--|--:|--:|",
        ]
        for name, dataset in result.datasets.items():
            queries = dataset.counts.get("queries", "-")
            lines.append(f"  | {name} | {queries} | {dataset.metrics[PRIMARY_METRIC]:.4f} |")
    return "\n".join(lines) + "\n"
