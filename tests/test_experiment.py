"""``bidir experiment``: cells are ordinary runs that resume, never get silently reused, and give one report.

One small experiment (2 arms x 2 seeds of a 16-dim StaticEmbedding, 4 steps each) is run once for the module;
the other tests rerun it in other ways and compare their numbers with it. Cells run in this process
(:class:`~bidir_cli.experiment.executors.InProcessExecutor`: the same commands at the same thread count, without 5-10 s of
imports per command), except in the one test that drives real processes end to end, kills one and resumes it, and
so also shows that both executors give the same numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import BIDIR, ROOT, bidir, bidir_process, write_experiment, write_tiny_beir

from bidir_cli.cli import invoke
from bidir_cli.experiment import executors
from bidir_cli.runs.results import EvalResult


def statistics(out: Path) -> dict:
    """The report's numbers: verdicts and comparison rows (timings and paths excepted)."""
    summary = json.loads((out / "summary.json").read_text())
    return {"verdicts": summary["verdicts"], "comparisons": summary["comparisons"], "missing": summary["missing"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """The experiment run once, two cells at a time: (experiment file, output folder)."""
    folder = tmp_path_factory.mktemp("experiment")
    path = write_experiment(folder)
    bidir("experiment", path, "--output-dir", folder / "out", "--jobs", 2, check=True)
    return path, folder / "out"


def test_an_experiment_runs_every_cell_and_reports_a_verdict(finished):
    path, out = finished
    cells = sorted(p.name for p in (out / "runs").iterdir())
    assert cells == ["mnbrl-seed1", "mnbrl-seed2", "mnrl-seed1", "mnrl-seed2"]
    started = {}
    for cell in cells:
        meta = json.loads((out / "runs" / cell / "meta.json").read_text())
        assert meta["status"] == "completed" and meta["threads"] == 1
        assert meta["config"]["training"]["seed"] == int(cell[-1])
        started[cell] = meta["started"]
    # Seed by seed (two at a time here): both arms' seed 1 started before any seed 2, so that an experiment
    # stopped early has a balanced partial report.
    assert max(started["mnbrl-seed1"], started["mnrl-seed1"]) <= min(started["mnbrl-seed2"], started["mnrl-seed2"])
    report = (out / "report.md").read_text()
    assert "mnbrl vs mnrl" in report and "## Provenance" in report and "## Training" in report
    summary = json.loads((out / "summary.json").read_text())
    mean = next(r for r in summary["comparisons"]["test-beir"]["rows"] if r["name"] == "mean")
    # The mean row's values are the seeds' means of each run's own results file.
    for arm in ("mnrl", "mnbrl"):
        runs = [EvalResult.load(out / "runs" / f"{arm}-seed{s}" / "eval" / "test-beir.json") for s in (1, 2)]
        expected = sum(r.mean["ndcg@10"] for r in runs) / 2
        assert mean["cells"][arm]["value"] == pytest.approx(expected, abs=1e-12)
    assert (out / "differences-test-beir.png").stat().st_size > 0 and (out / "training.png").stat().st_size > 0


def test_a_second_run_retrains_nothing(finished):
    path, out = finished
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("meta.json")}
    result = bidir("experiment", path, "--output-dir", out, check=True)
    assert "new" not in result.stderr and "resume" not in result.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("meta.json")} == before


def train_log(run: Path) -> list[dict]:
    """A run's train_log.jsonl without its timings."""
    lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "examples_per_second"} for line in lines]


