"""Data safety: bidir deletes nothing it did not write, and never replaces a result with one of other settings.

Each test reproduces a way an earlier version lost data (it fails on that version).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import bidir_eval, make_collection, run_train, tiny_config, write_beir
from typer.testing import CliRunner

from bidir_cli.cli import app
from bidir_cli.compare.comparison import Column, Source
from bidir_cli.compare.meta_rows import meta_rows
from bidir_cli.runs.meta import RunMeta
from bidir_cli.runs.results import EvalResult
from bidir_cli.runs.rundir import RunDir


def compare(*args) -> object:
    return CliRunner().invoke(app, ["compare", *map(str, args)])


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- 1. --overwrite deletes only a run directory that bidir wrote ------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_bidir_run(tmp_path):
    config = tiny_config(tmp_path)
    source_tree = tmp_path / "src"
    (source_tree / "pkg").mkdir(parents=True)
    (source_tree / "pkg" / "main.py").write_text("print('my work')\n")
    (source_tree / "meta.json").write_text('{"status": "completed"}')  # someone's file, no bidir format
    before = tree(source_tree)

    result = run_train(str(config), "--output-dir", str(source_tree), "--overwrite")

    assert result.exit_code == 2
    assert "not a run directory that bidir wrote" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.output
    assert tree(source_tree) == before


def test_meta_json_is_the_first_file_so_a_run_that_failed_at_start_can_be_overwritten(tmp_path, monkeypatch):
    from bidir_cli.train import recipe

    config = tiny_config(tmp_path)
    out = tmp_path / "run"

    def fail(*args, **kwargs):
        raise RuntimeError("the trainer could not start")

    monkeypatch.setattr(recipe, "make_trainer", fail)
    assert run_train(str(config), "--output-dir", str(out)).exit_code == 1
    meta = RunDir(out).read_meta()
    assert meta.format == "bidir.run/1" and meta.status == "starting"
    assert RunDir(out).written_by_bidir()

    monkeypatch.undo()
    result = run_train(str(config), "--output-dir", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert RunDir(out).read_meta().status == "completed"


# --- 2. Results files keyed by the settings that change the numbers ----------------------------------------------


@pytest.fixture
def run_with_model(tmp_path, tiny_bert_path) -> Path:
    """A run directory (meta.json written through RunMeta) holding the tiny BERT as its model."""
    run = RunDir(tmp_path / "runs" / "r1")
    shutil.copytree(tiny_bert_path, run.model)
    run.write_meta(RunMeta(status="completed", name="r1"))
    return run.path


def two_dataset_suite(tmp_path: Path) -> Path:
    for seed, name in ((3, "alpha"), (4, "beta")):
        write_beir(tmp_path / name, *make_collection(seed=seed, docs=30, queries=6))
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: pair\ndatasets:\n  alpha: alpha\n  beta: beta\n")
    return suite


def test_truncated_evaluation_keeps_the_full_result_and_compare_names_the_difference(tmp_path, run_with_model):
    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    assert bidir_eval(run_with_model, "--suite", folder, "--no-cache").exit_code == 0
    full = run_with_model / "eval" / "mini.json"
    before = full.read_bytes()

    result = bidir_eval(run_with_model, "--suite", folder, "--no-cache", "--truncate-dim", 16)

    assert result.exit_code == 0, result.stderr
    assert full.read_bytes() == before
    truncated = run_with_model / "eval" / "mini--dim16.json"
    assert EvalResult.load(truncated).settings["truncate_dim"] == 16

    # Two results of other settings are not paired unless asked, and the difference is named either way.
    refused = compare(full, truncated)
    assert refused.exit_code == 2
    assert "(r1: no truncation, r1--dim16: truncate dim 16)" in refused.stderr and "--mixed-settings" in refused.stderr
    mixed = compare(full, truncated, "--mixed-settings", "--format", "markdown")
    assert mixed.exit_code == 0, mixed.stderr
    row = next(line for line in mixed.stdout.splitlines() if "eval.truncate\\_dim" in line)
    assert "16" in row and "r1--dim16" in mixed.stdout


def test_each_setting_that_changes_the_numbers_gets_its_own_file_and_compare_names_it(tmp_path, run_with_model):
    import hashlib

    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    eval_dir = run_with_model / "eval"
    assert bidir_eval(run_with_model, "--suite", folder, "--no-cache").exit_code == 0
    full = (eval_dir / "mini.json").read_bytes()
    for args in (("--max-seq-length", 8), ("--query-prompt", "red "), ("--truncate-dim", "16,8"),
                 ("--device", "cpu", "--trust-remote-code")):  # fmt: skip
        result = bidir_eval(run_with_model, "--suite", folder, "--no-cache", *args)
        assert result.exit_code == 0, result.stderr
    prompt_key = hashlib.sha256(json.dumps({"query_prompt": "red "}).encode()).hexdigest()[:8]
    # Device and --trust-remote-code do not change the numbers: that evaluation merged into mini.json.
    assert sorted(p.name for p in eval_dir.iterdir()) == sorted(
        ["mini.json", "mini--len8.json", f"mini--p{prompt_key}.json", "mini--dim16.json", "mini--dim8.json"]
    )
    merged = EvalResult.load(eval_dir / "mini.json")
    assert merged.datasets["mini"].per_query == EvalResult.from_dict(json.loads(full)).datasets["mini"].per_query
    assert merged.settings["trust_remote_code"] is True

    # compare reads the default file of a run, and refuses to pair other settings, naming them.
    from bidir_cli.compare.build import load_source

    assert load_source(run_with_model, None).path.name == "mini.json"
    refused = compare(eval_dir / "mini.json", eval_dir / "mini--len8.json")
    assert refused.exit_code == 2 and "r1: max seq length 64, r1--len8: max seq length 8" in refused.stderr
    assert "r1: no prompt or length flags, r1--len8: --max-seq-length 8" in refused.stderr
    refused = compare(eval_dir / "mini.json", eval_dir / f"mini--p{prompt_key}.json")
    assert refused.exit_code == 2 and "prompts" in refused.stderr

    # A model backend is a setting like the others (a copy of the result marked as OpenVINO's).
    data = json.loads((eval_dir / "mini.json").read_text())
    data["settings"]["model_backend"] = "openvino"
    (tmp_path / "openvino.json").write_text(json.dumps(data))
    assert EvalResult.load(tmp_path / "openvino.json").stem == "mini--openvino"
    refused = compare(eval_dir / "mini.json", tmp_path / "openvino.json")
    assert refused.exit_code == 2 and "r1: model backend torch, openvino: model backend openvino" in refused.stderr


def test_a_suite_files_per_dataset_prompts_are_part_of_what_merges(tmp_path, run_with_model):
    suite = two_dataset_suite(tmp_path)
    assert bidir_eval(run_with_model, "--suite", suite, "--no-cache").exit_code == 0
    before = (run_with_model / "eval" / "pair.json").read_bytes()
    suite.write_text("name: pair\ndatasets:\n  alpha: {path: alpha, query_prompt: 'red '}\n  beta: beta\n")
    assert bidir_eval(run_with_model, "--suite", suite, "--no-cache", "--datasets", "alpha").exit_code == 0
    assert (run_with_model / "eval" / "pair.json").read_bytes() == before  # not merged: other prompts
    assert (
        EvalResult.load(run_with_model / "eval" / "pair--2.json").datasets["alpha"].extra["prompts"]["query"] == "red "
    )


def test_compare_chooses_a_runs_results_file_by_settings(tmp_path, run_with_model):
    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    other = RunDir(tmp_path / "runs" / "r2")
    shutil.copytree(run_with_model / "model", other.model)
    other.write_meta(RunMeta(status="completed", name="r2"))
    for run in (run_with_model, other.path):
        for extra in ((), ("--truncate-dim", 16)):
            assert bidir_eval(run, "--suite", folder, "--no-cache", *extra).exit_code == 0

    full = compare(run_with_model, other.path, "--format", "json")
    truncated = compare(run_with_model, other.path, "--truncate-dim", 16, "--format", "json")
    assert full.exit_code == truncated.exit_code == 0, full.stderr + truncated.stderr
    runs_of = lambda out: [r for col in json.loads(out)["columns"] for r in col["runs"]]  # noqa: E731
    assert all(p.endswith("mini.json") for p in runs_of(full.stdout))
    assert all(p.endswith("mini--dim16.json") for p in runs_of(truncated.stdout))

    missing = compare(run_with_model, other.path, "--truncate-dim", 8)
    assert missing.exit_code == 2 and "mini--dim16.json" in missing.stderr
    # Settings as a user writes them, never Python values (None, {}).
    assert "no results file for truncate dim 8, fp32, backend bidir, model backend torch" in missing.stderr
    assert "eval/mini.json (suite mini, no truncation, fp32," in missing.stderr
    assert "eval/mini--dim16.json (suite mini, truncate dim 16, fp32," in missing.stderr
    assert "None" not in missing.stderr and "{}" not in missing.stderr and "truncate_dim" not in missing.stderr

    # Results of two truncations named as files: refused, saying which setting differs, in the same words.
    mixed = compare(run_with_model / "eval" / "mini.json", other.path / "eval" / "mini--dim16.json")
    assert mixed.exit_code == 2 and "different settings (r1: no truncation, r2--dim16: truncate dim 16)" in (
        " ".join(mixed.stderr.split())
    ), mixed.stderr


def test_a_dataset_subset_merges_into_the_same_evaluation_and_nothing_else(tmp_path, run_with_model):
    suite = two_dataset_suite(tmp_path)
    assert bidir_eval(run_with_model, "--suite", suite, "--no-cache").exit_code == 0
    path = run_with_model / "eval" / "pair.json"
    first = EvalResult.load(path)

    assert bidir_eval(run_with_model, "--suite", suite, "--no-cache", "--datasets", "alpha").exit_code == 0
    merged = EvalResult.load(path)
    assert list(merged.datasets) == ["alpha", "beta"] and merged.suite["datasets"] == ["alpha", "beta"]
    assert merged.datasets["beta"] == first.datasets["beta"]  # untouched
    assert merged.datasets["alpha"].per_query == first.datasets["alpha"].per_query  # same model, same numbers

    # Another model in the same run's eval/ (its files changed): another file, the first one untouched.
    before = path.read_bytes()
    (run_with_model / "model" / "extra.txt").write_text("changes the fingerprint")
    assert bidir_eval(run_with_model, "--suite", suite, "--no-cache", "--datasets", "beta").exit_code == 0
    assert path.read_bytes() == before
    assert list(EvalResult.load(run_with_model / "eval" / "pair--2.json").datasets) == ["beta"]


def test_output_file_of_another_evaluation_is_not_replaced(tmp_path, tiny_bert_path):
    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    out = tmp_path / "results.json"
    assert bidir_eval(tiny_bert_path, "--suite", folder, "--no-cache", "--output", out).exit_code == 0
    before = out.read_bytes()

    result = bidir_eval(tiny_bert_path, "--suite", folder, "--no-cache", "--output", out, "--truncate-dim", 8)

    assert result.exit_code == 2 and "choose another --output" in result.stderr
    assert "it differs in no truncation there, truncate dim 8 here" in result.stderr
    assert out.read_bytes() == before
    someone_elses = tmp_path / "notes.json"
    someone_elses.write_text('{"mine": true}')
    refused = bidir_eval(tiny_bert_path, "--suite", folder, "--no-cache", "--output", someone_elses)
    assert refused.exit_code == 2 and someone_elses.read_text() == '{"mine": true}'


def test_version_1_results_files_are_still_read(tmp_path, run_with_model):
    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    assert bidir_eval(run_with_model, "--suite", folder, "--no-cache").exit_code == 0
    path = run_with_model / "eval" / "mini.json"
    data = json.loads(path.read_text())
    data["format"] = "bidir.eval/1"
    for dataset in data["datasets"].values():
        del dataset["created"]
    path.write_text(json.dumps(data))
    loaded = EvalResult.load(path)
    assert loaded.datasets["mini"].created == data["created"]


def test_an_explicit_null_against_a_value_is_a_difference_and_an_absent_key_is_not():
    empty = EvalResult(suite={"name": "s"}, model={}, settings={}, versions={}, created="", datasets={})

    def column(name: str, meta: RunMeta | None) -> Column:
        return Column(name, [Source(name, Path(f"{name}.json"), empty, meta)])

    capped = RunMeta(status="completed", name="a", config={"training": {"max_steps": 20}})
    uncapped = RunMeta(status="completed", name="b", config={"training": {"max_steps": None}})
    base = None  # an untrained base model records no config at all
    rows = {row.name: row.values for row in meta_rows([column("a", capped), column("b", uncapped), column("c", base)])}
    assert rows["config.training.max_steps"] == {"a": [20], "b": [None], "c": [None]}
    rows = {row.name for row in meta_rows([column("a", capped), column("c", base)])}
    assert "config.training.max_steps" not in rows


# --- 3. Every trainer argument is checked before the run directory exists ----------------------------------------


def test_a_bad_pass_through_argument_fails_at_dry_run_and_leaves_no_directory(tmp_path):
    config = tiny_config(tmp_path)
    bogus = ("--set", "training.bogus_arg=1")
    dry = run_train(str(config), "--dry-run", *bogus)
    assert (
        dry.exit_code == 2
        and "training.bogus_arg: not an argument of SentenceTransformerTrainingArguments" in dry.stderr
    )

    out = tmp_path / "run"
    real = run_train(str(config), "--output-dir", str(out), *bogus)
    assert (
        real.exit_code == 2
        and "training.bogus_arg: not an argument of SentenceTransformerTrainingArguments" in real.stderr
    )
    assert not out.exists()


@pytest.mark.parametrize("key", ["save_strategy", "eval_strategy", "output_dir", "data_seed", "hub_strategy"])
def test_arguments_bidir_owns_are_refused_up_front(tmp_path, key):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out), "--set", f"training.{key}=no")
    assert result.exit_code == 2 and f"training.{key}: set by bidir" in result.stderr
    assert not out.exists()


def test_an_invalid_value_of_a_real_argument_is_refused_before_the_run(tmp_path):
    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    result = run_train(str(config), "--output-dir", str(out), "--set", "training.optim=no_such_optimizer")
    assert result.exit_code == 2 and "invalid trainer arguments" in result.stderr
    assert not out.exists()


# --- 4. One precision rule for training and evaluation -----------------------------------------------------------


def test_fp16_is_refused_on_a_cpu_in_training_and_evaluation_with_the_same_rule(tmp_path, tiny_bert_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the rule refuses fp16 only without a CUDA device")
    config = tiny_config(tmp_path, training={"fp16": True})
    out = tmp_path / "run"
    trained = run_train(str(config), "--output-dir", str(out))
    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    evaluated = bidir_eval(tiny_bert_path, "--suite", folder, "--precision", "fp16")
    rule = "fp16 needs a CUDA device; on a CPU use bf16 or fp32"
    assert trained.exit_code == evaluated.exit_code == 2
    assert rule in trained.stderr and rule in evaluated.stderr and "training.fp16" in trained.stderr
    assert not out.exists()


def test_bf16_evaluation_runs_on_a_cpu_and_is_close_to_fp32(tmp_path, tiny_bert_path):
    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    fp32, bf16 = tmp_path / "fp32.json", tmp_path / "bf16.json"
    assert bidir_eval(tiny_bert_path, "--suite", folder, "--no-cache", "--output", fp32).exit_code == 0
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--no-cache", "--precision", "bf16", "--output", bf16)
    assert result.exit_code == 0, result.stderr
    a, b = EvalResult.load(fp32).datasets["mini"], EvalResult.load(bf16).datasets["mini"]
    assert EvalResult.load(bf16).settings["precision"] == "bf16"
    assert abs(a.metrics["ndcg@10"] - b.metrics["ndcg@10"]) < 0.1


def test_a_results_file_name_tells_every_setting_apart_and_comes_back_to_the_same_settings():
    """The naming rule as a function (the commands above see it only through files): over a grid of every
    setting, no two settings share a file name, the defaults give the suite's own name, a name carries each
    setting that differs from its default, and reading a name back gives the settings it shows."""
    import itertools

    from bidir_cli.runs.settings import EvalSettings, prompt_key

    grid = {
        "truncate_dim": [None, 64, 128],
        "precision": ["fp32", "bf16", "fp16"],
        "backend": ["bidir", "mteb"],
        "model_backend": ["torch", "openvino"],
        "overrides": [
            {},
            {"max_seq_length": 128},
            {"query_prompt": "q: "},
            {"query_prompt": "q: ", "document_prompt": "d: "},
        ],
    }
    stems = {}
    default = EvalSettings()
    for values in itertools.product(*grid.values()):
        settings = EvalSettings.from_record(dict(zip(grid, values)))
        stem = settings.stem("scifact")
        assert stems.setdefault(stem, settings) == settings, f"{settings} and {stems[stem]} share {stem}"
        parts = stem.split("--")
        assert parts[0] == "scifact"
        for key in ("precision", "backend", "model_backend"):
            assert (getattr(settings, key) in parts[1:]) == (getattr(settings, key) != getattr(default, key))
        assert (f"dim{settings.truncate_dim}" in parts) == (settings.truncate_dim is not None)
        overrides = dict(settings.overrides)
        assert ("len128" in parts) == ("max_seq_length" in overrides)
        key = prompt_key(overrides)
        assert (key is not None and f"p{key}" in parts) == ("query_prompt" in overrides)
        # Back from the name: the same suite and the same flags (prompts as their key), and a copy number.
        suite, back, copy = EvalSettings.from_stem(stem + "--3")
        assert (suite, back.stem(suite), copy) == ("scifact", stem, 3)
        if "query_prompt" not in overrides:
            assert back == settings
    assert default.stem("scifact") == "scifact"
    assert len(stems) == len(list(itertools.product(*grid.values())))
    assert EvalSettings.from_stem("notes-by-hand") == ("notes-by-hand", default, None)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_bidir_writes_follow_the_users_umask(tmp_path, tiny_bert_path, umask):
    """Results JSON, the run file and its qrels, and the embedding cache are written through temporary files
    (mkstemp creates them 0600); they must end up as ``open`` would have made them: 0666 less the umask."""
    import os
    import stat

    folder = write_beir(tmp_path / "mini", *make_collection(seed=2, docs=40))
    previous = os.umask(umask)
    try:
        result = bidir_eval(tiny_bert_path, "--suite", folder, "--output", tmp_path / "o.json",
                            "--run-file", tmp_path / "run.trec", "--cache-dir", tmp_path / "cache")  # fmt: skip
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    written = [tmp_path / "o.json", tmp_path / "run.trec", tmp_path / "run.qrels", *(tmp_path / "cache").iterdir()]
    assert len(written) == 5  # the cache: embeddings and what their key was made of
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
