"""How ``bidir experiment`` runs its cells on this machine: everything checked before anything is written, each
cell claimed by one owner, its state read from the folder alone (``--status``), and a clean stop.

The SLURM executor's tests need a real cluster: tests/test_cluster.py (``bash scripts/test_cluster.sh``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import BIDIR, ROOT, bidir, write_experiment

from bidir_cli.experiment import locks
from bidir_cli.experiment.locks import CellLock, Owner


def statistics(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {"verdicts": summary["verdicts"], "comparisons": summary["comparisons"], "missing": summary["missing"]}


def test_every_problem_is_named_against_the_experiment_file_and_arm_before_anything_is_written(tmp_path):
    path = write_experiment(
        tmp_path,
        set={"training.learning_rte": 0.1},
        arms={"mnrl": {"loss.name": "mnrl"}, "mnbrl": {"loss.name": "mnbrl", "loss.scle": 20}},
        evaluate=["test-beir", "no-such-suite"],
    )
    out = tmp_path / "out"
    for mode in ([], ["--plan"]):
        result = bidir("experiment", path, "--output-dir", out, *mode)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert lines[0] == f"bidir: error: {path}: 3 problems"
        assert f"  {path}: set: training.learning_rte: not an argument of SentenceTransformerTrainingArguments " \
               "(did you mean learning_rate?)" in lines  # fmt: skip
        assert f"  {path}: arms.mnbrl: loss.scle: unknown key (did you mean scale?)" in lines
        assert any(line.startswith(f"  {path}: evaluate: {tmp_path}/no-such-suite: no such file") for line in lines)
        assert not out.exists()
    # A missing training file in the base config is the base config's problem, named there.
    path = write_experiment(tmp_path / "nodata", set={"data.train.0.source": "missing.jsonl"})
    result = bidir("experiment", path, "--output-dir", out)
    assert result.returncode == 2 and f"{path}: set: data.train.0.source: missing.jsonl: no such file" in result.stderr
    assert not out.exists()


def test_a_key_given_twice_in_any_yaml_is_an_error_naming_both_lines(tmp_path):
    path = write_experiment(tmp_path)
    text = path.read_text().replace("  mnrl:\n", "  mnbrl:\n    loss.name: mnbrl\n  mnrl:\n", 1)
    path.write_text(text)  # two arms called mnbrl: YAML would keep the last
    first, second = (i + 1 for i, line in enumerate(text.splitlines()) if line == "  mnbrl:")
    result = bidir("experiment", path, "--output-dir", tmp_path / "out", "--plan")
    assert result.returncode == 2
    assert f"duplicate key 'mnbrl' (lines {first} and {second})" in result.stderr and str(path) in result.stderr
    config = tmp_path / "config.yaml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join([*lines, "name: again"]) + "\n")
    first = next(i + 1 for i, line in enumerate(lines) if line.startswith("name:"))
    result = bidir("train", config, "--dry-run")
    assert result.returncode == 2
    assert f"duplicate key 'name' (lines {first} and {len(lines) + 1})" in result.stderr


def test_a_claim_is_held_by_one_owner_adopted_by_its_token_and_taken_over_when_stale(tmp_path, monkeypatch):
    lock = CellLock(tmp_path / "cell.lock")
    me = Owner.here("local")
    assert lock.claim(me) == (True, None)
    other = Owner.here("local")
    assert lock.claim(other) == (False, f"held by pid {os.getpid()} on {me.host}")
    lock.release(other)  # not its claim: nothing happens
    assert lock.read() == me

    queued = Owner.here("slurm", state="queued")
    lock.release(me)
    assert lock.claim(queued)[0]
    job = Owner.here("slurm")
    assert lock.claim(job, adopt=queued.token) == (True, None) and lock.read() == job  # the submitter's claim

    # A dead pid on this host: taken over, and said so.
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.path.write_text(json.dumps({**job.__dict__, "pid": dead.pid}))
    claimed, note = lock.claim(me)
    assert claimed and note == f"took over a stale claim of pid {dead.pid} on {me.host}: pid {dead.pid} has ended"
    # A live owner whose heartbeat stopped (a frozen node) is stale after the limit; beating keeps it alive.
    monkeypatch.setattr(locks, "STALE_AFTER_S", 60)
    assert lock.live_owner() == me
    lock.path.write_text(json.dumps({**me.__dict__, "heartbeat": time.time() - 61}))
    assert lock.live_owner() is None and "no heartbeat for 61 s" in locks.stale_reason(lock.read())
    assert lock.beat(lock.read()).heartbeat > time.time() - 1 and lock.live_owner() is not None


def test_status_reads_every_cells_state_from_the_folder(tmp_path):
    path = write_experiment(tmp_path, seeds=3, set={"training.max_steps": 4, "training.save_steps": 2})
    out = tmp_path / "out"
    bidir("experiment", path, "--output-dir", out, "--cell", "mnrl-seed1", check=True)
    bidir("train", tmp_path / "config.yaml", "--output-dir", out / "runs" / "mnbrl-seed1", "--set", 'loss.name="mnbrl"',
          "--set", "training.seed=1", "--set", 'evaluation.suite="test-beir"', "--set", "training.max_steps=5")  # fmt: skip
    # mnbrl-seed1 trained by hand with another config: refused, and said why. mnrl-seed2: interrupted after step 2.
    bidir("experiment", path, "--output-dir", out, "--cell", "mnrl-seed2", check=True)
    run = out / "runs" / "mnrl-seed2"
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps(meta | {"status": "interrupted"}))
    for name in ("model", "checkpoints/checkpoint-4"):
        subprocess.run(["rm", "-r", str(run / name)], check=True)
    # mnbrl-seed2 held by a live process (this one); mnrl-seed3's log ends in a failure.
    CellLock(out / "runs" / "mnbrl-seed2.lock").claim(Owner.here("local"))
    (out / "logs" / "mnrl-seed3.log").write_text("bidir: error: something broke\n# bidir experiment: cell failed after 1.0 s (pid 1 on x)\n")  # fmt: skip
    result = bidir("experiment", path, "--output-dir", out, "--status", check=True)
    lines = dict(re.match(r"\s+(\S+)\s+(.*)", x).groups() for x in result.stdout.splitlines() if x.startswith("  "))
    assert re.fullmatch(r"complete \(\d+ s\)", lines["mnrl-seed1"])
    assert (
        lines["mnbrl-seed1"].startswith("refused:")
        and "training.max_steps: this experiment 4, the cell ran 5" in lines["mnbrl-seed1"]
    )
    assert lines["mnrl-seed2"] == "interrupted: resumable from step 2"
    assert re.fullmatch(
        rf"running: pid {os.getpid()} on \S+, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d", lines["mnbrl-seed2"]
    )
    assert lines["mnrl-seed3"] == f"failed: {out / 'logs' / 'mnrl-seed3.log'}: bidir: error: something broke"
    assert lines["mnbrl-seed3"] == "pending"
    assert result.stdout.splitlines()[-1].startswith("1 of 6 cells complete; about ")


@pytest.mark.heavy
def test_sigint_starts_no_queued_cell_and_a_rerun_gives_the_uninterrupted_report(tmp_path):
    """Real processes: Ctrl-C while the first of two cells trains; the second never starts, the command ends within
    15 s with 130 and says how to resume; the rerun resumes the first from its checkpoint, and the report equals
    an uninterrupted run's."""
    path = write_experiment(tmp_path, seeds=1, set={"training.max_steps": 100, "training.save_steps": 10,
                                                    "training.logging_steps": 10})  # fmt: skip
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([*BIDIR, "experiment", str(path), "--output-dir", str(out)], stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)  # fmt: skip
    first = out / "runs" / "mnbrl-seed1"
    deadline = time.time() + 120
    while not (first / "checkpoints" / "checkpoint-10" / "trainer_state.json").exists():
        assert process.poll() is None and time.time() < deadline, "the first cell did not reach a checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C on a terminal: the whole foreground group
    sent = time.time()
    stderr = process.communicate(timeout=30)[1]
    assert process.returncode == 130 and time.time() - sent < 15, stderr
    assert stderr.splitlines()[-1] == "bidir: interrupted: rerun the same command to resume"
    assert re.search(r"cell mnbrl-seed1: interrupted \(resumable from step \d+\)", stderr)
    assert not (out / "runs" / "mnrl-seed1").exists() and "mnrl-seed1" not in stderr  # never started
    meta = json.loads((first / "meta.json").read_text())
    assert (
        meta["status"] == "interrupted"
        and f"rerun the experiment to resume it (bidir experiment {path}" in meta["note"]
    )
    assert not (out / "runs" / "mnbrl-seed1.lock").exists()

    rerun = bidir("experiment", path, "--output-dir", out, check=True)
    assert re.search(r"cell mnbrl-seed1: resume \(resumable from step \d+\) on pid \d+ on \S+ \(1 threads\); log ",
                     rerun.stderr)  # fmt: skip
    assert re.search(r"cell mnrl-seed1: complete after \d+ s", rerun.stderr)
    for log in (out / "logs").glob("*.log"):  # logs free of carriage-return bars and the model card's widget noise
        text = log.read_text()
        assert "\r" not in text and "widget" not in text.lower() and "# bidir experiment: cell complete" in text
    uninterrupted = tmp_path / "uninterrupted"
    bidir("experiment", path, "--output-dir", uninterrupted, check=True)
    assert statistics(out) == statistics(uninterrupted)


