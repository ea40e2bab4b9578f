"""`bidir train` end to end on a tiny model: the files a run leaves, meta.json, train_log.jsonl,
--set, --dry-run, --resume, and every shipped config validated against the schema."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import yaml
from helpers import ROOT, files_under, run_train, tiny_config, write_pairs, write_tiny_beir

from bidir_cli.config.schema import load_config


def test_run_leaves_exactly_the_documented_files(tmp_path):
    write_tiny_beir(tmp_path / "tiny-beir")
    config = tiny_config(tmp_path, evaluation={"suite": "tiny-beir"})
    out = tmp_path / "runs" / "tiny"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert files_under(out) == {"config.yaml", "meta.json", "train_log.jsonl", "checkpoints", "model", "eval"}
    assert files_under(out / "eval") == {"tiny-beir.json"}
    evaluation = json.loads((out / "eval" / "tiny-beir.json").read_text())
    assert len(evaluation["datasets"]["tiny-beir"]["per_query"]["ndcg@10"]) == 6
    assert "tiny-beir" in result.stdout  # the results table goes to standard output
    assert files_under(out / "checkpoints") == {"checkpoint-2", "checkpoint-4", "checkpoint-6"}
    assert {"modules.json", "config_sentence_transformers.json"} <= files_under(out / "model")
    assert not list(out.rglob("*.tmp"))  # atomic writes left nothing behind

    # The saved model loads and embeds.
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(out / "model"), device="cpu").encode(["query 1"]).shape == (1, 16)


def test_meta_json_records_what_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # recorded as set; oneDNN, loaded already, ignores it here
    config = tiny_config(tmp_path, loss={"name": "mnbrl", "scale": 25, "doc_doc_mask": "self"})
    out = tmp_path / "run"
    assert run_train(str(config), "--output-dir", str(out)).exit_code == 0
    meta = json.loads((out / "meta.json").read_text())

    assert meta["status"] == "completed"
    assert meta["seed"] == 42 and meta["argv"] == ["bidir", "train", str(config), "--output-dir", str(out)]
    assert {"bidir", "sentence-transformers", "transformers", "torch", "python"} <= set(meta["versions"])
    # The whole installed set, read independently here.
    from importlib.metadata import distributions

    assert meta["installed"] == {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()}
    assert meta["device"] == "cpu"
    assert meta["loss"] == {
        "name": "mnbrl", "scale": 25.0, "similarity": "cosine", "gather_across_devices": False,
        "matryoshka_dims": None, "wrapper": None, "doc_doc_mask": "self",
    }  # fmt: skip
    assert meta["train"]["steps"] == 6 and meta["train"]["examples_per_second"] > 0
    assert meta["train"]["peak_memory_bytes"] > 0 and meta["wall_time_s"] > 0
    assert meta["cpu"]["capability"] and meta["cpu"]["pinned"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"

    # The source's identity: its rows and a hash of exactly those rows, computed independently here.
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps([r["anchor"], r["positive"]], ensure_ascii=False).encode() + b"\n")
    (source,) = meta["data"]["sources"]
    assert source["rows"] == 64 and source["hash"] == digest.hexdigest()
    assert source["location"] == str((tmp_path / "pairs.jsonl").resolve())

    # config.yaml is the resolved config, and it validates.
    assert load_config(out / "config.yaml").loss.scale == 25.0


@pytest.mark.parametrize("loss", ["mnbrl", "mnrl"])
def test_train_log_has_a_line_per_logging_step_with_partition_shares(tmp_path, loss, tiny_run):
    if loss == "mnbrl":  # the tiny config's loss
        out = tiny_run[1]
    else:
        out = tmp_path / "run"
        assert run_train(str(tiny_config(tmp_path, loss={"name": loss})), "--output-dir", str(out)).exit_code == 0
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    for line in lines:
        assert line["loss"] > 0 and line["learning_rate"] is not None and line["examples_per_second"] > 0
        if loss == "mnbrl":
            shares = line["partition"]
            assert sum(shares[b] for b in ("q->d", "q->q", "d->q", "d->d")) == pytest.approx(1.0, abs=1e-6)
            assert 0 < shares["positive"] <= 0.5
        else:
            assert "partition" not in line  # the baseline has a single block


def test_progress_in_a_log_is_one_line_per_logging_step_and_no_bar(tmp_path):
    """Standard error is not a terminal here (a cell's log, a SLURM job's output): no carriage return, no library
    bar; a line per logging step with the loss that train_log.jsonl records."""
    config = tiny_config(tmp_path, evaluation={"suite": "tiny-beir"})
    write_tiny_beir(tmp_path / "tiny-beir")
    result = run_train(str(config), "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr and "Computing widget examples" not in result.stderr
    assert all(line.startswith("bidir: ") for line in result.stderr.splitlines()), result.stderr
    logged = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    progress = [line for line in result.stderr.splitlines() if line.startswith("bidir: train: step ")]
    assert [p.split(":")[2].strip() for p in progress] == [f"step {x['step']}/6" for x in logged]
    assert [f"loss {x['loss']:.4f}" in p for x, p in zip(logged, progress)] == [True] * len(logged)


def test_library_lines_are_prefixed_and_bars_kept_only_on_a_terminal():
    import io

    from bidir_cli.console import LibraryLines

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for target, bars in ((io.StringIO(), False), (Terminal(), True)):
        stream = LibraryLines(target, "bidir: lib: ")
        # As tqdm writes a bar: "\r" and the bar at each refresh, "\n" when it closes.
        for chunk in ("\rBatches:   0%|   | 0/2", "\rBatches: 100%|###| 2/2", "\n", "a note", " in two writes\n", "\n"):
            stream.write(chunk)
        bar = "\rBatches:   0%|   | 0/2\rBatches: 100%|###| 2/2\n"
        assert target.getvalue() == (bar if bars else "") + "bidir: lib: a note in two writes\n"


def test_set_overrides_are_typed_by_the_schema(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out), "--set", "training.max_steps=4",
                       "--set", "loss.temperature=0.1", "--set", "data.train.0.limit=40")  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["train"]["steps"] == 4
    assert meta["loss"]["scale"] == pytest.approx(10.0)
    assert meta["data"]["sources"][0]["rows"] == 40
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["training"]["max_steps"] == 4 and resolved["loss"]["temperature"] == 0.1


def test_dry_run_prints_config_and_sizes_and_trains_nothing(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out), "--dry-run")
    assert result.exit_code == 0, result.output
    printed = result.stdout
    assert yaml.safe_load(printed.split("training data")[0])["training"]["per_device_train_batch_size"] == 8
    assert "pairs" in printed and "64" in printed
    assert not out.exists()


def test_resume_continues_from_the_last_checkpoint_to_the_same_final_step(tmp_path, tiny_run):
    config, finished = tiny_run
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    full_log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]

    # Make it look as if the run had died after checkpoint-2.
    for name in ("checkpoint-4", "checkpoint-6"):
        shutil.rmtree(out / "checkpoints" / name)
    shutil.rmtree(out / "model")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "status": "interrupted"}))

    refused = run_train(str(config), "--output-dir", str(out))
    assert refused.exit_code == 2 and "--resume" in refused.stderr

    result = run_train(str(config), "--output-dir", str(out), "--resume")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["train"]["steps"] == 6
    assert meta["resumed_from"].endswith("checkpoint-2")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log] == [2, 4, 6]
    # Same data order and same weights at the checkpoint: the resumed losses repeat the original ones.
    for a, b in zip(log, full_log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_a_run_resumed_from_its_last_checkpoint_trains_nothing_more(tmp_path, tiny_run):
    from sentence_transformers import SentenceTransformer

    config, finished = tiny_run  # 6 steps of 8 batches an epoch: the last checkpoint falls mid-epoch
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    first = json.loads((out / "meta.json").read_text())
    log = (out / "train_log.jsonl").read_text()
    # Stopped after the last checkpoint was written, before the model was saved.
    shutil.move(out / "model", tmp_path / "uninterrupted")
    (out / "meta.json").write_text(json.dumps({**first, "status": "interrupted"}))

    assert run_train(str(config), "--output-dir", str(out), "--resume").exit_code == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["resumed_from"].endswith("checkpoint-6") and meta["train"]["steps"] == 6
    assert (out / "train_log.jsonl").read_text() == log
    sentences = ["query 1 a b c", "doc 2 d e f"]
    resumed, uninterrupted = (
        SentenceTransformer(str(p)).encode(sentences) for p in (out / "model", tmp_path / "uninterrupted")
    )
    assert (resumed == uninterrupted).all()
    # No step trained in the resumed process: the throughput measured before stands, the peak covers both.
    assert meta["train"]["examples_per_second"] == first["train"]["examples_per_second"] > 0
    assert meta["train"]["peak_memory_bytes"] >= first["train"]["peak_memory_bytes"]


def test_resume_refuses_a_changed_config(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    assert run_train(str(config), "--output-dir", str(out), "--set", "training.max_steps=2").exit_code == 0
    result = run_train(str(config), "--output-dir", str(out), "--resume")
    assert result.exit_code == 2 and "training" in result.stderr


def test_overwrite_replaces_an_existing_run(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    assert run_train(str(config), "--output-dir", str(out), "--set", "training.max_steps=2").exit_code == 0
    result = run_train(str(config), "--output-dir", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "meta.json").read_text())["train"]["steps"] == 6


def test_multi_dataset_training_with_hard_negatives(tmp_path):
    write_pairs(tmp_path / "triplets.jsonl", n=48, negatives=1, seed=1)
    config = tiny_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["data"] = {"train": [{"source": "pairs.jsonl"}, {"source": "triplets.jsonl", "name": "hard"}],
                    "sampling": "round_robin"}  # fmt: skip
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    sources = json.loads((out / "meta.json").read_text())["data"]["sources"]
    assert [(s["name"], s["rows"], s["negatives"]) for s in sources] == [("pairs", 64, 0), ("hard", 48, 1)]


def test_concatenated_sources_train_as_one_dataset(tmp_path):
    write_pairs(tmp_path / "more.jsonl", n=16, seed=2)
    config = tiny_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["data"] = {"train": [{"source": "pairs.jsonl"}, {"source": "more.jsonl"}], "sampling": "concatenate"}
    data["training"]["max_steps"] = -1  # one epoch of 80 rows at batch 8: 10 steps
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["train"]["steps"] == 10 and meta["data"]["rows"] == 80


@pytest.mark.heavy
def test_torchrun_with_two_gloo_processes_completes_the_run(tmp_path):
    """Multi-GPU training's code path on the CPU: torchrun, DDP over gloo, gathered in-batch negatives."""
    import os
    import subprocess
    import sys

    config = tiny_config(tmp_path, loss={"name": "mnbrl", "gather_across_devices": True})
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "bidir_cli.cli", "train", str(config), "--output-dir", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert files_under(out) == {"config.yaml", "meta.json", "train_log.jsonl", "checkpoints", "model"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["world_size"] == 2
    # 64 rows, 2 processes x 8 per batch: an epoch is 4 steps, so 6 steps are 1.5 epochs.
    assert meta["train"]["steps"] == 6 and meta["train"]["epochs"] == pytest.approx(1.5)
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [2, 4, 6]


def test_held_out_loss_and_retrieval_during_training_are_logged(tmp_path):
    write_tiny_beir(tmp_path / "tiny-beir")
    config = tiny_config(
        tmp_path,
        data={"train": [{"source": "pairs.jsonl"}], "eval_fraction": 0.25},
        training={"eval_steps": 3},
        evaluation={"suite": "tiny-beir", "during_training": True},
    )
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["data"]["sources"][0]["rows"] == 64 and meta["data"]["sources"][0]["eval_rows"] == 16
    evals = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if "eval_loss" in x]
    assert [e["step"] for e in evals] == [3, 6]
    for e in evals:
        assert e["eval_loss"] > 0
        assert 0 <= e["eval_tiny-beir_ndcg@10"] <= 1 and e["eval_mean_ndcg@10"] == e["eval_tiny-beir_ndcg@10"]
    # The evaluator runs the same code as bidir eval: its last score equals the final evaluation's.
    final = json.loads((out / "eval" / "tiny-beir.json").read_text())["datasets"]["tiny-beir"]["metrics"]["ndcg@10"]
    assert evals[-1]["eval_tiny-beir_ndcg@10"] == pytest.approx(final, abs=1e-9)