@pytest.mark.heavy
def test_sigkill_during_a_cell_then_rerun_gives_the_uninterrupted_report(tmp_path):
    """Real processes end to end (the subprocess executor): one seed per arm, 40 steps a cell with a checkpoint
    every 10, the second cell killed between two of its checkpoints, the command run again; its train logs and its
    report equal those of the same experiment run uninterrupted with its cells in this process."""
    path = write_experiment(tmp_path, seeds=1, set={"training.max_steps": 40, "training.save_steps": 10})
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([*BIDIR, "experiment", str(path), "--output-dir", str(out), "--jobs", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
    killed = out / "runs" / "mnrl-seed1"
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "checkpoint-10" / "trainer_state.json").exists() and time.time() < deadline:
        assert process.poll() is None, "the experiment ended before its second cell's first checkpoint"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first_meta = (out / "runs" / "mnbrl-seed1" / "meta.json").read_bytes()
    assert json.loads((killed / "meta.json").read_text())["status"] != "completed"
    steps = sorted(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("checkpoint-*"))
    assert steps[-1] < 40 and not (killed / "model").exists()  # between two checkpoints: steps left to resume

    result = bidir_process("experiment", path, "--output-dir", out, "--jobs", 1, check=True)
    assert "cell mnrl-seed1: resume" in result.stderr and "mnbrl-seed1" not in result.stderr
    assert (out / "runs" / "mnbrl-seed1" / "meta.json").read_bytes() == first_meta  # not retrained

    uninterrupted = tmp_path / "uninterrupted"
    bidir("experiment", path, "--output-dir", uninterrupted, check=True)
    for cell in ("mnbrl-seed1", "mnrl-seed1"):  # processes or this process, resumed or not: the same training
        assert train_log(out / "runs" / cell) == train_log(uninterrupted / "runs" / cell), cell
    assert statistics(out) == statistics(uninterrupted)


def test_the_plans_commands_run_by_hand_then_report_only_give_the_same_report(finished, tmp_path):
    path, reference = finished
    out = tmp_path / "out"
    lines = bidir("experiment", path, "--output-dir", out, "--plan", check=True).stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("OMP_NUM_THREADS=1") and "bidir train" in line for line in lines)
    order = [line.split(f"{out}/runs/")[1].split()[0] for line in lines]
    assert order == ["mnbrl-seed1", "mnrl-seed1", "mnbrl-seed2", "mnrl-seed2"]  # seed by seed, arms in file order
    for line in lines:  # each line's commands as a shell would run them: its variables, then `bidir ARGS`
        for command in line.split(" && "):
            words = shlex.split(command)
            assignments = dict(w.split("=", 1) for w in words[:2])
            assert assignments == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} and words[2] == "bidir"
            with open(tmp_path / "by-hand.log", "a") as log:
                assert executors.InProcessExecutor(invoke).run(words[3:], assignments, log) == 0
    assert bidir("experiment", path, "--output-dir", out, "--plan", check=True).stdout.startswith("# nothing to run")
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    assert statistics(out) == statistics(reference)


def test_a_changed_cell_config_is_refused_naming_the_field_both_values_and_a_defaulted_variable(
    finished, tmp_path, monkeypatch
):
    path, out = finished
    learning_rate = yaml.safe_load((path.parent / "config.yaml").read_text())["training"]["learning_rate"]
    monkeypatch.delenv("BIDIR_TEST_LR", raising=False)
    changed = write_experiment(tmp_path, set={"training.learning_rate": "${BIDIR_TEST_LR:-0.01}"})
    before = {p: p.read_bytes() for p in (out / "runs").rglob("meta.json")}
    result = bidir("experiment", changed, "--output-dir", out)
    assert result.returncode == 2 and "was run with another config" in result.stderr
    assert f"training.learning_rate: this experiment 0.01, the cell ran {learning_rate}" in result.stderr
    assert (
        "(in tiny.experiment.yaml: ${BIDIR_TEST_LR:-0.01} at tiny.experiment.yaml.set.training.learning_rate used its "
        "default (BIDIR_TEST_LR is not set))" in result.stderr
    )
    assert {p: p.read_bytes() for p in (out / "runs").rglob("meta.json")} == before
    # With the variable set to the cell's value, nothing differs and nothing runs.
    monkeypatch.setenv("BIDIR_TEST_LR", str(learning_rate))
    assert bidir("experiment", changed, "--output-dir", out, "--plan", check=True).stdout.startswith("# nothing to run")


def test_report_only_lists_what_is_missing(finished, tmp_path):
    path, reference = finished
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    shutil.rmtree(out / "runs" / "mnbrl-seed2")
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    assert json.loads((out / "summary.json").read_text())["missing"] == ["mnbrl-seed2"]
    assert "**Incomplete**: 1 cell(s) missing: mnbrl-seed2" in (out / "report.md").read_text()


def test_the_report_rebuilds_from_results_only_files(finished, tmp_path):
    path, reference = finished
    out = tmp_path / "evidence"
    for file in reference.rglob("*"):
        relative = file.relative_to(reference)
        keep = (
            relative.name in ("config.yaml", "meta.json", "train_log.jsonl", "plan.json")
            or relative.parent.name == "eval"
        )
        if file.is_file() and keep and "model" not in relative.parts and "checkpoints" not in relative.parts:
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, out / relative)
    assert not list(out.rglob("*.safetensors"))
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    assert statistics(out) == statistics(reference)


