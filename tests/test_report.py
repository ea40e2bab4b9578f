"""bidir_cli.report: each renderer on a comparison built by hand, so every expected string is known."""

from __future__ import annotations

import csv
import io
import json
import re
import struct
from pathlib import Path

import pytest
from rich.console import Console

from bidir_cli.compare.comparison import MEAN, Aggregate, Column, Comparison, Difference, MetaRow, Source
from bidir_cli.compare.render import render_csv, render_json, render_markdown, render_table, save_plot
from bidir_cli.runs.results import EvalResult


def source(name: str) -> Source:
    empty = EvalResult(suite={}, model={}, settings={}, versions={}, created="", datasets={})
    return Source(name=name, path=Path(f"runs/{name}/eval/nanobeir.json"), result=empty, meta=None)


def hand_comparison(with_others: bool = True) -> Comparison:
    """The proposal's NanoFEVER and NanoNQ rows, with a three-seed group "gte" against a single run "base"."""
    columns = [Column("base", [source("base")])]
    cells = {
        "NanoFEVER": {"base": Aggregate(0.8029, None, [0.8029])},
        "NanoNQ": {"base": Aggregate(0.6336, None, [0.6336])},
        MEAN: {"base": Aggregate(0.71825, None, [0.71825])},
    }
    differences = {row: {} for row in cells}
    meta_rows = []
    if with_others:
        columns.append(Column("gte", [source(f"gte-seed{i}") for i in range(3)], group=True))
        cells["NanoFEVER"]["gte"] = Aggregate(0.7971, 0.0012, [0.7960, 0.7971, 0.7982])
        cells["NanoNQ"]["gte"] = Aggregate(0.6400, 0.0031, [0.6369, 0.6400, 0.6431])
        cells[MEAN]["gte"] = Aggregate(0.71855, 0.0020, [0.71645, 0.71855, 0.72065])
        # One run on the baseline's side: the paired sign-flip test, whose runs needed are unknown.
        flip = {"test": "sign_flip", "df": None, "exact": False, "runs_needed": None, "runs_needed_text": "unknown"}
        differences["NanoFEVER"]["gte"] = Difference(
            -0.0058, (-0.02, 0.009), 0.41, False, se=0.007, mdd=0.0196, p_holm=0.82, holm_significant=False, **flip
        )
        differences["NanoNQ"]["gte"] = Difference(
            0.0064, (0.001, 0.012), 0.012, True, se=0.0028, mdd=0.00786, p_holm=0.024, holm_significant=True, **flip
        )
        differences[MEAN]["gte"] = Difference(0.0003, (-0.005, 0.006), 0.9, False, se=0.0028, mdd=0.0079, **flip)
        meta_rows = [
            MetaRow("training wall time", "duration", {"base": [5400.0], "gte": [5300.0, 5500.0, 5600.0]}),
            MetaRow("peak memory", "bytes", {"base": [1.5 * 2**30], "gte": [None, None, None]}),
            MetaRow("seed", "setting", {"base": [0], "gte": [0, 1, 2]}),
            MetaRow("loss.note", "setting", {"base": ["a|b"], "gte": ["*x*", "*x*", None]}),
        ]
    return Comparison(
        metric="ndcg@10",
        baseline="base",
        columns=columns,
        datasets=["NanoFEVER", "NanoNQ"],
        queries={"NanoFEVER": 50, "NanoNQ": 50, MEAN: 100},
        cells=cells,
        differences=differences,
        meta_rows=meta_rows,
        left_out={},
        permutations=10_000,
        seed=0,
    )


