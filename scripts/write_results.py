"""Write docs/results.md from the run directories of scripts/run_experiments.sh.

    python scripts/write_results.py [RUNS_DIR] [--out docs/results.md]

Every number in the page comes from files that run_experiments.sh writes: the `bidir compare` outputs
(compare-*.md / compare-*.json), scale_choice.json, each run's meta.json and train_log.jsonl. The summary
sentences are generated from the same numbers, so the page cannot drift from the runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
from pathlib import Path

from bidir_cli.runs import RunDir

TIERS = [
    ("static-b1024", "Static tier, batch 1024", "mnrl", "mnbrl"),
    ("static-b8192", "Static tier, batch 8192", "mnrl", "mnbrl"),
    ("static-b32", "Static tier (quick), batch 32", "mnrl", "mnbrl"),
    ("static-b64", "Static tier (quick), batch 64", "mnrl", "mnbrl"),
    ("minilm", "Transformer tier (all-MiniLM-L6-v2)", "cmnrl", "cmnbrl"),
    ("gpu", "GPU tier", "gpu-cmnrl", "gpu-cmnbrl"),
]


COMMANDS = [
    "```bash",
    "bash scripts/run_experiments.sh                    # every tier (gpu only where torch sees a GPU); skips completed runs",
    "bash scripts/run_experiments.sh --tier static      # one tier: static, transformer or gpu",
    "bash scripts/run_experiments.sh --tier gpu --gpu-max-steps 60   # the short GPU version",
    "bash scripts/run_experiments.sh --quick            # the whole pipeline on tiny data, into runs/experiments-quick",
    "python scripts/write_results.py runs/experiments   # this page, from the run directories",
    "python scripts/check_reproduction.py runs/experiments OTHER/RUNS   # same results? (timings excepted)",
    "```",
    "",
    "Each run's exact command line is in its `meta.json` (`argv`) and its log in `runs/experiments/logs/`.",
]


def verdict(d: dict) -> str:
    """One difference in words: what the two statistics say about it together."""
    numbers = f"{d['diff']:+.4f}, 95% interval [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], p = {d['p']:.2g}"
    if not d["significant"]:
        return f"{numbers}: not significant"
    if _interval_holds_zero(d):
        return f"{numbers}: the test says significant, but the interval, which also resamples the seeds, holds zero"
    return f"{numbers}: significant, and the interval excludes zero"


def reading(comparisons: dict[str, dict]) -> list[str]:
    """The summary in words, generated from the compare outputs so that it cannot contradict them."""
    out = []
    for tier, title, base, bidir in TIERS:
        if tier not in comparisons:
            continue
        c = comparisons[tier]
        rows = {r["name"]: r for r in c["rows"]}
        datasets = [r for r in c["rows"] if r["name"] != "mean"]

        def d(row: dict, bidir: str = bidir) -> dict:
            return row["differences"][bidir]

        established_up = [r["name"] for r in datasets if established(d(r)) and d(r)["diff"] > 0]
        established_down = [r["name"] for r in datasets if established(d(r)) and d(r)["diff"] < 0]
        lower = [r["name"] for r in datasets if d(r)["diff"] < 0]
        mean_cells = rows["mean"]["cells"]
        base_columns = [name for name in mean_cells if name not in (base, bidir)]
        text = f"**{title}.** Mean {c['metric']} of {bidir} minus {base} over {len(datasets)} collections: "
        text += verdict(d(rows["mean"])) + ". "
        text += (
            f"{bidir} is ahead beyond doubt (Holm-corrected test and interval agree) on "
            f"{', '.join(established_up) or 'no collection'}"
        )
        text += f"; behind beyond doubt on {', '.join(established_down) or 'none'}. "
        significant_lower = [name for name in lower if d(rows[name])["significant"]]
        text += (
            f"It is lower on {', '.join(lower)} ({'significantly on ' + ', '.join(significant_lower) if significant_lower else 'none of them significantly'}). "
            if lower
            else "It is lower on none. "
        )
        for name in base_columns:
            changes = ", ".join(f"{col} {mean_cells[col]['value'] - mean_cells[name]['value']:+.4f}"
                                for col in (base, bidir))  # fmt: skip
            text += f"Fine-tuning changed the mean against the untrained {name} by: {changes}"
            against_base = rows["mean"]["differences"][name]
            if not against_base["significant"]:
                text += (
                    f"; the untrained model is not significantly different from {base} "
                    f"(p = {against_base['p']:.2g}), so at this training budget the tier says little about either loss"
                )
            text += "."
        out += [text, ""]
    if not out:
        return ["No tier has been run yet."]
    return headline(comparisons) + out


def headline(comparisons: dict[str, dict]) -> list[str]:
    """One sentence over every tier: the direction of the mean difference and what is established."""
    tiers = [(title, comparisons[tier], bidir) for tier, title, _, bidir in TIERS if tier in comparisons]
    means = [mean_row(c)["differences"][bidir] for _, c, bidir in tiers]
    ahead, behind = [], []
    for title, c, bidir in tiers:
        for r in c["rows"]:
            d = r["differences"][bidir]
            if r["name"] != "mean" and established(d):
                (ahead if d["diff"] > 0 else behind).append(f"{r['name']} ({title})")
    positive = sum(d["diff"] > 0 for d in means)
    established_means = sum(established(d, corrected=False) for d in means)
    return [
        f"**In short.** The bidirectional loss's mean difference over the collections is positive in {positive} of "
        f"{len(tiers)} comparisons and established (test and interval agree) in {established_means}. It is ahead beyond "
        f"doubt on {', '.join(ahead) or 'no collection'} and behind beyond doubt on {', '.join(behind) or 'none'}.",
        "",
    ]


def proposal_reading(comparisons: dict[str, dict], proposal_diff: float | None) -> list[str]:
    """What the runs here can and cannot say about the proposal's table; the figures come from the compare outputs."""
    text = (
        "These runs do not repeat the proposal's experiment: NanoBEIR comes from the Hugging Face Hub, which this "
        "machine cannot reach, so the question is asked of offline collections instead; the models are a "
        "StaticEmbedding trained from scratch and all-MiniLM-L6-v2 (already contrastively trained), the data the "
        "eleven offline training sources. A better or worse number here is not a better or worse number on NanoBEIR."
    )
    spreads, unmoved = [], []
    for tier, title, base, bidir in TIERS:
        if tier in comparisons:
            mean = mean_row(comparisons[tier])
            stds = [mean["cells"][col]["std"] for col in (base, bidir) if mean["cells"][col]["std"] is not None]
            untrained = [name for name in mean["cells"] if name not in (base, bidir)]
            if any(not mean["differences"][name]["significant"] for name in untrained):
                unmoved.append(title)  # its seed spread says nothing about a run that changes the model
                continue
            if stds:
                spreads.append((title, max(stds), mean["differences"][bidir]))
    if spreads:
        text += (
            " What does carry over is how much one run per loss can tell. Here, with data, model and settings "
            "fixed, the seed-to-seed standard deviation of one loss's mean nDCG@10 was up to "  # tiers that trained
            + "; ".join(f"{sd:.4f} ({title})" for title, sd, _ in spreads)
            + ". The difference of two single runs then varies by about √2 times that, "
            + "; ".join(f"{sd * 2**0.5:.4f}" for _, sd, _ in spreads)
            + (
                f"; the proposal's {proposal_diff:+.4f} is "
                + " and ".join(f"{abs(proposal_diff) / (sd * 2**0.5):.1f}" for _, sd, _ in spreads)
                + " such standard deviations from zero"
                + (
                    ": if its setup varies across seeds as these do, one run per loss cannot tell it from a lucky seed"
                    if all(abs(proposal_diff) < 2 * sd * 2**0.5 for _, sd, _ in spreads)
                    else ""
                )
                if proposal_diff is not None
                else ""
            )
            + (
                f" (left out: {', '.join(unmoved)}, where the fine-tuned models are not significantly different "
                "from the untrained one)"
                if unmoved
                else ""
            )
            + ". Its per-dataset rows (50 queries each on NanoBEIR) cannot be tested at all without per-query scores."
        )
    return [text]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def fmt_diff(d: dict) -> str:
    marks = ("*" if d["significant"] else "") + ("†" if d["holm_significant"] else "")
    return f"{d['diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], p = {d['p']:.3g}{' ' + marks if marks else ''}"


