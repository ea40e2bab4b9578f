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

TIERS = [
    ("static-b1024", "Static tier, batch 1024", "mnrl", "mnbrl"),
    ("static-b8192", "Static tier, batch 8192", "mnrl", "mnbrl"),
    ("static-b32", "Static tier (quick), batch 32", "mnrl", "mnbrl"),
    ("static-b64", "Static tier (quick), batch 64", "mnrl", "mnbrl"),
    ("minilm", "Transformer tier (all-MiniLM-L6-v2)", "cmnrl", "cmnbrl"),
    ("gpu", "GPU tier", "gpu-cmnrl", "gpu-cmnbrl"),
]


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
    return [
        f"mean {comparison['metric']} difference ({bidir} - {base}): {fmt_diff(mean)}",
        f"{bidir} higher on {len(wins)} of {len(datasets)} datasets ({', '.join(wins) or 'none'}), "
        f"lower on {len(losses)} ({', '.join(losses) or 'none'})",
        f"significant at p <= {comparison['alpha']} without correction: higher on {', '.join(sig_win) or 'none'}; "
        f"lower on {', '.join(sig_loss) or 'none'}; surviving Holm's correction: {', '.join(holm) or 'none'}",
    ]


def runs_of(runs: Path, pattern: str) -> list[Path]:
    return sorted(p for p in runs.glob(pattern) if (p / "meta.json").is_file())


def sd(xs: list[float]) -> str:
    return f" ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else ""


def training_table(runs: Path, tier: str, losses: tuple[str, str]) -> list[str]:
    lines = ["| loss | runs | training wall time (s) | examples / s | steps |", "|---|---:|---:|---:|---:|"]
    for loss in losses:
        pattern = f"{tier}-{loss}-s*" if not tier.startswith("gpu") else loss
        metas = [json.loads((p / "meta.json").read_text()) for p in runs_of(runs, pattern)]
        if not metas:
            continue
        wall = [m["wall_time_s"] for m in metas]
        rate = [m["train"]["examples_per_second"] for m in metas]
        steps = sorted({m["train"]["steps"] for m in metas})
        lines.append(
            f"| {loss} | {len(metas)} | {statistics.mean(wall):.1f}{sd(wall)} | {statistics.mean(rate):.1f}{sd(rate)} "
            f"| {', '.join(map(str, steps))} |"
        )
    return lines


def partition_table(runs: Path, tier: str, loss: str) -> list[str]:
    """Mean partition shares at the first and the last logged step, averaged over seeds."""
    pattern = f"{tier}-{loss}-s*" if not tier.startswith("gpu") else loss
    logs = []
    for run in runs_of(runs, pattern):
        lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines() if x.strip()]
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
    args = parser.parse_args()
    runs, out = args.runs, args.out
    figures = out.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)

    summary, body = [], []
    for tier, title, base, bidir in TIERS:
        compare_json = runs / f"compare-{tier}.json"
        compare_md = runs / f"compare-{tier}.md"
        if not compare_md.is_file():
            continue
        body += [f"## {title}", ""]
        if compare_json.is_file():
            comparison = json.loads(compare_json.read_text())
            summary += [f"**{title}**", ""] + [f"- {line}" for line in summary_lines(comparison, base, bidir)] + [""]
        body += [compare_md.read_text().rstrip(), ""]
        plot = runs / f"{tier}.png"
        if plot.is_file():
            shutil.copyfile(plot, figures / plot.name)
            body += [f"![{title}](results/{plot.name})", ""]
        body += ["Training cost per loss (mean ± standard deviation over seeds):", ""]
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
        summary += [f"Not run yet (no compare output in {runs}): {'; '.join(missing)}.", ""]

    scale = runs / "scale_choice.json"
    scale_lines = []
    if scale.is_file():
        choice = json.loads(scale.read_text())
        scale_lines = ["## Scale chosen on the SciFact dev split (seed 1, the smaller batch)", "",
                       "| loss | nDCG@10 at scale 10 | 20 | 40 | chosen |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for loss, c in choice.items():
            scores = c["dev_ndcg@10"]
            scale_lines.append(
                f"| {loss} | " + " | ".join(f"{scores[k]:.4f}" for k in ("10", "20", "40")) + f" | {c['scale']:g} |"
            )
        scale_lines.append("")

    text = [
        "# Results: the bidirectional loss against the standard loss on real data",
        "",
        f"Generated by `python scripts/write_results.py {runs}` from the runs of `bash scripts/run_experiments.sh`;",
        f"machine: {machine()}.",
        "",
        "## Summary",
        "",
        "Δ is the bidirectional loss minus the standard loss, with its 95% bootstrap interval and the paired",
        "randomization test's p-value (\\* p ≤ 0.05, † also after Holm's correction across datasets).",
        "",
        *summary,
        *scale_lines,
        *body,
    ]
    out.write_text("\n".join(text).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