def markdown_table(text: str) -> list[list[str]]:
    """The cells of the one table in a markdown text, split on pipes that are not escaped; escapes kept."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in lines)
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_markdown_is_one_table_with_bold_best_values_marks_and_a_legend():
    text = render_markdown(hand_comparison())
    table = markdown_table(text)
    header, separator, body = table[0], table[1], table[2:]
    assert header == ["dataset", "queries", "base", "gte", "Δ gte", "95% CI", "p", "MDD", "runs for 0.01"]
    assert all(re.fullmatch(r":?-{3,}:?", cell) for cell in separator)
    assert all(len(row) == len(header) for row in table)  # the "|" in a setting was escaped
    assert [row[0] for row in body] == [
        "NanoFEVER",
        "NanoNQ",
        "mean",
        "training wall time",
        "peak memory",
        "seed",
        "loss.note",
    ]
    fever, nq, mean = body[0], body[1], body[2]
    # The best value of each row is bold, and only it.
    assert fever[2:4] == ["**0.8029**", "0.7971 ± 0.0012"]
    assert nq[2:4] == ["0.6336", "**0.6400 ± 0.0031**"]
    assert mean[2:4] == ["0.7183", "**0.7186 ± 0.0020**"]
    # Differences: significant and surviving Holm (NQ), neither (FEVER); the mean row has no Holm mark.
    assert nq[4:] == ["+0.0064 \\*†", "[+0.0010, +0.0120]", "0.012", "0.0079", "unknown"]
    assert fever[4:] == ["-0.0058", "[-0.0200, +0.0090]", "0.41", "0.0196", "unknown"]
    assert mean[4:] == ["+0.0003", "[-0.0050, +0.0060]", "0.9", "0.0079", "unknown"]
    # Meta rows: measurements in one unit with their spread over seeds, settings as distinct values, escaped.
    assert body[3][2:4] == ["1.50 h", "1.52 ± 0.04 h"]
    assert body[4][2:4] == ["1.50 GiB", "–"]
    assert body[5][2:4] == ["0", "0, 1, 2"]
    assert body[6][2:4] == ["a\\|b", "\\*x\\*, –"]
    assert all(cell == "" for row in body[3:] for cell in row[4:])
    legend = text.split("\n\n", 1)[1].splitlines()
    assert legend[-1] == "- \\* p ≤ 0.05; † also significant after Holm's correction across the 2 datasets."
    assert "Groups (gte: 3 runs) show the mean ± standard deviation over their runs." in legend[1]
    # The test each column got, its unit and what it covers; one notion of significance; the power line.
    assert legend[2] == (
        "- Δ gte: gte minus base, paired sign-flip test (unit: the query; 10,000 random sign flips, or all of them "
        "when there are fewer); it covers query sampling only (one run on a side: run-to-run variation unknown)."
    )
    assert "it excludes 0 exactly when p ≤ 0.05" in legend[3]
    assert legend[4].startswith("- MDD: the smallest true difference detected with 80% power")
    assert "runs per side for 80% power at a difference of 0.01" in legend[4]
    assert "bootstrap" not in text and "holds zero" not in text


def test_legend_names_the_run_level_test_when_both_columns_hold_runs():
    c = hand_comparison()
    c.columns[0] = Column("base", [source("base-seed0"), source("base-seed1")], group=True)
    for row in c.rows:
        d = c.differences[row]["gte"]
        d.test, d.df, d.runs_needed, d.runs_needed_text = "run_t", 3.2, 7, "7"
    text = render_markdown(c)
    assert (
        "- Δ gte: gte minus base, run-level t test (unit: the training run; 3 vs 2 runs, "
        "Satterthwaite degrees of freedom); it covers run-to-run variation and query sampling.\n"
    ) in text
    assert markdown_table(text)[3][-1] == "7"


def test_markdown_of_a_single_column_has_no_difference_columns():
    table = markdown_table(render_markdown(hand_comparison(with_others=False)))
    assert table[0] == ["dataset", "queries", "base"]
    assert [row[2] for row in table[2:]] == ["**0.8029**", "**0.6336**", "**0.7183**"]


def test_rich_table_bolds_the_best_values_and_cuts_no_digit_in_a_narrow_console():
    out = io.StringIO()
    render_table(hand_comparison(), Console(file=out, width=40, force_terminal=True, color_system="standard"))
    text = out.getvalue()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for expected in ("NanoFEVER", "0.7971 ± 0.0012", "+0.0064 *†", "[+0.0010, +0.0120]", "1.52 ± 0.04 h", "a|b"):
        assert expected in plain
    bold = re.findall(r"\x1b\[1m\s*([^\x1b]*?)\s*\x1b\[0m", text)
    assert "0.8029" in bold and "0.6400 ± 0.0031" in bold and "0.7186 ± 0.0020" in bold
    assert "0.7971 ± 0.0012" not in bold and "0.6336" not in bold


def test_csv_has_one_line_per_row_and_column_at_full_precision():
    lines = list(csv.DictReader(io.StringIO(render_csv(hand_comparison()))))
    assert [(line["row"], line["column"]) for line in lines] == [
        (row, col) for row in ("NanoFEVER", "NanoNQ", MEAN) for col in ("base", "gte")
    ]
    nq_gte = lines[3]
    assert float(nq_gte["value"]) == 0.6400 and float(nq_gte["std"]) == 0.0031 and nq_gte["seeds"] == "3"
    assert (float(nq_gte["diff"]), float(nq_gte["ci_low"]), float(nq_gte["ci_high"])) == (0.0064, 0.001, 0.012)
    assert (float(nq_gte["p"]), float(nq_gte["p_holm"])) == (0.012, 0.024)
    assert (nq_gte["significant"], nq_gte["holm_significant"], nq_gte["p_exact"]) == ("True", "True", "False")
    # runs_needed is a number or nothing (a numeric column); why there is none is its own column
    assert (nq_gte["test"], nq_gte["unit"], nq_gte["df"], nq_gte["runs_needed"], nq_gte["runs_needed_note"]) == (
        "sign_flip",
        "query",
        "",
        "",
        "unknown",
    )
    assert (float(nq_gte["se"]), float(nq_gte["mdd"])) == (0.0028, 0.00786)
    assert lines[0]["diff"] == lines[0]["p"] == lines[0]["std"] == ""  # the baseline
    assert lines[5]["p_holm"] == lines[5]["holm_significant"] == ""  # the mean row is not in Holm's family


def test_json_holds_every_number():
    out = json.loads(render_json(hand_comparison()))
    assert (out["metric"], out["baseline"], out["alpha"], out["permutations"]) == ("ndcg@10", "base", 0.05, 10_000)
    assert (out["level"], out["power"], out["target_diff"]) == (0.95, 0.8, 0.01)
    assert [c["runs"] for c in out["columns"]][1] == [f"runs/gte-seed{i}/eval/nanobeir.json" for i in range(3)]
    nq = out["rows"][1]
    assert nq["name"] == "NanoNQ" and nq["queries"] == 50
    assert nq["cells"]["gte"] == {"value": 0.64, "std": 0.0031, "seeds": [0.6369, 0.6400, 0.6431]}
    assert nq["differences"]["gte"] == {
        "diff": 0.0064,
        "ci_low": 0.001,
        "ci_high": 0.012,
        "p": 0.012,
        "p_exact": False,
        "significant": True,
        "p_holm": 0.024,
        "holm_significant": True,
        "test": "sign_flip",
        "unit": "query",
        "covers": "query sampling only (one run on a side: run-to-run variation unknown)",
        "se": 0.0028,
        "df": None,
        "mdd": 0.00786,
        "runs_needed": None,
        "runs_needed_text": "unknown",
        "variance_components": None,
    }

    assert out["meta_rows"][0] == {
        "name": "training wall time",
        "kind": "duration",
        "values": {"base": [5400.0], "gte": [5300.0, 5500.0, 5600.0]},
    }


def test_json_writes_an_open_interval_end_as_null():
    c = hand_comparison()
    c.differences["NanoNQ"]["gte"].ci = (float("-inf"), float("inf"))  # too few queries to reject anything
    nq = json.loads(render_json(c))["rows"][1]["differences"]["gte"]
    assert (nq["ci_low"], nq["ci_high"]) == (None, None)


@pytest.mark.parametrize("with_others", [True, False])
def test_plot_is_a_png_of_the_documented_size(tmp_path, with_others):
    from matplotlib.image import imread

    path = tmp_path / "compare.png"
    assert save_plot(hand_comparison(with_others), path) == (1200, 800)
    data = path.read_bytes()
    # A PNG starts with its 8-byte signature, then the IHDR chunk: length, "IHDR", width, height (big-endian).
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1200, 800)
    assert imread(path).shape[:2] == (800, 1200)


# --- The experiment report's sentences, as functions (the experiment tests see them only through the command) -----


def test_an_experiment_verdict_line_states_the_difference_its_interval_test_power_and_runs_needed():
    from bidir_cli.compare.comparison import TESTS
    from bidir_cli.experiment.comparisons import verdict_lines

    comparison = hand_comparison()
    (line,) = verdict_lines(comparison)
    name, unit, covering = TESTS["sign_flip"]
    assert line == (
        "**gte vs base**: mean ndcg@10 difference +0.0003, 95% CI [-0.0050, +0.0060], p = 0.9 (not significant; "
        f"{name}, unit: query, covering {covering}); minimum detectable difference 0.0079 (80% power); runs per arm "
        "needed for a 0.01 difference: unknown."
    )
    assert verdict_lines(hand_comparison(with_others=False)) == []  # a baseline alone has nothing to say


def test_the_results_page_lists_the_significant_datasets_with_their_holm_verdict():
    from bidir_cli.compare.render import comparison_dict
    from bidir_cli.experiment.page import _dataset_lines

    (line,) = _dataset_lines("s", comparison_dict(hand_comparison()), "base")
    # NanoNQ is the one dataset with p <= 0.05 (0.012), and it survives Holm (0.024); NanoFEVER (0.41) is not listed.
    assert line == (
        "- on `s`, gte vs base per dataset (p <= 0.05): NanoNQ +0.0064 [+0.0010, +0.0120], p = 0.012, also after "
        "Holm's correction"
    )


def test_report_commands_are_written_from_the_checkout_whatever_folder_they_ran_in():
    """A cell's command in a report: paths inside the checkout or beside it (../shared) relative to its top, other
    absolute paths as they are; every committed report's cell commands read so (they ran in /work/main here)."""
    from bidir_cli.experiment.identity import portable_text

    root = Path("/somewhere/checkout")
    command = ('bidir train /somewhere/checkout/configs/a.yaml --set model.static.tokenizer="/somewhere/checkout/'
               '.venv/m" --set data.path=/somewhere/shared/data/b --output-dir /tmp/out')  # fmt: skip
    assert portable_text(command, root) == ('bidir train configs/a.yaml --set model.static.tokenizer=".venv/m" '
                                            "--set data.path=../shared/data/b --output-dir /tmp/out")  # fmt: skip
    docs = Path(__file__).resolve().parents[1] / "docs" / "experiments"
    commands = [line for report in docs.glob("*/report.md") for line in report.read_text().splitlines()
                if line.startswith("- `") and "`: `bidir train " in line]  # fmt: skip
    assert len(commands) >= 30 and not [line for line in commands if "`: `bidir train /" in line]