@pytest.mark.heavy
def test_two_invocations_started_together_share_the_cells_and_train_each_once(tmp_path):
    path = write_experiment(tmp_path, seeds=1)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    command = [*BIDIR, "experiment", str(path), "--output-dir", str(out)]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    trained = [re.findall(r"cell (\S+): new on pid (\d+)", o) for o in outputs]
    assert all(trained), outputs  # each trained at least one cell
    names = sorted(name for found in trained for name, _ in found)
    assert names == ["mnbrl-seed1", "mnrl-seed1"]  # each exactly once
    pids = {name: int(pid) for found in trained for name, pid in found}
    for name in pids:
        meta = json.loads((out / "runs" / name / "meta.json").read_text())
        assert meta["status"] == "completed" and not meta["resumed"] and meta["where"]["executor"] == "local"
    assert (out / "report.md").exists()


def test_executor_keys_are_checked_and_processes_exclude_a_command(tmp_path):
    path = write_experiment(tmp_path, executor={"name": "slurm", "partiton": "gpu", "select": {"time_min": 5}})
    result = bidir("experiment", path, "--plan")
    assert result.returncode == 2 and "executor.partiton: unknown key (did you mean partition?)" in result.stderr
    path = write_experiment(tmp_path / "both", processes_per_cell=2, command="python -m bidir_cli.cli")
    result = bidir("experiment", path, "--plan")
    assert (
        result.returncode == 2 and "command: a cell of several processes is run by processes_per_cell" in result.stderr
    )
    # The selection's own scheduler resources replace the seeded cells' where given; a cell's shape is not one.
    from bidir_cli.experiment.spec import ExecutorConfig

    executor = ExecutorConfig(name="slurm", time_min=120, partition="gpu", select={"time_min": 5})
    assert (executor.stage("select").time_min, executor.stage("select").partition) == (5, "gpu")
    assert executor.stage("test").time_min == 120
    path = write_experiment(tmp_path / "shape", executor={"select": {"gpus_per_cell": 1}})
    assert "executor.select.gpus_per_cell: unknown key" in bidir("experiment", path, "--plan").stderr


