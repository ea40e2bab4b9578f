"""scripts/check_reproduction.py: equal results pass, any changed score fails, timings do not count."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_experiments(folder: Path) -> Path:
    run = folder / "static-b32-mnrl-s1"
    (run / "eval").mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps({"status": "completed", "wall_time_s": 12.5}))
    log = [{"step": s, "loss": 1.0 / s, "examples_per_second": 100.0 + s} for s in (1, 2)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in log))
    evaluation = {
        "format": "bidir.eval/1",
        "created": "2026-01-01T00:00:00+00:00",
        "datasets": {
            "cisi": {
                "metrics": {"ndcg@10": 0.5},
                "query_ids": ["1", "2"],
                "per_query": {"ndcg@10": [0.25, 0.75]},
                "counts": {"queries": 2},
                "time_s": 1.0,
            }
        },
    }
    (run / "eval" / "suite.json").write_text(json.dumps(evaluation))
    (folder / "compare-static-b32.json").write_text(json.dumps({"rows": [{"name": "cisi", "p": 0.5}]}))
    return run


def check(a: Path, b: Path) -> subprocess.CompletedProcess:
    script = ROOT / "scripts" / "check_reproduction.py"
    return subprocess.run([sys.executable, str(script), str(a), str(b)], capture_output=True, text=True)


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_identical_results_pass_whatever_the_timings(tmp_path):
    make_experiments(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    run = tmp_path / "b" / "static-b32-mnrl-s1"
    edit(run / "meta.json", lambda m: m.update(wall_time_s=99.0))
    edit(run / "eval" / "suite.json", lambda e: e["datasets"]["cisi"].update(time_s=7.0))
    log = [{"step": s, "loss": 1.0 / s, "examples_per_second": 5.0} for s in (1, 2)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in log))
    result = check(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 0, result.stdout
    assert "compared: 1 runs, 1 evaluation files, 2 per-query values, 1 compare tables" in result.stdout


def test_any_changed_score_loss_or_p_value_fails_and_is_named(tmp_path):
    make_experiments(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    run = tmp_path / "b" / "static-b32-mnrl-s1"
    edit(
        run / "eval" / "suite.json",
        lambda e: e["datasets"]["cisi"]["per_query"]["ndcg@10"].__setitem__(1, 0.75 + 1e-12),
    )
    (run / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.5, "examples_per_second": 101.0}) + "\n")
    edit(tmp_path / "b" / "compare-static-b32.json", lambda c: c["rows"][0].update(p=0.49))
    result = check(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 1
    lines = [x for x in result.stdout.splitlines() if x.startswith("DIFFERENT")]
    assert lines == [
        "DIFFERENT static-b32-mnrl-s1/train_log.jsonl: 2 against 1 entries",
        "DIFFERENT static-b32-mnrl-s1/eval/suite.json.cisi.per_query.ndcg@10[1]: 0.75 against 0.750000000001",
        "DIFFERENT compare-static-b32.json[0].p: 0.5 against 0.49",
    ]


def test_folders_with_nothing_in_common_fail(tmp_path):
    make_experiments(tmp_path / "a")
    (tmp_path / "b").mkdir()
    result = check(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 1 and "nothing to compare" in result.stdout