def test_the_cost_table_leaves_out_a_rate_a_resumed_run_did_not_measure(finished, tmp_path):
    """Before 2026-12-06 a run resumed from its last checkpoint recorded 0.0 examples per second (its last process
    trained no step); the report's mean rate is then the measured runs' only, and says so."""
    path, reference = finished
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    meta_file = out / "runs" / "mnrl-seed1" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["resumed"], meta["train"]["examples_per_second"] = ["2026-12-03T20:10:32+00:00"], 0.0
    meta_file.write_text(json.dumps(meta))
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    measured = json.loads((out / "runs" / "mnrl-seed2" / "meta.json").read_text())["train"]["examples_per_second"]
    row = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| mnrl | 2 |"))
    assert row.split(" | ")[3] == f"{measured:.1f} (1 of 2 runs measured)"
    # The comparison table's measurement row reads the same meta.json: the one measured run, no ± over two.
    rates = next(line for line in (out / "report.md").read_text().splitlines() if "| examples per second |" in line)
    assert f"| {measured:,.2f} |" in rates


def test_confirm_refuses_before_completion_then_runs_once_with_its_hashes(finished, tmp_path):
    path, reference = finished
    early = bidir("experiment", path, "--output-dir", tmp_path / "empty", "--confirm")
    assert early.returncode == 2 and "not complete" in early.stderr

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    bidir("experiment", path, "--output-dir", out, "--confirm", check=True)
    report = (out / "report.md").read_text()
    assert "## Confirmation on held-out suites" in report and "the same plan." in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["confirmation"]["plan_hash"] == summary["plan"]["plan_hash"]
    assert "heldout-beir" in summary["confirmation"]["comparisons"]
    assert "heldout-beir" not in summary["comparisons"]  # never part of the test report
    again = bidir("experiment", path, "--output-dir", out, "--confirm")
    assert again.returncode == 2 and "runs once" in again.stderr
    # A plan.json written before the hash was versioned (version 1, absolute paths) is not compared with it.
    plan = json.loads((out / "plan.json").read_text())
    del plan["plan_hash_version"]
    (out / "plan.json").write_text(json.dumps(plan | {"plan_hash": "0" * 64}))
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    report = (out / "report.md").read_text()
    assert "different versions of the plan hash" in report and "plan changed" not in report


def test_verify_reproduces_an_unchanged_cell_and_fails_on_an_altered_result(finished, tmp_path):
    path, reference = finished
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    # A confirmed cell also holds held-out results, which the retrained copy does not recompute.
    eval_dir = out / "runs" / "mnbrl-seed1" / "eval"
    held_out = json.loads((eval_dir / "test-beir.json").read_text())
    held_out["suite"]["name"] = "heldout-beir"
    (eval_dir / "heldout-beir.json").write_text(json.dumps(held_out))
    ok = bidir("experiment", path, "--output-dir", out, "--verify", "mnbrl-seed1")
    assert ok.returncode == 0, ok.stderr
    assert "reproduced exactly" in ok.stdout

    results = out / "runs" / "mnbrl-seed1" / "eval" / "test-beir.json"
    data = json.loads(results.read_text())
    data["datasets"]["test-beir"]["per_query"]["ndcg@10"][0] += 0.01
    results.write_text(json.dumps(data))
    bad = bidir("experiment", path, "--output-dir", out, "--verify", "mnbrl-seed1")
    assert bad.returncode == 1 and "did not reproduce" in bad.stderr and "ndcg@10" in bad.stderr
    assert "CPU capability" not in bad.stderr  # the cell ran on this CPU: nothing to pin

    # A cell that recorded other package versions: refused before retraining, naming the package and the command
    # that installs the pinned set.
    meta_path = out / "runs" / "mnbrl-seed1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(meta | {"versions": meta["versions"] | {"transformers": "0.0.1"}}))
    older = bidir("experiment", path, "--output-dir", out, "--verify", "mnbrl-seed1")
    installed = importlib.metadata.version("transformers")
    assert older.returncode == 2 and f"transformers 0.0.1 (installed: {installed})" in older.stderr
    assert "python -m pip install -c scripts/constraints.txt -e '.[dev]'" in older.stderr
    meta_path.write_text(json.dumps(meta))

    # A cell that ran on another CPU kind: the failure says what to pin.
    meta_path = out / "runs" / "mnbrl-seed1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(meta | {"cpu": {**meta["cpu"], "capability": "NO AVX", "pinned": {}}}))
    other = bidir("experiment", path, "--output-dir", out, "--verify", "mnbrl-seed1")
    assert other.returncode == 1 and "the run's CPU capability was NO AVX" in other.stderr
    assert "ATEN_CPU_CAPABILITY" in other.stderr