def test_a_design_changed_after_the_first_report_is_named_and_refuses_confirmation(tmp_path, monkeypatch):
    from bidir_cli.experiment import confirm
    from bidir_cli.experiment.cells import Experiment
    from bidir_cli.experiment.design import design, design_hash

    path = write_experiment(tmp_path, seeds=1)
    out = tmp_path / "out"
    bidir("experiment", path, "--output-dir", out, check=True)
    plan = json.loads((out / "plan.json").read_text())
    exp = Experiment(path, out)
    assert plan["design_hash"] == design_hash(design(exp)) and plan["design"]["seeds"] == [1]
    # Neither the code, the executor nor the threads are the design: the plan hash moves, the design's does not.
    monkeypatch.setattr(confirm, "code_version", lambda: "another tree")
    moved = Experiment(write_experiment(tmp_path / "other", seeds=1, threads=2, executor={"name": "slurm"}), out)
    assert confirm.plan_hash(moved) != plan["plan_hash"] and design_hash(design(moved)) == plan["design_hash"]
    monkeypatch.undo()

    # Seeds raised after the first report (optional stopping): every verdict says so, and --confirm refuses.
    raised = path.read_text().replace("seeds: 1", "seeds: 2")
    path.write_text(raised)
    result = bidir("experiment", path, "--output-dir", out, check=True)
    summary = json.loads((out / "summary.json").read_text())
    first = summary["verdicts"]["test-beir"][0]
    assert first.startswith("**The design changed after the first report** (seeds: 1 per arm -> 2 per arm)")
    assert "The design changed after the first report" in result.stdout
    assert "**changed since**: seeds: 1 per arm -> 2 per arm" in (out / "report.md").read_text()
    refused = bidir("experiment", path, "--output-dir", out, "--confirm")
    assert refused.returncode == 2 and "--confirm: the design changed after the first report (seeds" in refused.stderr
    assert not (out / "confirmation.json").exists()
    # Back to the registered design: no warning, and the confirmation records the design it confirmed.
    path.write_text(raised.replace("seeds: 2", "seeds: 1"))
    bidir("experiment", path, "--output-dir", out, "--confirm", check=True)
    assert json.loads((out / "confirmation.json").read_text())["design_hash"] == plan["design_hash"]
    assert "changed after" not in (out / "report.md").read_text()
    # A first report from before design hashes: "not comparable", never flagged.
    (out / "plan.json").write_text(json.dumps({k: v for k, v in plan.items() if not k.startswith("design")}))
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    report = (out / "report.md").read_text()
    assert "design hash (what decides the statistics" in report and "not comparable (the first report" in report
    assert "changed after" not in report