def summary_lines(comparison: dict, base: str, bidir: str) -> list[str]:
    rows = {r["name"]: r for r in comparison["rows"]}
    mean = rows["mean"]["differences"][bidir]
    datasets = [r for r in comparison["rows"] if r["name"] != "mean"]
    wins = [r["name"] for r in datasets if r["differences"][bidir]["diff"] > 0]
    losses = [r["name"] for r in datasets if r["differences"][bidir]["diff"] < 0]
    sig_win = [
        r["name"] for r in datasets if r["differences"][bidir]["significant"] and r["differences"][bidir]["diff"] > 0
    ]
    sig_loss = [
        r["name"] for r in datasets if r["differences"][bidir]["significant"] and r["differences"][bidir]["diff"] < 0
    ]
    holm = [r["name"] for r in datasets if r["differences"][bidir]["holm_significant"]]
    # The test holds the seed-averaged scores fixed; the interval also resamples seeds. A difference counts as
    # established only where both agree (and it survives Holm's correction).
    test_only = [r["name"] for r in comparison["rows"] if r["differences"][bidir]["significant"]
                 and _interval_holds_zero(r["differences"][bidir])]  # fmt: skip
    robust = [r["name"] for r in datasets if established(r["differences"][bidir])]
    return [
        f"mean {comparison['metric']} difference ({bidir} - {base}): {fmt_diff(mean)}",
        f"{bidir} higher on {len(wins)} of {len(datasets)} datasets ({', '.join(wins) or 'none'}), "
        f"lower on {len(losses)} ({', '.join(losses) or 'none'})",
        f"significant at p <= {comparison['alpha']} without correction: higher on {', '.join(sig_win) or 'none'}; "
        f"lower on {', '.join(sig_loss) or 'none'}; surviving Holm's correction: {', '.join(holm) or 'none'}",
        f"significant by the test but with 0 inside the 95% interval (not established): {', '.join(test_only) or 'none'}",
        f"established (Holm-significant and the interval excludes 0): {', '.join(robust) or 'none'}",
    ]


