"""The files bidir writes, through their one typed owner each, checked against the raw JSON: what the owner writes
is what a reader of the raw file finds (the golden checks), files written before a key existed are read as they
are and written back without it, and a round trip changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ROOT

from bidir_cli.data.mining_record import read_sidecar, sidecar_path, write_sidecar
from bidir_cli.experiment.records import ConfirmationRecord, PlanRecord, RebuiltRecord, Summary
from bidir_cli.runs.meta import LEGACY_RUN_FORMAT, RUN_FORMAT, RunMeta
from bidir_cli.runs.results import DatasetResult, EvalResult
from bidir_cli.runs.rundir import RunDir
from bidir_cli.runs.settings import EvalSettings
from bidir_cli.runs.train_log import TrainLog

COMMITTED = ROOT / "docs" / "experiments"


def test_meta_json_raw_keys_and_an_old_file_read_as_it_is(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_meta(RunMeta(status="completed", name="r", seed=3, versions={"torch": "2.13.0"}, extra={"mine": 1}))
    raw = json.loads(run.meta.read_text())
    assert raw["format"] == RUN_FORMAT and raw["status"] == "completed" and raw["seed"] == 3
    assert raw["versions"] == {"torch": "2.13.0"} and raw["mine"] == 1  # an unknown key kept, at the top level
    assert list(raw)[0] == "format"
    # A file from before the format field: version 0, its keys kept.
    (run.meta).write_text(json.dumps({"status": "completed", "name": "old", "seed": 1}))
    old = run.read_meta()
    assert old.format == LEGACY_RUN_FORMAT and old.name == "old" and not run.written_by_bidir()


def test_results_file_raw_layout_and_round_trip(tmp_path):
    dataset = DatasetResult(name="d", hash="h", source="s", counts={"queries": 2}, metrics={"ndcg@10": 0.5},
                            query_ids=["q1", "q2"], per_query={"ndcg@10": [0.0, 1.0]}, created="2026-12-06")  # fmt: skip
    result = EvalResult(suite={"name": "suite"}, model={"fingerprint": "f"}, settings={"truncate_dim": 64},
                        versions={}, created="2026-12-06", datasets={"d": dataset})  # fmt: skip
    path = tmp_path / "r.json"
    result.save(path)
    raw = json.loads(path.read_text())
    assert raw["format"] == "bidir.eval/2" and raw["mean"] == {"ndcg@10": 0.5}
    assert raw["datasets"]["d"]["per_query"] == {"ndcg@10": [0.0, 1.0]} and raw["settings"] == {"truncate_dim": 64}
    assert EvalResult.load(path) == result
    assert result.stem == EvalSettings(truncate_dim=64).stem("suite") == "suite--dim64"


def test_train_log_lines_timings_and_truncation(tmp_path):
    log = TrainLog(tmp_path / "train_log.jsonl")
    log.start()
    for step in (2, 4, 6):
        log.append({"step": step, "loss": 1.0 / step, "examples_per_second": 9.0, "train_runtime": 1.0})
    raw = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [x["step"] for x in raw] == [2, 4, 6] and log.lines() == raw
    assert log.comparable() == [{"step": s, "loss": 1.0 / s} for s in (2, 4, 6)]
    log.truncate(4)
    assert [json.loads(x)["step"] for x in log.path.read_text().splitlines()] == [2, 4]


@pytest.mark.parametrize("name", ["static", "static-negatives", "transformer"])
def test_committed_experiment_records_round_trip_unchanged(name):
    """plan.json, confirmation.json and summary.json as committed (version-1 plans without a version key
    included): read through their owners and written back, the same JSON."""
    folder = COMMITTED / name
    for owner, file in (
        (PlanRecord, "plan.json"),
        (ConfirmationRecord, "confirmation.json"),
        (Summary, "summary.json"),
    ):
        raw = json.loads((folder / file).read_text())
        record = owner.load(folder / file)
        assert record.to_dict() == raw and list(record.to_dict()) == list(raw), file
    plan = PlanRecord.load(folder / "plan.json")
    assert plan.hash_version == json.loads((folder / "plan.json").read_text()).get("plan_hash_version", 1)


def test_records_written_by_their_owners_hold_the_raw_keys(tmp_path):
    PlanRecord(plan_hash="abc", plan_hash_version=2, first_report="t", commit="c").save(tmp_path / "plan.json")
    assert json.loads((tmp_path / "plan.json").read_text()) == {
        "plan_hash": "abc", "plan_hash_version": 2, "first_report": "t", "commit": "c"
    }  # fmt: skip
    record = RebuiltRecord(time="t", why="w", command="bidir train x", threads=1, machine={"platform": "p"},
                           fingerprint={"rebuilt": "f"}, train_log_largest_relative_difference=1e-7, rtol=1e-5,
                           results=[])  # fmt: skip
    record.save(tmp_path / "rebuilt.json")
    raw = json.loads((tmp_path / "rebuilt.json").read_text())
    assert list(raw)[0] == "format" and raw["format"] == "bidir.rebuilt/1" and raw["rtol"] == 1e-5
    assert RebuiltRecord.load(tmp_path / "rebuilt.json") == record


def test_mining_record_is_written_and_read_by_its_owner(tmp_path):
    data = tmp_path / "mined.jsonl"
    data.write_text('{"anchor": "a", "positive": "b", "negative_1": "c"}\n')
    import hashlib

    write_sidecar(data, {"kind": "bidir mine", "output": {"sha256": hashlib.sha256(data.read_bytes()).hexdigest()}})
    raw = json.loads(sidecar_path(data).read_text())
    assert raw["kind"] == "bidir mine" and sidecar_path(data).name == "mined.jsonl.mined.json"
    assert read_sidecar(data)["verified"] is True
    data.write_text(data.read_text() + '{"anchor": "x", "positive": "y", "negative_1": "z"}\n')
    assert read_sidecar(data)["verified"] is False  # the file changed since it was mined


def test_every_committed_meta_json_reads_and_writes_back_unchanged():
    metas = sorted(COMMITTED.glob("*/runs/*/meta.json"))
    assert len(metas) > 40
    for path in metas:
        raw = json.loads(path.read_text())
        meta = RunDir(Path(path).parent).read_meta()
        assert meta.to_dict() == raw, path
