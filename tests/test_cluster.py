"""``bidir experiment --executor slurm`` against a real SLURM (the ``cluster`` group, run on its own).

``sudo bash scripts/test_cluster.sh`` starts a one-node SLURM on this machine (slurm-wlm, munge) and runs this
group as an unprivileged user, as a cluster would. Without ``sbatch`` the group is skipped with that reason, unless
``BIDIR_REQUIRE_SLURM=1`` (CI), which turns a missing SLURM into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import BIDIR, ROOT, bidir, write_experiment

from bidir_cli.runs.rundir import fingerprint_folder

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    problem = None
    if shutil.which("sbatch") is None:
        problem = "no SLURM here (sbatch not found): run sudo bash scripts/test_cluster.sh"
    elif subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        problem = "SLURM does not answer (sinfo failed): is slurmctld running? (scripts/slurm_local.sh start)"
    if problem and os.environ.get("BIDIR_REQUIRE_SLURM") == "1":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


SLURM = {"name": "slurm", "cpus_per_cell": 1, "time_min": 10, "poll_s": 1}


def run_slurm(*args, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """``bidir ARGS`` as its own process (the submitter), as a user runs it on a login node."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*BIDIR, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def per_query(run: Path) -> dict:
    data = json.loads((run / "eval" / "test-beir.json").read_text())
    return {name: d["per_query"] for name, d in data["datasets"].items()}


def train_log(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "examples_per_second"} for line in lines]


