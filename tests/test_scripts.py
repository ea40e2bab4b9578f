"""Scripts whose output goes onto the documentation pages, checked against independent computations."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re

import numpy as np
import pytest
from helpers import ROOT, SHARED

REFERENCE = SHARED / "reference" / "README.md"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/reference is beside the repository only")
def test_proposal_tests_match_a_hand_written_enumeration_and_the_filed_figures():
    script = load_script("proposal_tests")
    table, _ = script.read_table(REFERENCE)
    assert len(table) == 13 and table["NanoArguAna"] == (0.5898, 0.5328)
    diffs = np.array([b - s for b, s in table.values()])
    observed = abs(diffs.mean())
    extreme = sum(abs((diffs * signs).mean()) >= observed - 1e-12 for signs in itertools.product((1, -1), repeat=13))
    assert script.sign_flip_p(diffs) == pytest.approx(extreme / 2**13, abs=1e-12)
    text = script.report(REFERENCE, [], "shared-eval")
    # The figures issue 18 quotes for this table: sign-flip 0.15, Wilcoxon 0.45, sign test 1.0, t 0.14, 0.30 without ArguAna.
    for row in ("bidir's) | 0.15 |", "Wilcoxon signed-rank (exact) | 0.45 |", "positive) | 1.00 |", "t test | 0.14 |",
                "without NanoArguAna (exact, 2^12) | 0.30 |"):  # fmt: skip
        assert row in text


def test_run_to_run_sd_is_the_seeded_runs_spread_read_from_the_raw_results_files():
    """The proposal section's run-to-run SD (static tier, committed): computed here from each seeded run's raw JSON
    (per-dataset nDCG@10 averaged by hand, numpy's SD), leaving out the selection cells and the base."""
    script = load_script("proposal_tests")
    folder = ROOT / "docs" / "experiments" / "static"
    by_hand: dict[str, list[float]] = {}
    for results in sorted(folder.glob("runs/*/eval/shared-eval.json")):
        seeded = re.fullmatch(r"(mnrl|mnbrl)-seed\d", results.parent.parent.name)
        if not seeded:  # a selection cell or the untrained base
            continue
        datasets = json.loads(results.read_text(encoding="utf-8"))["datasets"]
        arm = seeded.group(1)
        by_hand.setdefault(arm, []).append(np.mean([d["metrics"]["ndcg@10"] for d in datasets.values()]))
    sds = script.run_sd(folder, "shared-eval")
    assert set(sds) == set(by_hand) == {"mnrl", "mnbrl"}
    for arm, values in by_hand.items():
        assert sds[arm] == (len(values), pytest.approx(float(np.std(values, ddof=1)), abs=1e-12))
        assert len(values) == 8  # the plan's 8 seeds per loss


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/reference is beside the repository only")
def test_each_experiments_run_to_run_sd_is_read_on_its_own_first_test_suite():
    """Without --suite, each experiment's spread is read on the suite its verdict is about: the batch-8192 tier's
    test suite leaves SciFact out (its dev split shares the corpus), so its runs have no shared-eval results."""
    script = load_script("proposal_tests")
    folder = ROOT / "docs" / "experiments" / "static-8192"
    assert script.first_test_suite(folder) == "shared-eval-no-scifact"
    assert script.run_sd(folder, "shared-eval") == {}
    sds = script.run_sd(folder, "shared-eval-no-scifact")
    assert {arm: n for arm, (n, _) in sds.items()} == {"mnrl": 8, "mnbrl": 8}
    text = script.report(REFERENCE, [folder])
    assert f"from `{folder}` (mean nDCG@10 on `shared-eval-no-scifact`" in text and f"mnrl {sds['mnrl'][1]:.4f}" in text


def test_the_readme_table_is_generated_and_every_figure_of_what_we_found_is_on_the_results_page():
    """README "What we found": its table is the one `bidir results-page` makes from the committed summaries, and
    each decimal of the section (table and caveats) is one of the numbers the page states outside that table (the
    verdict lines, the reports, the sections), rounded as the README gives it; every link into docs/results.md
    names a heading of the page."""
    from bidir_cli.experiment.page import TABLE_END, TABLE_START, headline_table, results_page

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What we found", 1)[1].split("\n## ", 1)[0]
    names = ("static", "static-negatives", "transformer", "static-8192")
    folders = [ROOT / "docs" / "experiments" / name for name in names]
    table = headline_table(folders, "docs/results.md")
    assert section.split(TABLE_START + "\n")[1].split(TABLE_END)[0] == "\n".join(table) + "\n"
    assert len(table) == 2 + 5  # header, rule, one row per trained arm
    # The sequential experiment's row: its stage-wise figures at the stop and the runs used of the most.
    summary = json.loads((folders[-1] / "summary.json").read_text())
    stop = summary["sequential"]["arms"]["mnbrl"]
    row = table[-1].split(" | ")
    assert row[2] == f"{stop['looks'][-1]['runs']} of {len(summary['seeds'])}"
    assert row[3] == f"{stop['estimate']:+.4f} [{stop['ci'][0]:+.4f}, {stop['ci'][1]:+.4f}] (sequential, stage-wise)"

    sections = [ROOT / "docs" / "experiments" / f"{name}.md" for name in ("proposal", "reading")]
    page = results_page(folders, "Results", sections, page_dir=ROOT / "docs")
    outside_table = "\n".join(line for line in page.splitlines() if line not in headline_table(folders, ""))
    number = re.compile(r"[-+]?\d+\.\d+")
    on_page = [float(x) for x in number.findall(outside_table)]
    figures = number.findall(section)
    assert len(figures) >= 20
    for figure in figures:
        decimals = len(figure.split(".")[1])
        assert any(round(v, decimals) == float(figure) for v in on_page), f"README figure {figure} is not on the page"

    def slug(heading: str) -> str:  # GitHub's anchor of a heading
        return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")

    committed = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    anchors = {slug(line.lstrip("#")) for line in committed.splitlines() if line.startswith("#")}
    links = re.findall(r"\(docs/results\.md#([^)]+)\)", section)
    assert len(links) >= 5
    assert set(links) <= anchors, set(links) - anchors


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/reference is beside the repository only")
def test_a_tier_whose_runs_score_like_the_untrained_model_says_its_run_sd_is_a_lower_bound():
    """The transformer tier (committed): its untrained model scores like the fine-tuned baseline, so the proposal
    section must not present its tiny run-to-run SD as fine-tuning's. The difference it quotes is the base run's
    mean nDCG@10 minus the baseline arm's mean over seeds, computed here from the raw results files; the static
    tier, whose training moved the model far from the untrained one, gets no such sentence."""
    script = load_script("proposal_tests")
    folder = ROOT / "docs" / "experiments" / "transformer"

    def mean_ndcg(run: str) -> float:  # over the tier's four test collections (the base run also has two more)
        datasets = json.loads((folder / "runs" / run / "eval" / "shared-eval.json").read_text())["datasets"]
        return float(
            np.mean([datasets[name]["metrics"]["ndcg@10"] for name in ("cranfield", "cisi", "medline", "scifact")])
        )

    by_hand = mean_ndcg("base") - np.mean([mean_ndcg(f"cmnrl-seed{s}") for s in (1, 2, 3)])
    static = ROOT / "docs" / "experiments" / "static"
    text = script.report(REFERENCE, [static, folder], "shared-eval")
    baseline, diff, p = script.untrained_against_baseline(folder, "shared-eval")
    assert baseline == "cmnrl" and diff == pytest.approx(by_hand, abs=1e-12) and p > 0.05
    assert script.untrained_against_baseline(static, "shared-eval")[2] < 0.05
    assert text.count("score like the untrained model on average") == 1
    assert f"minus cmnrl: {by_hand:+.4f}" in text
    assert "same 8,294 pairs, sample seed 0" in text  # what the seeds hold fixed, from the experiment's summary


def test_the_lock_pins_every_version_the_committed_experiments_recorded():
    """scripts/constraints.txt against every committed cell's meta.json, both read here as raw text and JSON: the
    packages the cells recorded are pinned at their versions (so --verify in a fresh clone runs them)."""
    pins = {}
    for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    recorded = {}
    metas = sorted((ROOT / "docs" / "experiments").glob("*/runs/*/meta.json"))
    assert len(metas) > 40
    for meta in metas:
        for package, version in json.loads(meta.read_text())["versions"].items():
            recorded.setdefault(package, set()).add(version)
    recorded.pop("bidir"), recorded.pop("python")
    assert {p: sorted(v) for p, v in recorded.items()} == {p: [pins[p]] for p in recorded}
    assert load_script("lock_env").main(["--check"]) == 0


def test_reading_notes_distances_tests_and_overlap_equal_computations_from_the_raw_files(
    shared_data, minilm_path, monkeypatch
):
    """The transformer tier (committed): each arm's distance from the untrained model and between its sister seeds,
    computed here from the raw per-query lists; the development/test overlap of SciFact from the raw qrels TSVs."""
    import itertools

    monkeypatch.setenv("BIDIR_MINILM", str(minilm_path))
    script = load_script("reading_notes")
    folder = ROOT / "docs" / "experiments" / "transformer"
    text = script.report([(ROOT / "configs" / "experiments" / "transformer.yaml", folder)])

    def scores(run: str, suite: str) -> np.ndarray:
        datasets = json.loads((folder / "runs" / run / "eval" / f"{suite}.json").read_text())["datasets"]
        return np.concatenate([datasets[d]["per_query"]["ndcg@10"] for d in sorted(datasets)])

    for suite in ("shared-eval", "heldout"):
        base = scores("base", suite)
        for arm in ("cmnrl", "cmnbrl"):
            runs = [scores(f"{arm}-seed{s}", suite) for s in (1, 2, 3)]
            if suite == "shared-eval":  # the base run was evaluated on two more datasets: only those the arms have
                names = sorted(
                    json.loads((folder / "runs" / f"{arm}-seed1" / "eval" / f"{suite}.json").read_text())["datasets"]
                )
                all_base = json.loads((folder / "runs" / "base" / "eval" / f"{suite}.json").read_text())["datasets"]
                base = np.concatenate([all_base[d]["per_query"]["ndcg@10"] for d in names])
            changed = [np.mean(r != base) for r in runs]
            moved = np.mean([np.mean(np.abs(r - base)) for r in runs])
            apart = np.mean([np.mean(np.abs(a - b)) for a, b in itertools.combinations(runs, 2)])
            row = (f"| transformer | `{suite}` | {arm} | 3 | {min(changed):.0%}-{max(changed):.0%} | {moved:.4f} | "
                   f"{apart:.4f} | {moved / apart:.1f} |")  # fmt: skip
            assert row in text, row

    def relevant(split: str) -> set[str]:
        rows = (shared_data / "eval" / "scifact" / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        return {doc for _, doc, score in (r.split("\t") for r in rows) if float(score) > 0}

    test, dev = relevant("test"), relevant("train")
    assert f"{len(test & dev)} of the {len(test)} documents relevant to `scifact`'s test queries" in text