# --- training: speaks SentenceTransformerTrainingArguments' names ---------------------------------------------------


def test_pass_through_arguments_reach_the_trainer_and_warmup_below_one_is_a_ratio(tmp_path):
    config = tiny_config(
        tmp_path,
        training={"gradient_accumulation_steps": 2, "warmup_steps": 0.5, "lr_scheduler_type": "linear",
                  "max_grad_norm": 0.5, "learning_rate": 0.06},
    )  # fmt: skip
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    # 64 rows at 8 per batch, 2 batches per optimizer step: 4 steps an epoch, so 6 steps are 1.5 epochs
    assert meta["train"]["steps"] == 6 and meta["train"]["epochs"] == pytest.approx(1.5)
    # warmup_steps 0.5 of 6 steps: 3 steps up to 0.06, then linearly down to 0 at step 6. The rate logged at
    # step s is the one its update used, the schedule's value after s - 1 steps.
    lr = {line["step"]: line["learning_rate"] for line in map(json.loads, (out / "train_log.jsonl").open())}
    assert lr == pytest.approx({2: 0.06 * 1 / 3, 4: 0.06, 6: 0.06 * 1 / 3})
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["gradient_accumulation_steps"] == 2


def test_tensorboard_gets_loss_learning_rate_and_partition_shares_in_the_run_directory(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(tmp_path, training={"report_to": ["tensorboard"]})
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not (out / "checkpoints" / "runs").exists()  # not transformers' default folder

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()

    def scalars(tag):
        return {e.step: e.value for e in events.Scalars(tag)}

    log = {line["step"]: line for line in map(json.loads, (out / "train_log.jsonl").open())}
    assert scalars("train/loss") == pytest.approx({s: line["loss"] for s, line in log.items()}, rel=1e-6)
    assert scalars("train/learning_rate") == pytest.approx({s: line["learning_rate"] for s, line in log.items()})
    blocks = {"q->d": "q_to_d", "q->q": "q_to_q", "d->q": "d_to_q", "d->d": "d_to_d", "positive": "positive"}
    shares = {block: scalars(f"train/partition/{tag}") for block, tag in blocks.items()}
    for step in (2, 4, 6):
        assert sum(shares[b][step] for b in ("q->d", "q->q", "d->q", "d->d")) == pytest.approx(1.0, abs=1e-5)
        assert 0 < shares["positive"][step] <= 0.5
        for block in blocks:  # the same numbers as train_log.jsonl (TensorBoard stores float32)
            assert shares[block][step] == pytest.approx(log[step]["partition"][block], rel=1e-6)


def test_a_tracker_that_is_not_installed_is_refused_before_the_run(tmp_path):
    from transformers.integrations import get_available_reporting_integrations

    if "wandb" in get_available_reporting_integrations():
        pytest.skip("wandb is installed here")
    out = tmp_path / "run"
    result = run_train(str(tiny_config(tmp_path, training={"report_to": "wandb"})), "--output-dir", str(out))
    assert result.exit_code == 2 and "training.report_to: wandb is not installed" in result.stderr
    assert not out.exists()


def test_a_layer_wrapper_from_the_config_trains_a_transformer(tmp_path, tiny_bert_path):
    config = tiny_config(
        tmp_path,
        model={"name_or_path": str(tiny_bert_path), "static": None},
        loss={"name": "mnbrl", "wrapper": "matryoshka2d", "matryoshka_dims": [32, 16], "n_layers_per_step": -1},
        training={"max_steps": 2, "save_steps": 2},
    )
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["loss"]["wrapper"] == "matryoshka2d" and meta["loss"]["n_layers_per_step"] == -1
    (line,) = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert line["step"] == 2 and "partition" in line  # the shares are found inside both wrappers