def test_a_sequential_experiment_stops_at_its_first_decisive_look_and_says_where_and_why(tmp_path):
    """The quickstart's data and model (configs/quickstart.yaml), 8 steps a cell: a trained arm against one whose
    learning rate is nil, looks at 3 and 6 runs. The difference is plain, so it stops at the first look."""
    path = tmp_path / "sequential.yaml"
    path.write_text(yaml.safe_dump({
        "name": "sequential", "base": str(ROOT / "configs" / "quickstart.yaml"), "baseline": "still",
        "set": {"training.max_steps": 8, "data.train.0.sample": 4000},
        "arms": {"still": {"training.learning_rate": 1e-9}, "trained": {"training.learning_rate": 0.1}},
        "seeds": 6, "sequential": {"looks": [3, 6]}, "threads": 1, "keep_checkpoints": False,
    }))  # fmt: skip
    out = tmp_path / "out"
    result = bidir("experiment", path, "--output-dir", out, check=True)
    assert sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) == [
        f"{arm}-seed{s}" for arm in ("still", "trained") for s in (1, 2, 3)]  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    first = summary["verdicts"]["wordnet-eval"][0]
    assert first.startswith("**trained vs still, sequential design**: stopped at look 1 of 2 (3 runs per arm, 3 of")
    assert "for efficacy" in first and "stopped at look 1 of 2" in result.stdout
    arm = summary["sequential"]["arms"]["trained"]
    look = arm["looks"][0]
    assert arm["decision"] == "efficacy" and look["p"] <= look["efficacy_p"]
    assert arm["p"] == pytest.approx(look["p"], rel=1e-6)  # at the first look the stage-wise p is the look's own
    assert summary["verdicts"]["wordnet-eval"][1].startswith("Fixed-design figures")
    report = (out / "report.md").read_text()
    assert (out / "sequential-path.png").stat().st_size > 0 and "## Sequential design" in report
    assert "Fixed-design figures: this table's p-values" in report
    status = bidir("experiment", path, "--output-dir", out, "--status", check=True).stdout
    assert "sequential design: trained: stopped at look 1 of 2 (efficacy)" in status
    again = bidir("experiment", path, "--output-dir", out, check=True)
    assert (
        "nothing to run: the experiment is complete (its sequential design stopped: trained at look 1 of 2"
        in again.stderr
    )
    # information: runs is the default and leaves the design's hash as it was; variance is another design, named
    # when it changes after the first report, and its looks table shows each look's measured fraction.
    spec = yaml.safe_load(path.read_text())
    spec["sequential"]["information"] = "runs"
    path.write_text(yaml.safe_dump(spec))
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    assert "changed after" not in (out / "report.md").read_text()
    spec["sequential"]["information"] = "variance"
    path.write_text(yaml.safe_dump(spec))
    bidir("experiment", path, "--output-dir", out, "--report-only", check=True)
    report = (out / "report.md").read_text()
    assert "(sequential: information changed)" in report and "| look | runs per arm | information fraction |" in report
    fraction = json.loads((out / "summary.json").read_text())["sequential"]["arms"]["trained"]["looks"][0]["fraction"]
    assert 0.5 <= fraction < 1  # at least runs / most (3 / 6), below 1 before the last look