def statistics(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {"verdicts": summary["verdicts"], "comparisons": summary["comparisons"]}


def test_slurm_cells_are_array_tasks_and_equal_the_local_executors(tmp_path):
    path = write_experiment(tmp_path, executor=SLURM)
    out, local = tmp_path / "slurm", tmp_path / "local"
    result = run_slurm("experiment", path, "--output-dir", out)
    assert "seeded: submitted 4 cell(s) as job array" in result.stderr
    bidir("experiment", path, "--output-dir", local, "--executor", "local", check=True)  # same threads (1)
    where = {}
    for cell in ("mnrl-seed1", "mnrl-seed2", "mnbrl-seed1", "mnbrl-seed2"):
        a, b = out / "runs" / cell, local / "runs" / cell
        assert per_query(a) == per_query(b) and train_log(a) == train_log(b), cell
        assert fingerprint_folder(a / "model") == fingerprint_folder(b / "model"), cell
        meta = json.loads((a / "meta.json").read_text())
        assert meta["where"]["executor"] == "slurm" and meta["threads"] == 1
        where[cell] = (meta["where"]["slurm_array_job_id"], meta["where"]["slurm_array_task_id"])
    assert len({job for job, _ in where.values()}) == 1 and len({task for _, task in where.values()}) == 4
    assert statistics(out) == statistics(local)


def test_a_cancelled_job_leaves_its_cell_interrupted_and_the_rerun_resumes_it(tmp_path):
    path = write_experiment(tmp_path, seeds=1, executor=SLURM,
                            set={"training.max_steps": 400, "training.save_steps": 10, "training.logging_steps": 10})  # fmt: skip
    out = tmp_path / "out"
    run_slurm("experiment", path, "--output-dir", out, "--detach")
    lock, checkpoint = out / "runs" / "mnbrl-seed1.lock", out / "runs" / "mnbrl-seed1" / "checkpoints" / "checkpoint-10"
    deadline = time.time() + 180
    while not (checkpoint / "trainer_state.json").exists():
        assert time.time() < deadline, run_slurm("experiment", path, "--output-dir", out, "--status").stdout
        time.sleep(0.1)
    job = json.loads(lock.read_text())["job_id"]
    subprocess.run(["scancel", job], check=True)
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline + 60
        time.sleep(0.5)
    time.sleep(1)
    status = run_slurm("experiment", path, "--output-dir", out, "--status").stdout
    assert "mnbrl-seed1  interrupted: resumable from step" in status, status
    meta = json.loads((out / "runs" / "mnbrl-seed1" / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["note"].startswith("stopped by SIGTERM; resumable from step")

    rerun = run_slurm("experiment", path, "--output-dir", out, timeout=400)
    assert "mnbrl-seed1" in rerun.stderr.split("submitted")[1].splitlines()[0]
    meta = json.loads((out / "runs" / "mnbrl-seed1" / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["resumed"] and "checkpoint-" in meta["resumed_from"]
    uninterrupted = tmp_path / "uninterrupted"
    bidir("experiment", path, "--output-dir", uninterrupted, "--executor", "local", check=True)
    assert train_log(out / "runs" / "mnbrl-seed1") == train_log(uninterrupted / "runs" / "mnbrl-seed1")
    assert statistics(out) == statistics(uninterrupted)


def test_a_cell_of_two_processes_trains_under_torchrun_and_evaluates_once(tmp_path):
    """torchrun with two gloo processes in one array task: the first logged loss equals one process's with twice
    the per-device batch (the same rows in the same order: gathered negatives make one partition)."""
    gathered = {"loss.gather_across_devices": True}
    path = write_experiment(tmp_path, seeds=1, processes_per_cell=2, executor=SLURM | {"cpus_per_cell": 2},
                            arms={"mnrl": {"loss.name": "mnrl", **gathered}, "mnbrl": {"loss.name": "mnbrl", **gathered}},
                            set={"training.max_steps": 2, "training.logging_steps": 1})  # fmt: skip
    out = tmp_path / "out"
    run_slurm("experiment", path, "--output-dir", out)
    run = out / "runs" / "mnbrl-seed1"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["global_batch"] == 16 and meta["where"]["executor"] == "slurm"
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["test-beir.json"]  # evaluated once, on rank 0
    assert (out / "logs" / "mnbrl-seed1.log").read_text().count("results written to") == 1
    assert "2 processes per cell (torchrun), global batch 16" in (out / "report.md").read_text()

    one = tmp_path / "one"
    bidir("train", tmp_path / "config.yaml", "--output-dir", one, "--set", 'loss.name="mnbrl"', "--set",
          "training.seed=1", "--set", "training.per_device_train_batch_size=16", "--set", "training.max_steps=2",
          "--set", "training.logging_steps=1", check=True)  # fmt: skip
    first, reference = train_log(run)[0], train_log(one)[0]
    assert first["step"] == reference["step"] == 1
    assert first["loss"] == pytest.approx(reference["loss"], rel=1e-5, abs=1e-6)


def test_cancel_scancels_the_jobs_holding_cells_and_leaves_them_to_resume(tmp_path):
    path = write_experiment(tmp_path, seeds=1, executor=SLURM,
                            set={"training.max_steps": 400, "training.save_steps": 10})  # fmt: skip
    out = tmp_path / "out"
    run_slurm("experiment", path, "--output-dir", out, "--detach")
    deadline = time.time() + 180
    while "running:" not in (status := run_slurm("experiment", path, "--output-dir", out, "--status").stdout):
        assert time.time() < deadline, status
        time.sleep(0.5)
    jobs = sorted(json.loads(lock.read_text())["job_id"] for lock in (out / "runs").glob("*.lock"))
    cancelled = run_slurm("experiment", path, "--output-dir", out, "--cancel")
    assert cancelled.stdout.strip() == f"cancelled {', '.join(jobs)}"
    while any(subprocess.run(["squeue", "-h", "-j", j], capture_output=True, text=True).stdout.strip() for j in jobs):
        assert time.time() < deadline + 60
        time.sleep(0.5)
    time.sleep(1)
    status = run_slurm("experiment", path, "--output-dir", out, "--status").stdout
    assert "running:" not in status and "queued:" not in status and "0 of 2 cells complete" in status
    again = run_slurm("experiment", path, "--output-dir", out, "--cancel")
    assert again.stdout.strip() == "no job holds a cell of this experiment"
