"""The saved model's card (model/README.md): the final evaluation's results, the loss and its settings, and the
training data's identity, read back from the card of a tiny run."""

from __future__ import annotations

import hashlib
import json

import yaml
from helpers import run_train, tiny_config, write_tiny_beir


def front_matter(card: str) -> dict:
    _, header, _ = card.split("---\n", 2)
    return yaml.safe_load(header)


def test_the_card_carries_the_final_evaluation_the_loss_and_the_data_identity(tmp_path):
    write_tiny_beir(tmp_path / "tiny-beir")
    config = tiny_config(
        tmp_path,
        loss={"name": "mnbrl", "scale": 25, "doc_doc_mask": "self"},
        training={"hub_model_id": "someone/tiny-bidir"},
        evaluation={"suite": "tiny-beir"},
    )
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    card = (out / "model" / "README.md").read_text(encoding="utf-8")

    # The final evaluation: the model-index metadata (what the hub shows) holds every metric of the results file.
    results = json.loads((out / "eval" / "tiny-beir.json").read_text())["datasets"]["tiny-beir"]["metrics"]
    (entry,) = front_matter(card)["model-index"][0]["results"]
    assert entry["dataset"]["type"] == "tiny-beir"
    assert {m["type"]: m["value"] for m in entry["metrics"]} == results
    assert "## Evaluation" in card and f"**{results['ndcg@10']:.4f}**" in card

    # The loss and its settings: sentence-transformers' section and bidir's.
    assert "MultipleNegativesBidirectionalRankingLoss</code> with these parameters" in card
    section = card.split("## Training with bidir", 1)[1].split("\n## ", 1)[0]
    settings = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    assert settings["name"] == "mnbrl" and settings["scale"] == 25.0 and settings["doc_doc_mask"] == "self"

    # The training data's identity: name, the source as given, rows, and the hash of exactly those rows (computed
    # here independently); no absolute local path, since the card may go to the hub.
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps([r["anchor"], r["positive"]], ensure_ascii=False).encode() + b"\n")
    assert f"| pairs | `pairs.jsonl` | - | - | 64 | `{digest.hexdigest()}` |" in section
    assert str(tmp_path) not in card
    assert "#### pairs" in card  # sentence-transformers' dataset section under the source's name

    # The hub repository is the usage example's model id.
    assert 'SentenceTransformer("someone/tiny-bidir")' in card


def test_a_run_without_evaluation_still_has_bidirs_section(tiny_run):
    out = tiny_run[1]
    card = (out / "model" / "README.md").read_text(encoding="utf-8")
    assert "## Training with bidir" in card and "model-index" not in front_matter(card)
