"""``bidir compare`` end to end, on results files and run directories written by the tests (no model)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bidir_cli.cli import app
from bidir_cli.compare.command import compare_command
from bidir_cli.compare.comparison import MEAN
from bidir_cli.errors import InputError
from bidir_cli.runs.results import DatasetResult, EvalResult

ROOT = Path(__file__).resolve().parents[1]
METRIC = "ndcg@10"


def write_results(
    path: Path,
    scores: dict[str, list[float]],
    ids: dict[str, list[str]] | None = None,
    hashes: dict[str, str] | None = None,
) -> Path:
    """A results file as ``bidir eval`` writes it: per dataset, query ids and their nDCG@10 (ids q0, q1, ... by default)."""
    ids, hashes = ids or {}, hashes or {}
    datasets = {
        name: DatasetResult(
            name=name,
            hash=hashes.get(name, f"hash-of-{name}"),
            source=f"data/{name}",
            counts={"queries": len(values)},
            metrics={METRIC: float(np.mean(values))},
            query_ids=ids.get(name, [f"q{i}" for i in range(len(values))]),
            per_query={METRIC: [float(v) for v in values]},
        )
        for name, values in scores.items()
    }
    result = EvalResult(suite={"name": path.stem}, model={}, settings={}, versions={}, created="", datasets=datasets)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return path


def write_run(run: Path, scores: dict[str, list[float]], meta: dict | None = None, suite: str = "nanobeir") -> Path:
    """A run directory: eval/<suite>.json and, when given, meta.json."""
    write_results(run / "eval" / f"{suite}.json", scores)
    if meta is not None:
        (run / "meta.json").write_text(json.dumps(meta))
    return run


def compare_json(capsys, inputs: list[Path], groups: list[str] = (), **options) -> dict:
    """Run compare_command with --format json and return the parsed output."""
    settings = dict(baseline=None, metric=METRIC, plot=None, suite=None, permutations=10_000, seed=0) | options
    compare_command([str(p) for p in inputs], groups=list(groups), fmt="json", **settings)
    return json.loads(capsys.readouterr().out)


def row(output: dict, name: str) -> dict:
    return next(r for r in output["rows"] if r["name"] == name)


def cli(*args: str):
    return CliRunner().invoke(app, ["compare", *args])


def test_values_and_differences_match_a_hand_computation(tmp_path, capsys):
    a = write_results(tmp_path / "a.json", {"X": [0.5, 0.6, 0.2, 0.9], "Y": [0.1, 0.3]})
    b = write_results(tmp_path / "b.json", {"X": [0.6, 0.8, 0.5, 1.0], "Y": [0.1, 0.35]})
    out = compare_json(capsys, [a, b])
    assert out["baseline"] == "a" and out["datasets"] == ["X", "Y"]
    x, y, mean = row(out, "X"), row(out, "Y"), row(out, MEAN)
    assert x["cells"]["a"]["value"] == pytest.approx(0.55) and x["cells"]["b"]["value"] == pytest.approx(0.725)
    assert mean["cells"]["a"]["value"] == pytest.approx((0.55 + 0.2) / 2)
    assert x["differences"]["b"]["diff"] == pytest.approx(0.175)
    assert mean["differences"]["b"]["diff"] == pytest.approx((0.175 + 0.025) / 2)
    assert (x["queries"], y["queries"], mean["queries"]) == (4, 2, 6)
    # X's differences 0.1, 0.2, 0.3, 0.1 are all positive: of the 16 sign flips only "all +" and "all -"
    # reach |sum| = 0.7, so the exact two-sided p-value is 2/16.
    assert x["differences"]["b"]["p"] == pytest.approx(2 / 16) and x["differences"]["b"]["p_exact"]
    # Y's differences are 0 and 0.05: flipping the zero changes nothing, flipping 0.05 mirrors it, so p = 1.
    assert y["differences"]["b"]["p"] == 1.0
    assert "a" not in x["differences"]  # the baseline is not compared with itself


def test_large_effect_is_significant_and_identical_scores_are_not(tmp_path, capsys):
    rng = np.random.default_rng(0)
    base = {name: rng.uniform(0, 0.7, size=50) for name in ("X", "Y", "Z")}
    a = write_results(tmp_path / "a.json", base)
    better = write_results(tmp_path / "better.json", {n: s + rng.uniform(0.1, 0.3, size=50) for n, s in base.items()})
    same = write_results(tmp_path / "same.json", base)
    out = compare_json(capsys, [a, better, same])
    for name in ("X", "Y", "Z"):
        d = row(out, name)["differences"]
        # Every query improves: no random flip reaches the observed sum, the smallest Monte Carlo p-value.
        assert d["better"]["p"] == pytest.approx(1 / 10_001)
        assert d["better"]["significant"] and d["better"]["holm_significant"]
        assert d["better"]["ci_low"] > 0.1 and d["better"]["ci_high"] < 0.3
        assert d["same"]["p"] == 1.0 and d["same"]["p_exact"]
        assert not d["same"]["significant"] and not d["same"]["holm_significant"]
        assert (d["same"]["ci_low"], d["same"]["ci_high"]) == (0.0, 0.0)
    assert row(out, MEAN)["differences"]["better"]["significant"]
    assert row(out, MEAN)["differences"]["same"]["p"] == 1.0
    assert row(out, MEAN)["differences"]["better"]["p_holm"] is None  # the mean row is not in Holm's family


def test_holm_marks_match_a_hand_computation(tmp_path, capsys):
    rng = np.random.default_rng(1)
    base = {n: rng.uniform(0, 0.5, size=k) for n, k in (("strong1", 50), ("strong2", 50), ("six", 6), ("null", 30))}
    gain = {
        "strong1": rng.uniform(0.1, 0.2, 50),
        "strong2": rng.uniform(0.1, 0.2, 50),
        "six": rng.uniform(0.05, 0.1, 6),
    }
    a = write_results(tmp_path / "a.json", base)
    b = write_results(tmp_path / "b.json", {n: s + gain.get(n, 0.0) for n, s in base.items()})
    out = compare_json(capsys, [a, b])
    d = {name: row(out, name)["differences"]["b"] for name in base}
    # p-values: strong ones 1/10001 (all queries gain), six 2/64 (six positive differences, exact), null 1.
    # Holm, m = 4, sorted: 1/10001 <= 0.05/4, 1/10001 <= 0.05/3, then 2/64 = 0.03125 > 0.05/2 stops.
    assert [d[n]["p"] for n in base] == pytest.approx([1 / 10_001, 1 / 10_001, 2 / 64, 1.0])
    assert [d[n]["significant"] for n in base] == [True, True, True, False]
    assert [d[n]["holm_significant"] for n in base] == [True, True, False, False]
    assert d["six"]["p_holm"] == pytest.approx(2 * 2 / 64)


def test_queries_are_paired_by_id_not_by_position(tmp_path, capsys):
    rng = np.random.default_rng(2)
    base, system = rng.uniform(size=20), rng.uniform(size=20)
    ids = [f"q{i}" for i in range(20)]
    a = write_results(tmp_path / "a.json", {"X": base})
    b = write_results(tmp_path / "b.json", {"X": system})
    shuffled = write_results(tmp_path / "b" / "b.json", {"X": system[::-1]}, ids={"X": ids[::-1]})
    in_order = row(compare_json(capsys, [a, b]), "X")["differences"]["b"]
    reordered = row(compare_json(capsys, [a, shuffled]), "X")["differences"]["b"]
    assert reordered == in_order
    assert in_order["diff"] == pytest.approx(float(np.mean(system - base)))


def test_different_query_ids_are_refused(tmp_path, capsys):
    a = write_results(tmp_path / "a.json", {"X": [0.1, 0.2, 0.3]})
    b = write_results(tmp_path / "b.json", {"X": [0.1, 0.2, 0.3]}, ids={"X": ["q0", "q1", "q7"]})
    with pytest.raises(InputError, match=r"dataset X: query ids differ from .*a\.json \(1 missing, e\.g\. \['q2'\]"):
        compare_json(capsys, [a, b])


def test_hash_mismatch_exits_2_with_one_line_naming_both_files(tmp_path):
    a = write_results(tmp_path / "a.json", {"X": [0.1, 0.2], "Y": [0.3, 0.4]})
    b = write_results(tmp_path / "b.json", {"X": [0.1, 0.2], "Y": [0.3, 0.4]}, hashes={"Y": "other"})
    result = cli(str(a), str(b))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("bidir: error: dataset Y differs between ")
    assert f"{a} (hash hash-of-Y)" in result.stderr and f"{b} (hash other)" in result.stderr


def test_truncated_results_file_exits_2_with_one_line(tmp_path):
    a = write_results(tmp_path / "a.json", {"X": [0.1, 0.2]})
    b = write_results(tmp_path / "b.json", {"X": [0.1, 0.2]})
    b.write_text(b.read_text()[:100])  # a file cut short, as a crash without atomic writes would leave it
    result = cli(str(a), str(b))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"bidir: error: {b}: not valid JSON")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{a}", "{a}"], "two columns are named 'a'"),
        (["{a}", "{b}", "--baseline", "c"], "--baseline 'c': no such column (columns: a, b)"),
        (["{a}", "--group", "g={tmp}/nothing*"], "--group g: "),
        (["{a}", "--group", "no-equals-sign"], "expected NAME=GLOB"),
        (["{a}", "{b}", "--metric", "mrr@10"], "has no per-query 'mrr@10' scores (available: ndcg@10)"),
        (["{a}", "{b}", "--format", "html"], "--format: unknown format 'html'"),
        (["{a}", "{b}", "--plot", "{tmp}/plot.svg"], "--plot: "),
        (["{tmp}/missing"], "no such run directory or results file"),
        ([], "nothing to compare"),
    ],
)
def test_bad_invocations_exit_2_with_one_line(tmp_path, args, message):
    a = write_results(tmp_path / "a.json", {"X": [0.1, 0.2]})
    b = write_results(tmp_path / "b.json", {"X": [0.3, 0.2]})
    result = cli(*(arg.format(a=a, b=b, tmp=tmp_path) for arg in args))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_a_dataset_named_like_the_mean_row_is_refused(tmp_path, capsys):
    a = write_results(tmp_path / "a.json", {"X": [0.1, 0.2], MEAN: [0.3, 0.4]})
    b = write_results(tmp_path / "b.json", {"X": [0.1, 0.2], MEAN: [0.3, 0.4]})
    with pytest.raises(InputError, match="a dataset is named 'mean', like the table's mean row"):
        compare_json(capsys, [a, b])


def test_datasets_not_in_every_input_are_left_out_and_listed(tmp_path):
    a = write_results(tmp_path / "a.json", {"X": [0.1, 0.2], "Y": [0.5, 0.5]})
    b = write_results(tmp_path / "b.json", {"Z": [0.3], "X": [0.3, 0.2]})
    result = cli(str(a), str(b), "--format", "json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["datasets"] == ["X"]
    assert out["left_out"] == {"Y": [str(b)], "Z": [str(a)]}
    assert f"left out 2 dataset(s) not in every input: Y (not in {b}); Z (not in {a})" in result.stderr


def test_run_directories_and_their_eval_files(tmp_path, capsys):
    scores = {"X": [0.1, 0.2]}
    one = write_run(tmp_path / "runs" / "one", scores)
    two = write_run(tmp_path / "runs" / "two", scores)
    write_results(two / "eval" / "beir.json", scores)
    with pytest.raises(InputError, match=r"two: several results files .*eval/beir.json .*eval/nanobeir.json.*--suite"):
        compare_json(capsys, [one, two])
    with pytest.raises(InputError, match=r"one: no results file for suite beir.*\(it has: eval/nanobeir.json"):
        compare_json(capsys, [one, two], suite="beir")
    out = compare_json(capsys, [one, two], suite="nanobeir")
    assert [c["name"] for c in out["columns"]] == ["one", "two"]
    assert out["columns"][1]["runs"] == [str(two / "eval" / "nanobeir.json")]
    # A results file inside a run is named after the run.
    write_run(tmp_path / "runs" / "three", scores, meta={"status": "completed"})
    out = compare_json(capsys, [one, tmp_path / "runs" / "three" / "eval" / "nanobeir.json"])
    assert [c["name"] for c in out["columns"]] == ["one", "three"]


def test_seed_groups_aggregate_by_hand(tmp_path, capsys):
    base_x, base_y = [0.2, 0.4, 0.6, 0.8], [0.5, 0.5, 0.1]
    # Group "b": three seeds; group "a": two. Per-query offsets are chosen so the seed averages are easy.
    for seed, (dx, dy) in enumerate([(0.10, 0.0), (0.20, 0.1), (0.30, -0.1)]):
        write_run(
            tmp_path / "runs" / f"b-seed{seed}",
            {"X": [v + dx + 0.01 * i for i, v in enumerate(base_x)], "Y": [v + dy for v in base_y]},
        )
    for seed, d in enumerate([0.0, 0.02]):
        write_run(tmp_path / "runs" / f"a-seed{seed}", {"X": [v + d for v in base_x], "Y": [v + d for v in base_y]})
    out = compare_json(capsys, [], groups=[f"a={tmp_path}/runs/a-seed*", f"b={tmp_path}/runs/b-seed*"])
    x, y, mean = row(out, "X"), row(out, "Y"), row(out, MEAN)

    # Each seed's dataset means, by hand.
    b_x = [statistics.mean(base_x) + d + 0.015 for d in (0.10, 0.20, 0.30)]
    b_y = [statistics.mean(base_y) + d for d in (0.0, 0.1, -0.1)]
    a_x = [statistics.mean(base_x) + d for d in (0.0, 0.02)]
    assert x["cells"]["b"]["seeds"] == pytest.approx(b_x)
    assert x["cells"]["b"]["value"] == pytest.approx(statistics.mean(b_x))
    assert x["cells"]["b"]["std"] == pytest.approx(statistics.stdev(b_x))
    assert x["cells"]["a"]["std"] == pytest.approx(statistics.stdev(a_x))
    assert y["cells"]["b"]["std"] == pytest.approx(statistics.stdev(b_y))
    # The mean row's spread is over each seed's mean over datasets, not a pooled one.
    assert mean["cells"]["b"]["std"] == pytest.approx(
        statistics.stdev([(bx + by) / 2 for bx, by in zip(b_x, b_y, strict=True)])
    )
    assert x["differences"]["b"]["diff"] == pytest.approx(statistics.mean(b_x) - statistics.mean(a_x))
    # Both columns hold several runs: the run-level t. By hand: Y's runs only shift (every query by the same
    # amount), so its per-query differences are all equal and the statistic is Welch's t on the run means.
    from scipy import stats

    def satterthwaite_df(terms: list[tuple[float, float]]) -> float:
        """Satterthwaite's df: V^2 / sum t^2 / nu, within [min nu, sum nu]."""
        df = sum(t for t, _ in terms) ** 2 / sum(t * t / nu for t, nu in terms)
        return min(max(df, min(nu for _, nu in terms)), sum(nu for _, nu in terms))

    a_y = [statistics.mean(base_y) + d for d in (0.0, 0.02)]
    welch = stats.ttest_ind(b_y, a_y, equal_var=False)
    df = satterthwaite_df([(statistics.variance(b_y) / 3, 2), (statistics.variance(a_y) / 2, 1)])
    assert (y["differences"]["b"]["test"], y["differences"]["b"]["unit"]) == ("run_t", "training run")
    assert y["differences"]["b"]["diff"] / y["differences"]["b"]["se"] == pytest.approx(welch.statistic)
    assert y["differences"]["b"]["df"] == pytest.approx(df)
    assert y["differences"]["b"]["p"] == pytest.approx(2 * stats.t.sf(abs(welch.statistic), df))
    # X's run-averaged differences 0.19, 0.20, 0.21, 0.22 vary by query: Welch's variance plus the interaction
    # (no per-query run noise to subtract: every run shifts its queries alike), with the paired df (3).
    interaction = statistics.variance([0.19, 0.20, 0.21, 0.22]) / 4
    terms = [(statistics.variance(b_x) / 3, 2), (statistics.variance(a_x) / 2, 1), (interaction, 3)]
    variance = sum(t for t, _ in terms)
    df = satterthwaite_df(terms)
    t = x["differences"]["b"]["diff"] / math.sqrt(variance)
    assert x["differences"]["b"]["se"] == pytest.approx(math.sqrt(variance))
    assert x["differences"]["b"]["df"] == pytest.approx(df)
    assert x["differences"]["b"]["p"] == pytest.approx(2 * stats.t.sf(abs(t), df))
    half = stats.t.ppf(0.975, df) * math.sqrt(variance)
    assert x["differences"]["b"]["ci_high"] - x["differences"]["b"]["ci_low"] == pytest.approx(2 * half)
    assert x["differences"]["b"]["variance_components"]["interaction"] == pytest.approx(interaction)