def _interval_holds_zero(d: dict) -> bool:
    return d["ci_low"] <= 0.0 <= d["ci_high"]


def established(d: dict, corrected: bool = True) -> bool:
    """The test (Holm-corrected for a dataset row; the mean row has no correction) and the interval agree."""
    return d["holm_significant" if corrected else "significant"] and not _interval_holds_zero(d)


def mean_row(comparison: dict) -> dict:
    return next(r for r in comparison["rows"] if r["name"] == "mean")


def proposal_table(reference: Path) -> tuple[dict[str, tuple[float, float]], tuple[float, float] | None]:
    """The NanoBEIR rows (dataset -> (CMNBRL, CMNRL)) and the Avg row of the proposal's table."""
    rows, average = {}, None
    if reference.is_file():
        for line in reference.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[0].startswith("Nano"):
                rows[cells[0]] = (float(cells[1]), float(cells[2]))
            if len(cells) == 3 and cells[0] == "Avg":
                average = (float(cells[1]), float(cells[2]))
    return rows, average


def proposal_lines(reference: Path, rows: dict[str, tuple[float, float]], average: tuple[float, float]) -> list[str]:
    """The proposal's NanoBEIR table (shared/reference/README.md), tested at the level it allows: datasets."""
    import numpy as np

    from bidir_cli.stats import sign_flip_test

    if not rows or average is None:
        return [f"(no NanoBEIR table found in {reference})"]
    diffs = np.array([b - s for b, s in rows.values()])
    test = sign_flip_test([diffs], permutations=100_000, rng=np.random.default_rng(0))
    up = [n.removeprefix("Nano") for n, (b, s) in rows.items() if b > s]
    down = [n.removeprefix("Nano") for n, (b, s) in rows.items() if b < s]
    largest = sorted(rows, key=lambda n: rows[n][0] - rows[n][1], reverse=True)[:3]
    return [
        f"The proposal's table ({reference}): CMNBRL {average[0]:.4f} against CMNRL {average[1]:.4f} mean NanoBEIR "
        f"nDCG@10, a difference of {average[0] - average[1]:+.4f}, from one run per loss. CMNBRL is higher on "
        f"{len(up)} of {len(rows)} datasets ({', '.join(up)}) and lower on {len(down)} ({', '.join(down)}); "
        f"the three largest gains are "
        + ", ".join(f"{n.removeprefix('Nano')} ({rows[n][0] - rows[n][1]:+.4f})" for n in largest)
        + ". Without per-query scores the only test the table allows treats each dataset as one observation: "
        f"a sign-flip test of the {len(rows)} dataset-level differences gives p = {test.p:.3g} "
        f"({'exact, all' if test.exact else 'Monte Carlo,'} {test.flips:,} sign assignments).",
    ]


