"""The config of ``bidir train`` (bidir_cli/config/): every shipped config validates, ``--set`` is typed by the
schema, ``training:`` speaks sentence-transformers' names and refuses the old and the reserved ones, the loss
registry is what the schema accepts."""

from __future__ import annotations

import typing

import pytest
import yaml
from helpers import ROOT, run_train, tiny_config

from bidir_cli.config.schema import load_config


def test_set_with_a_wrong_type_names_the_field(tmp_path):
    result = run_train(str(tiny_config(tmp_path)), "--set", "training.per_device_train_batch_size=many", "--dry-run")
    assert result.exit_code == 2
    assert "training.per_device_train_batch_size" in result.stderr and "Traceback" not in result.stderr


# Training configs: everything under configs/ but the eval suite files (validated by the eval tests) and the
# experiment files (configs/experiments/, validated by the experiment tests).
SHIPPED_CONFIGS = sorted(
    p for p in (ROOT / "configs").rglob("*.yaml") if "suites" not in p.parts and "experiments" not in p.parts
)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_validates_and_says_how_to_run_it(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "a shipped config starts with a comment saying how to run it and what it shows"
    assert "bidir train" in text.split("\n\n")[0]
    load_config(path)


def test_shipped_configs_are_found():
    assert {"quickstart.yaml", "quickstart-mnrl.yaml", "nanobeir-minilm.yaml"} <= {p.name for p in SHIPPED_CONFIGS}


def test_every_training_field_and_table_entry_is_a_sentence_transformers_argument():
    import dataclasses

    from sentence_transformers import SentenceTransformerTrainingArguments

    from bidir_cli.config.training import RENAMED, TRAINER_ARGS, TrainingConfig

    arguments = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    assert set(TrainingConfig.model_fields) <= arguments
    assert set(TRAINER_ARGS) <= arguments
    assert {new.split()[0].rstrip(":") for new in RENAMED.values()} <= arguments  # each message names a real one


def test_the_issue_dry_run_with_sentence_transformers_names_and_the_old_names_refused():
    names = ("--set", "training.num_train_epochs=1", "--set", "training.per_device_train_batch_size=128")
    result = run_train(str(ROOT / "configs" / "quickstart.yaml"), *names, "--dry-run")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout.split("training data")[0])["training"]
    assert resolved["num_train_epochs"] == 1 and resolved["per_device_train_batch_size"] == 128

    old = ("--set", "training.epochs=1", "--set", "training.batch_size=128", "--set", "training.warmup_ratio=0.1")
    result = run_train(str(ROOT / "configs" / "quickstart.yaml"), *old, "--dry-run")
    assert result.exit_code == 2
    for line in (
        "training.epochs: renamed num_train_epochs",
        "training.batch_size: renamed per_device_train_batch_size",
        "training.warmup_ratio: renamed warmup_steps (a float below 1 is a ratio of the total steps)",
    ):
        assert line in result.stderr  # every old name at once, each naming its new one


def test_set_with_a_star_sets_the_key_in_every_list_element():
    """``--set data.train.*.sample=N`` is what a grid over the sample size of every source needs."""
    from bidir_cli.config.schema import apply_override

    data = {"data": {"train": [{"source": "a.jsonl"}, {"source": "b.jsonl", "sample": 5}]}, "training": {}}
    apply_override(data, "data.train.*.sample=800")
    apply_override(data, "data.train.1.name=second")
    assert data["data"]["train"] == [
        {"source": "a.jsonl", "sample": 800},
        {"source": "b.jsonl", "sample": 800, "name": "second"},
    ]


def test_loss_registry_names_are_the_names_the_config_accepts():
    from bidir_cli.config.schema import LossConfig
    from bidir_cli.losses import LOSSES

    accepted = typing.get_args(LossConfig.model_fields["name"].annotation)
    assert set(accepted) == set(LOSSES) == {"mnbrl", "cmnbrl", "mnrl", "cmnrl"}


def test_training_names_that_bidir_sets_or_renamed_are_refused_saying_why():
    from bidir_cli.config.training import TRAINER_ARGS, TrainingConfig, refused_training_keys

    keys = ["learning_rate", "save_strategy", "gradient_accumulation_steps", "batch_size", "multi_dataset_batch_sampler",
            "push_to_hub"]  # fmt: skip
    assert refused_training_keys(keys, set(TrainingConfig.model_fields)) == {
        "save_strategy": f"set by {TRAINER_ARGS['save_strategy'][0]}, not by the config",
        "batch_size": "renamed per_device_train_batch_size",
        "multi_dataset_batch_sampler": "set through data.sampling",
    }  # push_to_hub is a training field: bidir reads it (and pushes itself), the table gives the trainer False