def test_a_look_waits_for_every_cell_it_needs_and_a_futile_arm_stops(tmp_path):
    path = write_experiment(tmp_path, seeds=4, baseline="still", sequential={"looks": [2, 4], "spending": "pocock"},
                            arms={"still": {"loss.name": "mnrl", "training.learning_rate": 1e-9},
                                  "trained": {"loss.name": "mnrl"}})  # fmt: skip
    out = tmp_path / "out"
    for cell in ("still-seed1", "trained-seed1", "still-seed2"):
        bidir("experiment", path, "--output-dir", out, "--cell", cell, check=True)
    status = bidir("experiment", path, "--output-dir", out, "--status", check=True).stdout
    assert "trained: 0 of 2 looks analysed; look 1 needs 2 runs of trained and still" in status  # a partial look
    bidir("experiment", path, "--output-dir", out, check=True)
    summary = json.loads((out / "summary.json").read_text())
    outcome = summary["sequential"]["arms"]["trained"]
    # Whatever look it stopped at, it ran no more than that look's cells, and the decision matches the bounds.
    runs = summary["sequential"]["looks"][outcome["stop_look"] - 1]
    assert sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) == sorted(
        f"{arm}-seed{s}" for arm in ("still", "trained") for s in range(1, runs + 1))  # fmt: skip
    last = outcome["looks"][-1]
    assert (outcome["decision"] == "efficacy") == (last["p"] <= last["efficacy_p"]) == (outcome["p"] <= 0.05)


def test_extending_a_grid_steps_beyond_the_edge_by_its_own_ratio_or_step():
    from bidir_cli.experiment.selection import extended

    assert extended([0.1, 0.2, 0.4, 0.8], 0.8) == pytest.approx(1.6)
    assert extended([0.1, 0.2, 0.4, 0.8], 0.1) == pytest.approx(0.05)
    assert extended([20, 40, 80, 160, 320], 320) == 640 and isinstance(extended([20, 40, 80], 20), int)
    assert extended([1, 2, 3], 3) == 4 and extended([1, 2, 3], 1) == 0
    assert extended([20, 40, 80], 40) is None and extended(["a", "b"], "b") is None