def runs_of(runs: Path, pattern: str) -> list[Path]:
    return sorted(p for p in runs.glob(pattern) if RunDir(p).is_run())


def sd(xs: list[float]) -> str:
    return f" ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else ""


def tier_runs(runs: Path, tier: str, loss: str) -> list[Path]:
    """The run directories of one loss in one tier: its seeds (the GPU tier has one run per loss)."""
    return runs_of(runs, loss if tier.startswith("gpu") else f"{tier}-{loss}-s*")


def training_table(runs: Path, tier: str, losses: tuple[str, str]) -> list[str]:
    lines = ["| loss | runs | training wall time (s) | examples / s | steps |", "|---|---:|---:|---:|---:|"]
    for loss in losses:
        metas = [RunDir(p).read_meta() for p in tier_runs(runs, tier, loss)]
        if not metas:
            continue
        wall = [m.wall_time_s for m in metas]
        rate = [m.train["examples_per_second"] for m in metas]
        steps = sorted({m.train["steps"] for m in metas})
        lines.append(
            f"| {loss} | {len(metas)} | {statistics.mean(wall):.1f}{sd(wall)} | {statistics.mean(rate):.1f}{sd(rate)} "
            f"| {', '.join(map(str, steps))} |"
        )
    return lines


def partition_table(runs: Path, tier: str, loss: str) -> list[str]:
    """Mean partition shares at the first and the last logged step, averaged over seeds."""
    logs = []
    for run in tier_runs(runs, tier, loss):
        lines = [json.loads(x) for x in RunDir(run).train_log.read_text().splitlines() if x.strip()]
        lines = [x for x in lines if "partition" in x]
        if lines:
            logs.append((lines[0], lines[-1]))
    if not logs:
        return []
    keys = ("q->d", "q->q", "d->q", "d->d", "positive")
    out = ["| logged step | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for label, index in (("first", 0), ("last", 1)):
        step = logs[0][index]["step"]
        values = [statistics.mean(log[index]["partition"][k] for log in logs) for k in keys]
        out.append(f"| {label} (step {step}) | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", type=Path, default=Path("runs/experiments"))
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--reference", type=Path, default=Path("../shared/reference/README.md"))
    args = parser.parse_args()
    runs, out = args.runs, args.out
    proposal = proposal_table(args.reference)
    figures = out.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)

    summary, body, comparisons = [], [], {}
    for tier, title, base, bidir in TIERS:
        compare_json = runs / f"compare-{tier}.json"
        compare_md = runs / f"compare-{tier}.md"
        if not compare_md.is_file():
            continue
        body += [f"## {title}", ""]
        if compare_json.is_file():
            comparison = json.loads(compare_json.read_text())
            comparisons[tier] = comparison
            summary += [f"**{title}**", ""] + [f"- {line}" for line in summary_lines(comparison, base, bidir)] + [""]
        body += [compare_md.read_text().rstrip(), ""]
        plot = runs / f"{tier}.png"
        if plot.is_file():
            shutil.copyfile(plot, figures / plot.name)
            body += [f"![{title}](results/{plot.name})", ""]
        body += [
            "Training cost per loss (mean ± standard deviation over seeds; wall-clock times from each run's "
            "meta.json, taken with whatever else the machine was running: the loss's own cost, measured in "
            "isolation, is in [loss-performance.md](loss-performance.md)):",
            "",
        ]
        body += training_table(runs, tier, (base, bidir)) + [""]
        shares = partition_table(runs, tier, bidir)
        if shares:
            body += [f"How the {bidir} partition splits across its blocks (train_log.jsonl, mean over seeds):", ""]
            body += shares + [""]

    quick = "quick" in str(runs)
    missing = [
        title
        for tier, title, *_ in TIERS
        if ("(quick)" in title) == quick and not (runs / f"compare-{tier}.md").is_file()
    ]
    if missing:
        summary += [
            f"Not run (no compare output in {runs}): {'; '.join(missing)}. "
            + (
                "The GPU tier runs only where torch sees a GPU: `bash scripts/run_experiments.sh --tier gpu`."
                if any("GPU" in m for m in missing)
                else ""
            ),
            "",
        ]

    scale = runs / "scale_choice.json"
    scale_lines = []
    if scale.is_file():
        choice = json.loads(scale.read_text())
        keys = sorted(next(iter(choice.values()))["dev_ndcg@10"], key=float)
        grid = [float(k) for k in keys]
        scale_lines = ["## Scale chosen on the SciFact dev split (seed 1, the smaller batch)", "",
                       f"| loss | nDCG@10 at scale {' | '.join(keys)} | chosen |", "|---|" + "---:|" * (len(keys) + 1)]  # fmt: skip
        for loss, c in choice.items():
            scores = c["dev_ndcg@10"]
            scale_lines.append(f"| {loss} | " + " | ".join(f"{scores[k]:.4f}" for k in keys) + f" | {c['scale']:g} |")
        scale_lines.append("")
        at_edge = [loss for loss, c in choice.items() if float(c["scale"]) in (grid[0], grid[-1])]
        if at_edge:
            scale_lines += [
                f"Chosen at an edge of the grid: {', '.join(at_edge)}. The best scale may lie outside "
                f"{{{', '.join(f'{g:g}' for g in grid)}}}; the grid is the one the experiment plan fixed.",
                "",
            ]

    text = [
        "# Results: the bidirectional loss against the standard loss on real data",
        "",
        f"Generated by `python scripts/write_results.py {runs}` from the runs of `bash scripts/run_experiments.sh`;",
        f"machine: {machine()}.",
        "",
        "## Summary",
        "",
        *reading(comparisons),
        "",
        "## The numbers behind it",
        "",
        "Δ is the bidirectional loss minus the standard loss, with its 95% bootstrap interval and the paired",
        "randomization test's p-value (\\* p ≤ 0.05, † also after Holm's correction across datasets).",
        "",
        *summary,
        "## What this says about the proposal's NanoBEIR result",
        "",
        *(proposal_lines(args.reference, *proposal) if args.reference.is_file() else [f"({args.reference} not found)"]),
        "",
        *proposal_reading(comparisons, None if proposal[1] is None else proposal[1][0] - proposal[1][1]),
        "",
        "## How to reproduce",
        "",
        *COMMANDS,
        "",
        *scale_lines,
        *body,
    ]
    out.write_text("\n".join(text).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
