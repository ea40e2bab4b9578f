"""Reliability: bad input (a table of cases), existing runs, interruption, non-finite loss, determinism.

Every bad input gives exit status 2, one clear message on standard error naming the field, file or row,
no traceback, and no run directory left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, files_under, run_train, tiny_config, write_pairs, write_tiny_beir
from typer.testing import CliRunner

from bidir_cli.cli import app


def edit_config(path: Path, edit) -> Path:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def set_in(data, dotted: str, value):
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    node[last] = value


# Each case: (id, a function that prepares tmp_path and returns the `bidir train` arguments, expected in stderr).
def cfg_with(**changes):
    def make(tmp_path):
        path = tiny_config(tmp_path)
        return [str(edit_config(path, lambda d: [set_in(d, k.replace("__", "."), v) for k, v in changes.items()]))]

    return make


def cfg_text(text):
    def make(tmp_path):
        tiny_config(tmp_path)  # writes pairs.jsonl
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return [str(path)]

    return make


def data_file(name, content: bytes, **source):
    def make(tmp_path):
        path = tiny_config(tmp_path)
        (tmp_path / name).write_bytes(content)
        return [str(edit_config(path, lambda d: d["data"].update(train=[{"source": name, **source}])))]

    return make


def with_args(*extra, **changes):
    def make(tmp_path):
        return [*cfg_with(**changes)(tmp_path), *extra]

    return make


GOOD = b'{"anchor": "a", "positive": "b"}\n'
ROWS = b"".join(b'{"anchor": "q%d", "positive": "d%d"}\n' % (i, i) for i in range(20))

TRAIN_CASES = [
    ("yaml-syntax", cfg_text("name: x\nmodel: {static: {tokenizer: train\nloss: [\n"), "line 3, column"),
    ("unknown-key", cfg_with(loss__tempreature=0.05), "loss.tempreature: unknown key (did you mean temperature?)"),
    ("unknown-section", cfg_with(trainng={"seed": 1}), "trainng: unknown key (did you mean training?)"),
    (
        "wrong-type",
        cfg_with(training__per_device_train_batch_size="many"),
        "training.per_device_train_batch_size: Input should be a valid integer",
    ),
    (
        "out-of-range",
        cfg_with(training__per_device_train_batch_size=0),
        "training.per_device_train_batch_size: Input should be greater than or equal to 1",
    ),
    ("negative-lr", cfg_with(training__learning_rate=-1), "training.learning_rate: Input should be greater than 0"),
    ("unknown-loss", cfg_with(loss__name="infonce"), "loss.name: Input should be 'mnbrl', 'cmnbrl', 'mnrl' or 'cmnrl'"),
    ("option-not-for-loss", cfg_with(loss__mini_batch_size=8), "mini_batch_size applies only to the cached losses"),
    ("mask-not-for-baseline", cfg_with(loss__name="mnrl", loss__doc_doc_mask="self"), "doc_doc_mask applies only"),
    ("scale-and-temperature", cfg_with(loss__scale=20, loss__temperature=0.5), "give scale or temperature"),
    ("cached-static", cfg_with(loss__name="cmnbrl"), "cannot train a StaticEmbedding model"),
    ("bad-similarity", cfg_with(loss__similarity="euclid"), "loss.similarity: Input should be 'cosine' or 'dot'"),
    (
        "missing-model-folder",
        cfg_with(model={"name_or_path": "./no-such-model"}),
        "no-such-model: no such model folder",
    ),
    (
        "two-model-sources",
        cfg_with(model__name_or_path="x/y"),
        "give exactly one of model.name_or_path and model.static",
    ),
    (
        "missing-section",
        cfg_text("name: x\nmodel: {static: {tokenizer: train}}\ndata: {train: [{source: pairs.jsonl}]}\n"),
        "loss: Field required",
    ),
    ("not-a-mapping", cfg_text("- just\n- a list\n"), "expected a mapping of sections"),
    ("bad-run-name", cfg_with(name="../escape"), "name: String should match pattern"),
    ("no-sources", cfg_with(data__train=[]), "data.train: List should have at least 1 item"),
    (
        "missing-data-file",
        cfg_with(data__train=[{"source": "nope.jsonl"}]),
        "data.train.0.source: nope.jsonl: no such file",
    ),
    ("unsupported-file", data_file("pairs.txt", GOOD), "pairs.txt: unsupported file type"),
    (
        "misnamed-column",
        data_file("d.jsonl", b'{"query": "a", "positive": "b"}\n'),
        "no column 'anchor' (anchor); its columns are query, positive",
    ),
    ("mapped-column-missing", data_file("d.jsonl", GOOD, columns={"anchor": "question"}), "no column 'question'"),
    (
        "empty-text",
        data_file("d.jsonl", GOOD + b'{"anchor": "", "positive": "b"}\n'),
        "row 2: column 'anchor' is empty",
    ),
    (
        "null-text",
        data_file("d.jsonl", GOOD * 2 + b'{"anchor": "a", "positive": null}\n'),
        "row 3: column 'positive' is null",
    ),
    (
        "number-not-text",
        data_file("d.jsonl", b'{"anchor": 5, "positive": "b"}\n'),
        "row 1: column 'anchor' is not text (int)",
    ),
    (
        "non-utf8",
        data_file("d.jsonl", GOOD + b'{"anchor": "caf\xe9", "positive": "b"}\n'),
        "d.jsonl, line 2: not UTF-8",
    ),
    ("malformed-json-line", data_file("d.jsonl", GOOD + b'{"anchor": "a", \n'), "d.jsonl, line 2: not valid JSON"),
    ("empty-dataset", data_file("d.jsonl", b""), "d.jsonl holds no rows"),
    ("csv-missing-column", data_file("d.csv", b"anchor,text\na,b\n"), "no column 'positive' (positive)"),
    (
        "batch-larger-than-data",
        data_file("d.jsonl", ROWS, limit=1),
        "training.per_device_train_batch_size: 8 is larger than training source 'd' (1 rows)",
    ),
    (
        "limit-and-sample",
        cfg_with(data__train=[{"source": "pairs.jsonl", "limit": 4, "sample": 4}]),
        "data.train.0: give at most one of limit (the first rows) and sample (a random sample)",
    ),
    (
        "duplicate-source-names",
        cfg_with(data__train=[{"source": "pairs.jsonl"}, {"source": "pairs.jsonl"}]),
        "several sources are named pairs",
    ),
    ("old-name", cfg_with(training__batch_size=8), "training.batch_size: renamed per_device_train_batch_size"),
    (
        "old-extra-args",
        cfg_with(training__extra_args={"optim": "sgd"}),
        "training.extra_args: removed: give its keys directly under training",
    ),
    ("owned-argument", cfg_with(training__output_dir="x"), "training.output_dir: set by bidir"),
    ("token-in-config", cfg_with(training__hub_token="hf_x"), "training.hub_token: refused: set the HF_TOKEN"),
    (
        "unknown-trainer-argument",
        cfg_with(training__learnig_rate=1),
        "training.learnig_rate: not an argument of SentenceTransformerTrainingArguments (did you",
    ),
    ("push-without-repo", cfg_with(training__push_to_hub=True), "push_to_hub needs hub_model_id"),
    ("tracker-unknown", cfg_with(training__report_to=["tensorbored"]), "tensorbored is not a tracker"),
    (
        "layer-wrapper-static",
        cfg_with(loss__wrapper="adaptive_layer"),
        "loss.wrapper: adaptive_layer needs a transformer model (model.name_or_path)",
    ),
    (
        "missing-eval-suite",
        cfg_with(evaluation__suite="no-such-suite"),
        "evaluation.suite: no-such-suite: no such suite",
    ),
    ("set-without-equals", with_args("--set", "training.seed"), "expected key.path=value"),
    ("set-bad-index", with_args("--set", "data.train.5.limit=3"), "data.train.5 is not an index of a list of 1"),
    ("set-star-last", with_args("--set", "data.train.*=3"), "data.train.* names every element; set a key inside"),
    (
        "set-unknown-key",
        with_args("--set", "training.sed=3"),
        "training.sed: not an argument of SentenceTransformerTrainingArguments (did you mean seed?)",
    ),
    ("resume-and-overwrite", with_args("--resume", "--overwrite"), "--resume and --overwrite exclude each other"),
    ("resume-nothing", with_args("--resume"), "no run to resume"),
    ("missing-config", lambda tmp_path: [str(tmp_path / "nope.yaml")], "nope.yaml: no such config file"),
    ("eval-suite-without-qrels", lambda tmp_path: eval_suite_without_qrels(tmp_path), "qrels"),
]


def eval_suite_without_qrels(tmp_path):
    folder = write_tiny_beir(tmp_path / "beir")
    (folder / "qrels" / "test.tsv").unlink()
    return cfg_with(evaluation__suite="beir")(tmp_path)


def assert_clean_refusal(result, expected: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("make,expected", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input_is_refused_cleanly(tmp_path, make, expected):
    args = make(tmp_path)
    out = tmp_path / "runs" / "x"
    result = run_train(*args, "--output-dir", str(out))
    assert_clean_refusal(result, expected)
    assert not out.exists(), "a refused run must leave no run directory"


def test_debug_shows_the_traceback(tmp_path):
    args = cfg_with(training__per_device_train_batch_size=0)(tmp_path)
    result = CliRunner().invoke(app, ["--debug", "train", *args, "--dry-run"])
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_eval_of_a_beir_folder_without_qrels_is_refused(tmp_path, tiny_bert_path):
    folder = write_tiny_beir(tmp_path / "beir")
    (folder / "qrels" / "test.tsv").unlink()
    result = CliRunner().invoke(app, ["eval", str(tiny_bert_path), "--suite", str(folder), "--no-cache"])
    assert_clean_refusal(result, "qrels")


# --- Results files given to compare --------------------------------------------------------------------------------


def test_truncated_results_json_is_refused_by_compare(tmp_path):
    good = tmp_path / "a.json"
    good.write_text('{"format": "bidir.eval/1", "suite": {}, "datasets": {')
    result = CliRunner().invoke(app, ["compare", str(good), str(good)])
    assert_clean_refusal(result, "a.json: not valid JSON")


def test_missing_results_path_is_refused_by_compare(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nope"), str(tmp_path / "nope2")])
    assert result.exit_code == 2 and "nope" in result.stderr and "Traceback" not in result.output


# --- Existing runs, interruption, non-finite loss ------------------------------------------------------------------


def test_existing_run_directory_is_refused_without_resume_or_overwrite(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    assert run_train(str(config), "--output-dir", str(out), "--set", "training.max_steps=2").exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    result = run_train(str(config), "--output-dir", str(out), "--set", "training.max_steps=2")
    assert_clean_refusal(result, "run directory exists; pass --resume to continue it or --overwrite to replace it")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # untouched


def test_non_finite_loss_stops_names_the_step_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import torch

    from bidir_cli.losses import partition

    real, calls = partition.bidirectional_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * torch.nan if calls["n"] == 5 else loss), stats

    monkeypatch.setattr(partition, "bidirectional_loss", poisoned)
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 1
    assert "non-finite loss (nan) at step 5" in result.stderr and "Traceback" not in result.output
    assert "zero vector" in result.stderr  # points at a known cause (see the loss docstrings)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "failed" and "step 5" in meta["note"]
    assert files_under(out / "checkpoints") == {"checkpoint-2", "checkpoint-4"}
    assert not (out / "model").exists()


def _start_training(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bidir_cli.cli", "train", str(config), "--output-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=config.parent, start_new_session=True,
    )  # fmt: skip


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def slow_config(tmp_path: Path) -> Path:
    """Enough steps that a test can signal the process mid-run: 60 steps, a checkpoint every 10 (the tests wait
    for the first checkpoints and check that the signal came before the last)."""
    write_pairs(tmp_path / "big.jsonl", n=400)
    config = tiny_config(tmp_path)
    return edit_config(config, lambda d: (
        d["data"].update(train=[{"source": "big.jsonl"}]),
        d["training"].update(max_steps=60, save_steps=10, logging_steps=5, save_total_limit=None),
    ))  # fmt: skip


def checkpoint_steps(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("checkpoint-*"))


@pytest.mark.heavy
def test_sigint_marks_the_run_interrupted_and_keeps_checkpoints(tmp_path):
    config = slow_config(tmp_path)
    out = tmp_path / "run"
    process = _start_training(config, out)
    _wait_for(out / "checkpoints" / "checkpoint-10" / "trainer_state.json", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()[-2000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    assert meta["train"]["steps"] < 60
    assert 10 in checkpoint_steps(out) and checkpoint_steps(out)[-1] < 60


@pytest.mark.heavy
def test_sigkill_then_resume_reaches_the_same_final_state_as_an_uninterrupted_run(tmp_path):
    config = slow_config(tmp_path)
    killed = tmp_path / "killed"
    process = _start_training(config, killed)
    _wait_for(killed / "checkpoints" / "checkpoint-20" / "trainer_state.json", process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert json.loads((killed / "meta.json").read_text())["status"] == "running"  # it never got to say otherwise
    assert not (killed / "model").exists() and checkpoint_steps(killed)[-1] < 60  # steps are left to resume

    resumed = run_train(str(config), "--output-dir", str(killed), "--resume")
    assert resumed.exit_code == 0, resumed.output
    straight = tmp_path / "straight"
    assert run_train(str(config), "--output-dir", str(straight)).exit_code == 0

    meta = json.loads((killed / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["train"]["steps"] == 60
    assert final_embeddings(killed) == final_embeddings(straight)
    log_k = [json.loads(x) for x in (killed / "train_log.jsonl").read_text().splitlines()]
    log_s = [json.loads(x) for x in (straight / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log_k] == [x["step"] for x in log_s]
    assert [round(x["loss"], 5) for x in log_k] == [round(x["loss"], 5) for x in log_s]


def final_embeddings(run: Path) -> list[list[float]]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(run / "model"), device="cpu")
    return model.encode(["query 1 the cat", "doc 7 a red house"]).round(6).tolist()


def test_same_config_and_seed_twice_gives_identical_models_and_logs(tmp_path, tiny_run):
    """The session's tiny run (trained earlier in this process) and the same config trained again now."""
    config, first = tiny_run
    runs = []
    for out in (first, tmp_path / "again"):
        if not out.exists():
            assert run_train(str(config), "--output-dir", str(out)).exit_code == 0
        log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
        runs.append(([{k: v for k, v in x.items() if k != "examples_per_second"} for x in log], final_embeddings(out)))
    assert runs[0] == runs[1]