def test_a_column_that_records_no_setting_does_not_make_it_a_difference(tmp_path):
    scores = {"X": [0.1, 0.2]}
    trained = {"status": "completed", "seed": 1, "loss": {"name": "mnrl", "scale": 20.0}}
    base = write_run(tmp_path / "base", scores, {"status": "completed", "seed": 1})  # an untrained model: no loss
    a = write_run(tmp_path / "a", scores, trained)
    b = write_run(tmp_path / "b", scores, {**trained, "loss": {"name": "mnbrl", "scale": 20.0}})
    rows = {r["name"]: r for r in json.loads(cli(str(base), str(a), str(b), "--format", "json").stdout)["meta_rows"]}
    assert "loss.name" in rows and rows["loss.name"]["values"]["base"] == [None]
    assert "loss.scale" not in rows and "seed" not in rows  # the same wherever recorded


def test_meta_rows_show_measurements_and_the_settings_that_differ(tmp_path):
    def meta(loss_name, data_hash, seed, wall):
        loss = {"name": loss_name, "scale": 20.0}
        return {
            "status": "completed",
            "seed": seed,
            "wall_time_s": wall,
            "train": {"examples_per_second": 1000.0, "peak_memory_bytes": 2**30, "steps": 10},
            "loss": loss,
            "data": {"sources": [{"name": "pairs", "hash": data_hash, "rows": 100}]},
            "config": {"seed": seed, "loss": loss, "training": {"learning_rate": 2e-5}},
        }

    scores = {"X": [0.1, 0.2]}
    a = write_run(tmp_path / "a", scores, meta(loss_name="CMNRL", data_hash="h1", seed=0, wall=100.0))
    b = write_run(tmp_path / "b", scores, meta(loss_name="CMNBRL", data_hash="h1", seed=1, wall=200.0))
    c = write_run(
        tmp_path / "c", scores, {**meta(loss_name="CMNBRL", data_hash="h2", seed=1, wall=300.0), "status": "failed"}
    )
    result = cli(str(a), str(b), str(c), "--format", "json")
    rows = {r["name"]: r for r in json.loads(result.stdout)["meta_rows"]}
    # Measurements are shown whenever recorded; settings only where they differ; config.* repeats are dropped.
    assert list(rows) == [
        "training wall time",
        "examples per second",
        "peak memory",
        "seed",
        "loss.name",
        "data.sources[0].hash",
    ]
    assert rows["training wall time"]["values"] == {"a": [100.0], "b": [200.0], "c": [300.0]}
    assert rows["loss.name"]["values"] == {"a": ["CMNRL"], "b": ["CMNBRL"], "c": ["CMNBRL"]}
    assert f"bidir: note: {c / 'eval' / 'nanobeir.json'}: its run's meta.json says status 'failed'" in result.stderr