def test_an_unknown_key_in_an_experiment_file_is_named(tmp_path):
    path = write_experiment(tmp_path, sedes=3)
    result = bidir("experiment", path, "--plan")
    assert result.returncode == 2 and "sedes: unknown key (did you mean seeds?)" in result.stderr


SHIPPED_EXPERIMENTS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_validates_and_says_how_to_run_it(path, monkeypatch):
    from bidir_cli.experiment.cells import Experiment

    monkeypatch.delenv("BIDIR_MINILM", raising=False)  # the hub id default must validate too
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and "bidir experiment" in text.split("\n\n")[0]
    exp = Experiment(path, output_dir=Path("/nonexistent/bidir-experiment"))
    assert exp.spec.baseline in exp.spec.arms and exp.suites
    assert {"quickstart", "static", "transformer", "gpu"} <= {p.stem for p in SHIPPED_EXPERIMENTS}


def test_code_version_moves_with_the_package_only(tmp_path):
    """An experiment commits its results as cells complete: the repository's commit moves each time, the code's
    identity (the package's git tree) must not, or every cell would look as if it ran other code."""
    import subprocess

    from bidir_cli.runs.environment import code_of_commit, code_version, git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    package = tmp_path / "bidir_cli"
    package.mkdir()
    (package / "loss.py").write_text("SCALE = 20\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "code")
    code, commit = code_version(package), git_commit(package)
    assert code and not code.endswith("-dirty")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cell.json").write_text("{}")
    git("add", ".")
    git("commit", "-qm", "results")
    assert git_commit(package) != commit and code_version(package) == code
    assert code_of_commit(commit, package) == code and code_of_commit(commit + "-dirty", package) is None
    (package / "loss.py").write_text("SCALE = 40\n")
    assert code_version(package) == code + "-dirty"
    git("commit", "-qam", "change the code")
    assert code_version(package) not in (code, code + "-dirty")


def test_a_shared_selection_chooses_on_the_baseline_and_faces_the_untrained_model(tmp_path):
    """``select.shared``: one grid, on the baseline arm, whose choice every arm trains with; the untrained model is
    evaluated on the development suite too, and the report sets the chosen run against it. The base config
    evaluates a subset of a two-dataset suite, which the selection runs (on the development suite) must drop."""
    folder = tmp_path / "exp"
    path = write_experiment(folder, seeds=1, include_base=True, evaluate=None,
                            select={"grid": {"loss.scale": [5, 40]}, "suite": "dev-beir", "shared": True})  # fmt: skip
    write_tiny_beir(folder / "dev-beir", n_queries=10, seed=3)
    write_tiny_beir(folder / "other-beir", n_queries=8, seed=4)
    (folder / "two.yaml").write_text(yaml.safe_dump({"datasets": {"t1": "test-beir", "t2": "other-beir"}}))
    base = folder / "config.yaml"
    base.write_text(
        yaml.safe_dump(yaml.safe_load(base.read_text()) | {"evaluation": {"suite": "two.yaml", "datasets": ["t1"]}})
    )
    out = folder / "out"
    bidir("experiment", path, "--output-dir", out, "--jobs", 2, check=True)
    runs = out / "runs"
    assert sorted(p.name for p in runs.iterdir()) == [
        "base",
        "mnbrl-seed1",
        "mnrl-seed1",
        "select-mnrl-1",
        "select-mnrl-2",
    ]
    dev = {
        s: EvalResult.load(runs / f"select-mnrl-{i}" / "eval" / "dev-beir.json").mean["ndcg@10"]
        for i, s in ((1, 5), (2, 40))
    }
    best = max(dev, key=dev.get)  # the first on a tie, as the experiment chooses
    for cell in ("mnrl-seed1", "mnbrl-seed1"):
        config = json.loads((runs / cell / "meta.json").read_text())["config"]
        assert config["loss"]["scale"] == best and config["evaluation"]["datasets"] == ["t1"]
    assert json.loads((runs / "select-mnrl-1" / "meta.json").read_text())["config"]["evaluation"]["datasets"] is None
    assert {p.name for p in (runs / "base" / "eval").iterdir()} == {"two.json", "dev-beir.json"}
    report = (out / "report.md").read_text()
    base_dev = EvalResult.load(runs / "base" / "eval" / "dev-beir.json").mean["ndcg@10"]
    assert f"| base (untrained) | - | {base_dev:.4f} | |" in report
    assert "on the baseline arm, mnrl, for every arm" in report
    assert f"mnrl (select-mnrl-{1 if best == 5 else 2}) vs base" in report


def test_the_results_page_summarises_each_experiment_then_includes_sections_and_reports(finished, tmp_path):
    path, out = finished
    section = tmp_path / "proposal.md"
    section.write_text("## The proposal\n\nFrom a script.\n")
    page = tmp_path / "results.md"
    bidir("results-page", out, "--section", section, "--output", page, "--title", "Results here", check=True)
    text = page.read_text()
    summary = json.loads((out / "summary.json").read_text())
    [line] = summary["verdicts"]["test-beir"]
    assert text.startswith("# Results here\n\n## Summary\n")
    assert f"- on `test-beir`: {line}" in text and "- confirmation on the held-out suites: not run yet" in text
    rows = summary["comparisons"]["test-beir"]["rows"]
    significant = [r["name"] for r in rows if r["name"] != "mean" and r["differences"]["mnbrl"]["significant"]]
    listed = text.split("- on `test-beir`, mnbrl vs mnrl per dataset (p <= 0.05): ")[1].split("\n")[0]
    assert [part.split(" ")[0] for part in listed.split("correction, ")] == (significant or ["none"])
    walls = [json.loads((out / "runs" / f"mnrl-seed{s}" / "meta.json").read_text())["wall_time_s"] for s in (1, 2)]
    assert f"mnrl {sum(walls) / 2:.0f} s" in text
    assert text.index("## Summary") < text.index("## The proposal") < text.index("## Experiment tiny-loss")
    assert "\n### Verdict\n" in text  # the report's headings one level down
    # Every relative link and image of the page opens from the page's own folder (the reports' plots live in the
    # experiment's folder, elsewhere).
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    assert any(t.endswith("differences-test-beir.png") for t in targets) and any(
        t.endswith("training.png") for t in targets
    )
    for target in targets:
        assert "://" in target or target.startswith("#") or (page.parent / target).is_file(), target
    assert bidir("results-page", out, "--section", tmp_path / "nope.md").returncode == 2


def test_a_moved_checkout_rebuilds_the_report_from_the_committed_cells(finished, tmp_path):
    """Cells record absolute paths (data, suites, models in a virtual environment); the same experiment in another
    folder (a clone, another machine) must still recognise them rather than call them another config."""
    path, out = finished
    moved = tmp_path / "elsewhere"
    shutil.copytree(path.parent, moved, ignore=shutil.ignore_patterns("model", "checkpoints"))
    result = bidir("experiment", moved / path.name, "--output-dir", moved / out.name, "--report-only")
    assert result.returncode == 0, result.stderr
    assert statistics(moved / out.name) == statistics(out)
    plan = json.loads((moved / out.name / "summary.json").read_text())["plan"]
    assert plan["plan_hash_now"] == plan["plan_hash"]  # the same plan, hashed in another folder


def test_vary_sample_gives_each_seed_its_own_training_sample_and_says_so(tmp_path):
    """``vary_sample: true``: each cell's sources draw with the cell's seed (in its config, so in the plan); by
    default every seed trains on the same rows. The report says which."""
    reports = {}
    for vary in (False, True):
        folder = tmp_path / f"vary-{vary}"
        path = write_experiment(folder, seeds=2, vary_sample=vary, set={"data.train.*.sample": 40})
        out = folder / "out"
        bidir("experiment", path, "--output-dir", out, check=True)
        sources = {
            cell: json.loads((out / "runs" / cell / "meta.json").read_text())["data"]["sources"][0]
            for cell in ("mnrl-seed1", "mnrl-seed2", "mnbrl-seed1")
        }
        assert {s["sample"]["rows"] for s in sources.values()} == {40}
        seeds = {cell: s["sample"]["seed"] for cell, s in sources.items()}
        assert seeds == ({"mnrl-seed1": 1, "mnrl-seed2": 2, "mnbrl-seed1": 1} if vary else dict.fromkeys(seeds, 0))
        hashes = {cell: s["hash"] for cell, s in sources.items()}
        assert (hashes["mnrl-seed1"] != hashes["mnrl-seed2"]) is vary  # other rows, or the same
        assert hashes["mnrl-seed1"] == hashes["mnbrl-seed1"]  # the arms of a seed share its sample
        reports[vary] = (out / "report.md").read_text()
    assert "the training sample (each seed draws its own 40 rows a source)" in reports[True]
    assert (
        "fixed across seeds: the training sample (every run trains on the same 40 pairs, sample seed 0)"
        in reports[False]
    )

    unsampled = write_experiment(tmp_path / "unsampled", vary_sample=True)
    refused = bidir("experiment", unsampled, "--plan")
    assert refused.returncode == 2 and "vary_sample: no training source of arm mnrl draws a sample" in refused.stderr


def test_rebuild_puts_back_exactly_the_models_the_results_came_from_and_no_other(tmp_path):
    """A finished experiment whose weights are gone (a fresh checkout: weights are not committed) gets each cell's
    model back byte for byte, the base cell's included, so that --confirm can run; a cell whose committed train
    log does not match its retraining gets no model and the command exits 1."""

    path = write_experiment(tmp_path, seeds=1, include_base=True)
    out = tmp_path / "out"
    bidir("experiment", path, "--output-dir", out, "--jobs", 2, check=True)
    runs = sorted((out / "runs").iterdir())
    assert [r.name for r in runs] == ["base", "mnbrl-seed1", "mnrl-seed1"]
    originals = {}
    for run in runs:
        originals[run.name] = {p.relative_to(run): p.read_bytes() for p in (run / "model").rglob("*") if p.is_file()}
        shutil.rmtree(run / "model")

    def restore(*extra) -> subprocess.CompletedProcess:
        return bidir("experiment", path, "--output-dir", out, "--rebuild", "--jobs", 2, *extra)

    meta_file = out / "runs" / "mnrl-seed1" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps(meta | {"versions": meta["versions"] | {"torch": "0.0.1"}}))
    other_torch = restore()
    assert other_torch.returncode == 2 and "torch 0.0.1 (installed: " in other_torch.stderr
    assert not any((run / "model").exists() for run in runs)
    meta_file.write_text(json.dumps(meta | {"cpu": meta["cpu"] | {"capability": "NO AVX"}}))
    other_cpu = restore()
    assert other_cpu.returncode == 2 and "the run's CPU capability was NO AVX" in other_cpu.stderr
    assert "ATEN_CPU_CAPABILITY" in other_cpu.stderr and not any((run / "model").exists() for run in runs)
    meta_file.write_text(json.dumps(meta))

    done = restore()
    assert done.returncode == 0, done.stderr
    for run in runs:
        files = {p.relative_to(run): p.read_bytes() for p in (run / "model").rglob("*") if p.is_file()}
        # The model card (README.md) describes the rebuild's own run; every other file is the same, byte for byte.
        assert files.keys() == originals[run.name].keys(), run.name
        files.pop(Path("model/README.md")), originals[run.name].pop(Path("model/README.md"))
        assert files == originals[run.name], run.name
    bidir("experiment", path, "--output-dir", out, "--confirm", check=True)

    altered = out / "runs" / "mnbrl-seed1"
    shutil.rmtree(altered / "model")
    lines = [json.loads(x) for x in (altered / "train_log.jsonl").read_text().splitlines()]
    lines[0]["loss"] += 1e-6
    (altered / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    refused = restore()
    assert refused.returncode == 1
    assert "mnbrl-seed1: the rebuilt model is not the one its results came from" in refused.stderr
    assert "train_log.jsonl differs" in refused.stderr
    assert not (altered / "model").exists()

    # Another machine's rounding: --rtol accepts a train log within it, evaluates the rebuilt model on the test
    # suite again and says how far it is, in rebuilt.json and in the experiment's rebuilt.md.
    relative = 1e-6 / (lines[0]["loss"])  # the committed loss is the altered one, the larger
    too_strict = restore("--rtol", "1e-9")
    assert too_strict.returncode == 1 and "largest relative difference is" in too_strict.stderr
    assert not (altered / "model").exists()
    within = restore("--rtol", "1e-5")
    assert within.returncode == 0, within.stderr
    record = json.loads((altered / "rebuilt.json").read_text())
    assert record["train_log_largest_relative_difference"] == pytest.approx(relative, rel=1e-6)
    committed = json.loads((altered / "eval" / "test-beir.json").read_text())
    (result,) = record["results"]
    assert result["mean_ndcg@10"]["committed"] == pytest.approx(committed["mean"]["ndcg@10"], abs=1e-12)
    # The model itself is the same here (this machine rebuilt it): its results are too.
    assert result["queries_differing"] == 0 and result["mean_ndcg@10_difference"] == 0
    assert record["fingerprint"]["rebuilt"] == committed["model"]["fingerprint"]
    assert "| mnbrl-seed1 |" in (out / "rebuilt.md").read_text()


def test_rebuild_tolerance_is_the_largest_relative_difference_of_two_train_logs(tmp_path):
    """--rtol's rule as a function: the largest |a - b| / max(|a|, |b|) over every number of two train logs
    (nested values included, timings left out as --verify leaves them), computed here by hand; None when the logs
    differ in shape or in anything that is not a number."""
    from bidir_cli.experiment.rebuild import log_relative_difference
    from bidir_cli.runs.rundir import RunDir

    committed = [{"step": 2, "loss": 1.5, "examples_per_second": 10.0, "partition": {"q->d": 0.4}},
                 {"step": 4, "loss": -0.25, "examples_per_second": 11.0, "partition": {"q->d": 0.5}}]  # fmt: skip
    rebuilt = [{"step": 2, "loss": 1.5000003, "examples_per_second": 99.0, "partition": {"q->d": 0.4}},
               {"step": 4, "loss": -0.2500001, "examples_per_second": 1.0, "partition": {"q->d": 0.50000002}}]  # fmt: skip

    def run(name: str, lines: list[dict]) -> RunDir:
        (tmp_path / name).mkdir()
        (tmp_path / name / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        return RunDir(tmp_path / name)

    a, b = run("a", committed), run("b", rebuilt)
    by_hand = max(abs(u - v) / max(abs(u), abs(v)) for u, v in
                  [(1.5, 1.5000003), (-0.25, -0.2500001), (0.5, 0.50000002)])  # fmt: skip
    assert log_relative_difference(a, b) == pytest.approx(by_hand, rel=1e-12)
    assert log_relative_difference(a, a) == 0.0
    shorter = run("c", committed[:1])
    assert log_relative_difference(a, shorter) is None
    other_step = run("d", [committed[0] | {"note": "x"}, committed[1]])
    assert log_relative_difference(run("e", [committed[0] | {"note": "y"}, committed[1]]), other_step) is None


def test_evidence_lists_the_results_only_files_of_complete_cells_and_the_report(finished, tmp_path):
    """``--evidence``: what `git add` needs to rebuild the report elsewhere; a cell still running is left out."""
    path, reference = finished
    out = tmp_path / "out"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("model", "checkpoints", "logs"))
    meta_file = out / "runs" / "mnbrl-seed2" / "meta.json"
    meta_file.write_text(json.dumps(json.loads(meta_file.read_text()) | {"status": "running"}))
    listed = bidir("experiment", path, "--output-dir", out, "--evidence", check=True).stdout.split()
    expected = {
        str(p)
        for p in out.rglob("*")
        if p.is_file() and "mnbrl-seed2" not in p.parts and p.name != "tiny.experiment.yaml"
    }
    assert set(listed) == expected and len(listed) == len(expected)
    assert any(p.endswith("report.md") for p in listed) and any(p.endswith("test-beir.json") for p in listed)


def test_results_page_of_experiment_files_reports_the_complete_and_lists_the_rest(finished, tmp_path):
    path, reference = finished
    done = tmp_path / "done"
    shutil.copytree(reference, done)
    partial = tmp_path / "partial"
    shutil.copytree(reference, partial, ignore=shutil.ignore_patterns("mnrl-seed2", "report.md", "summary.json"))
    page = tmp_path / "page.md"
    bidir("results-page", f"{path}={done}", f"{path}={partial}", f"{path}={tmp_path / 'none'}", "--output", page,
          check=True)  # fmt: skip
    text = page.read_text()
    assert text.count("## Experiment tiny-loss") == 1  # the complete one, its report rebuilt
    assert f"- `{path}`: running, 3 cells complete so far; reported once every cell is" in text
    assert f"- `{path}`: no cell has run" in text
    assert not (partial / "report.md").exists()  # an incomplete experiment's report is not written