@pytest.mark.heavy
def test_a_staged_selection_chooses_stage_by_stage_extends_edges_and_checks_the_floor(tmp_path):
    reference = tmp_path / "ref"
    dev = "test-beir"  # the development suite here (the test suite is the held-out collection)
    path = write_experiment(
        tmp_path, seeds=1, evaluate=["heldout-beir"], confirm=[],
        select={"suite": dev, "extend_edges": True, "floor": {"arm": "mnrl", "reference": "ref", "within": 0.02},
                "stages": [{"grid": {"training.learning_rate": [0.02, 0.05]}, "shared": True},
                           {"grid": {"loss.scale": [10, 20]}}]},
    )  # fmt: skip
    bidir(
        "train", tmp_path / "config.yaml", "--output-dir", reference, "--set", f'evaluation.suite="{dev}"', check=True
    )
    out = tmp_path / "out"
    bidir("experiment", path, "--output-dir", out, check=True)
    from bidir_cli.experiment.cells import Experiment
    from bidir_cli.runs.results import EvalResult

    def score(cell: str) -> float:
        return EvalResult.load(out / "runs" / cell / "eval" / f"{dev}.json").mean["ndcg@10"]

    exp = Experiment(path, out)
    chosen = exp.chosen()
    names = sorted(c.name for c in exp.selection_cells())
    # Stage 1 on the baseline only; its choice (by hand: the best score, extended once if on an edge) for every arm.
    first = [n for n in names if n.startswith("select1-")]
    assert {n.split("-")[1] for n in first} == {"mnrl"} and len(first) == 3  # an edge is always chosen of 2 values
    lrs = {n: json.loads((out / "runs" / n / "meta.json").read_text())["config"]["training"]["learning_rate"]
           for n in first}  # fmt: skip
    best = max(first, key=lambda n: (score(n), -int(n.rsplit("-", 1)[1])))
    assert chosen["mnrl"]["training.learning_rate"] == chosen["mnbrl"]["training.learning_rate"] == lrs[best]
    # Stage 2 per arm, at stage 1's choice.
    for arm in ("mnrl", "mnbrl"):
        second = [n for n in names if n.startswith(f"select2-{arm}-")]
        assert len(second) == 3
        for n in second:
            config = json.loads((out / "runs" / n / "meta.json").read_text())["config"]
            assert config["training"]["learning_rate"] == lrs[best]
        top = max(second, key=lambda n: (score(n), -int(n.rsplit("-", 1)[1])))
        scale = json.loads((out / "runs" / top / "meta.json").read_text())["config"]["loss"]["scale"]
        assert chosen[arm]["loss.scale"] == scale
    report = (out / "report.md").read_text()
    assert "Stage 1 of 2: chosen on the baseline arm, mnrl, for every arm" in report and "Stage 2 of 2" in report
    assert "(extension)" in report
    gap = score(_chosen_name(exp, "mnrl"))
    reference_score = EvalResult.load(reference / "eval" / f"{dev}.json").mean["ndcg@10"]
    assert f"Trained enough? mnrl's chosen setting scores {gap:.4f}" in report
    assert f"the reference (`ref`, fixed in the plan) {reference_score:.4f}" in report


def _chosen_name(exp, arm: str) -> str:
    from bidir_cli.experiment.selection import walk

    return walk(exp).picked[arm].name


def test_beside_sets_an_earlier_experiments_figures_on_the_same_datasets_next_to_this_ones(tmp_path):
    earlier = write_experiment(tmp_path / "earlier", seeds=1, confirm=[])
    bidir("experiment", earlier, "--output-dir", tmp_path / "earlier" / "out", check=True)
    path = write_experiment(tmp_path / "now", seeds=1, confirm=[], beside="../earlier/out",
                            set={"training.per_device_train_batch_size": 16})  # fmt: skip
    bidir("experiment", path, "--output-dir", tmp_path / "now" / "out", check=True)
    report = (tmp_path / "now" / "out" / "report.md").read_text()
    theirs = json.loads((tmp_path / "earlier" / "out" / "summary.json").read_text())
    mine = json.loads((tmp_path / "now" / "out" / "summary.json").read_text())
    row = {r["name"]: r for r in theirs["comparisons"]["test-beir"]["rows"]}["test-beir"]
    here = {r["name"]: r for r in mine["comparisons"]["test-beir"]["rows"]}["test-beir"]
    assert "### Beside experiment tiny-loss" in report
    arms = list(yaml.safe_load(path.read_text())["arms"])  # the report's order: the file's
    cells = [v for arm in arms for v in (here["cells"][arm]["value"], row["cells"][arm]["value"])]
    assert "| test-beir | " + " | ".join(f"{v:.4f}" for v in cells) + " |" in report