def test_cli_compare_imports_no_heavy_library(tmp_path):
    """``bidir compare`` reads results files only: no torch, no model code, no plotting unless asked. (How fast
    that makes it is measured by scripts/bench_compare.py, not asserted here.)"""
    rng = np.random.default_rng(0)
    names = [f"Nano{i}" for i in range(13)]
    runs = [write_run(tmp_path / name, {n: rng.uniform(size=50) for n in names}) for name in ("a", "b")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-X", "importtime", "-m", "bidir_cli.cli", "compare", *map(str, runs)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert "Nano12" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "bidir_cli.compare" in imported  # the import log is read correctly
    # scipy.special (the t distributions, 0.4 s) is allowed; scipy.stats and scipy.optimize take a second more.
    heavy = {"torch", "sentence_transformers", "transformers", "datasets", "matplotlib", "pandas"}
    heavy |= {"scipy.stats", "scipy.optimize"}
    assert imported & heavy == set()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, which follows the 8-byte signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("datasets", [1, 13])
def test_plot_option_writes_a_png_of_the_documented_size(tmp_path, datasets):
    """docs/compare.md: a PNG of 1200 x 800 pixels whatever the number of datasets; the message says its size."""
    rng = np.random.default_rng(4)
    names = [f"Dataset{i}" for i in range(datasets)]
    a = write_results(tmp_path / "a.json", {n: rng.uniform(size=5) for n in names})
    b = write_results(tmp_path / "b.json", {n: rng.uniform(size=5) for n in names})
    plot = tmp_path / "figures" / "compare.png"
    result = cli(str(a), str(b), "--plot", str(plot))
    assert result.exit_code == 0, result.stderr
    assert png_size(plot) == (1200, 800)
    assert f"bidir: wrote {plot} (1200x800 px)" in result.stderr


def test_output_is_reproducible_from_the_seed(tmp_path):
    rng = np.random.default_rng(3)
    a = write_results(tmp_path / "a.json", {"X": rng.uniform(size=40)})
    b = write_results(tmp_path / "b.json", {"X": rng.uniform(size=40)})
    runs = [cli(str(a), str(b), "--format", "json", "--seed", seed).stdout for seed in ("1", "1", "2")]
    assert runs[0] == runs[1] != runs[2]
    p = [row(json.loads(out), "X")["differences"]["b"]["p"] for out in runs]
    assert p[0] != p[2]  # a Monte Carlo p-value (2**40 flips cannot be enumerated) depends on the seed


def test_a_stored_aggregate_that_disagrees_with_the_per_query_scores_is_pointed_out(tmp_path):
    a = write_results(tmp_path / "a.json", {"X": [0.2, 0.4]})
    b = write_results(tmp_path / "b.json", {"X": [0.3, 0.5]})
    data = json.loads(b.read_text())
    data["datasets"]["X"]["metrics"][METRIC] = 0.5  # the per-query mean is 0.4
    b.write_text(json.dumps(data))
    result = cli(str(a), str(b), "--format", "csv")
    assert result.exit_code == 0
    assert (
        f"bidir: note: {b}: dataset X: stored ndcg@10 0.500000 differs from the mean of its per-query scores 0.400000"
        in result.stderr
    )
    assert "X,b,2,0.4," in result.stdout  # the table shows the per-query mean


def write_groups(folder: Path, runs: int = 3, datasets: int = 6, shift: float = 0.0, seed: int = 0) -> list[str]:
    """Two groups of runs (``a`` and ``b``, b better by ``shift``) on datasets of 50-300 nDCG-like queries."""
    rng = np.random.default_rng(seed)
    sizes = np.linspace(50, 300, datasets).astype(int)
    difficulty = {f"Nano{k}": rng.uniform(0, 1, size=n) for k, n in enumerate(sizes)}
    for name, gain in (("a", 0.0), ("b", shift)):
        for r in range(runs):
            run_shift = rng.normal(0, 0.01)
            scores = {
                dataset: np.clip(np.round(q + gain + run_shift + rng.normal(0, 0.1, size=q.size), 1), 0, 1)
                for dataset, q in difficulty.items()
            }
            write_run(folder / f"{name}-seed{r}", scores, meta={"status": "completed", "seed": r})
    return [f"a={folder}/a-seed*", f"b={folder}/b-seed*"]


def test_groups_of_three_runs_on_six_datasets_get_the_run_level_test_in_every_format(tmp_path):
    # How fast (under 5 s, issue 15) is measured by scripts/bench_compare.py, not asserted here.
    groups = write_groups(tmp_path, shift=0.05)
    outputs = {}
    for fmt in ("table", "markdown", "csv", "json"):
        result = cli("--format", fmt, *(f"--group={g}" for g in groups))
        assert result.exit_code == 0, result.stderr
        outputs[fmt] = result.stdout
    # Every format shows the test used, the interval, the minimum detectable difference and the runs needed.
    for fmt in ("table", "markdown"):
        assert "run-level t test (unit: the training run; 3 vs 3 runs" in outputs[fmt].replace("\n", " ")
        assert "95% CI" in outputs[fmt] and "MDD" in outputs[fmt] and "runs for 0.01" in outputs[fmt]
    lines = list(csv.DictReader(io.StringIO(outputs["csv"])))
    b_lines = [line for line in lines if line["column"] == "b"]
    assert len(b_lines) == 7 and all(line["test"] == "run_t" and line["unit"] == "training run" for line in b_lines)
    assert all(line["ci_low"] and line["mdd"] and float(line["df"]) > 0 for line in b_lines)
    # Numeric columns hold numbers or nothing; a runs-needed count that cannot be given is empty, with its reason.
    numeric = ("queries", "value", "std", "seeds", "diff", "ci_low", "ci_high", "p", "p_holm", "se", "df", "mdd")
    for line in lines:
        for name in (*numeric, "runs_needed"):
            assert line[name] == "" or float(line[name]) == float(line[name]), (name, line[name])
        assert line["runs_needed"] == "" or int(line["runs_needed"]) >= 2
    assert all(bool(line["runs_needed"]) != bool(line["runs_needed_note"]) for line in b_lines)
    notes = {line["runs_needed_note"] for line in b_lines if line["runs_needed_note"]}
    assert notes <= {"not reachable", ">100"}
    out = json.loads(outputs["json"])
    mean = row(out, MEAN)["differences"]["b"]
    assert mean["test"] == "run_t" and mean["significant"] and mean["ci_low"] > 0
    assert mean["mdd"] > 0 and mean["se"] > 0 and mean["variance_components"]["runs"] == [3, 3]
    assert mean["runs_needed_text"] in {str(mean["runs_needed"]), ">100", "not reachable"}


def test_marks_and_intervals_agree_in_every_row_and_column(tmp_path, capsys):
    groups = write_groups(tmp_path, runs=2, shift=0.02, seed=1)
    single = tmp_path / "a-seed0"  # one run of a, against the group a: it gets the sign-flip test
    out = compare_json(capsys, [single], groups=groups, baseline="a")
    tests = set()
    for r in out["rows"]:
        for d in r["differences"].values():
            assert d["significant"] == (d["p"] <= 0.05) == (not d["ci_low"] <= 0 <= d["ci_high"])
            tests.add(d["test"])
    assert tests == {"sign_flip", "run_t"}
    assert row(out, MEAN)["differences"]["a-seed0"]["test"] == "sign_flip"
    assert row(out, MEAN)["differences"]["a-seed0"]["runs_needed_text"] == "unknown"
    assert row(out, MEAN)["differences"]["b"]["test"] == "run_t"


def test_two_columns_holding_the_same_runs_are_warned_about(tmp_path):
    groups = write_groups(tmp_path, shift=0.0, seed=3)
    runs = groups[0].split("=", 1)[1]
    same = cli(f"--group=one={runs}", f"--group=two={runs}")
    assert same.exit_code == 0
    assert "bidir: warning: columns one and two hold the same runs" in same.stderr
    assert "warning" not in cli(f"--group={groups[0]}", f"--group={groups[1]}").stderr


def test_target_diff_sets_the_runs_needed_and_must_be_positive(tmp_path, capsys):
    groups = write_groups(tmp_path, shift=0.0, seed=2)
    needed = {}
    for target in (0.01, 0.05):
        d = row(compare_json(capsys, [], groups=groups, target_diff=target), MEAN)["differences"]["b"]
        needed[target] = d["runs_needed"] or 10**6
    assert needed[0.05] <= needed[0.01] and needed[0.05] >= 2
    result = cli(f"--group={groups[0]}", f"--group={groups[1]}", "--target-diff", "0")
    assert result.exit_code == 2 and "--target-diff" in result.stderr
