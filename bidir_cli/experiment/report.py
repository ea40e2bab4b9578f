"""The report of ``bidir experiment``: ``DIR/report.md`` and ``DIR/summary.json``, built from the cells'
results-only files (config.yaml, meta.json, train_log.jsonl, eval/*.json), never from model weights, so an
experiment's evidence can be committed and its report rebuilt from the repository.
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

from ..compare.comparison import Comparison
from ..console import log
from ..runs.atomic import atomic_write_text
from ..runs.environment import code_of_commit, now, package_commit
from ..runs.train_log import TrainLog
from .cells import Cell, Experiment, meta_or_none
from .comparisons import comparisons, verdict_lines
from .design import DESIGN_HASH_VERSION, design, design_hash, design_status
from .identity import portable, portable_text
from .records import PLAN_HASH_VERSION, ConfirmationRecord, PlanRecord, Summary
from .selection_report import selection_table


def what_seeds_vary(exp: Experiment, cells: list[Cell]) -> str:
    """One sentence: what differs between two seeds of an arm (initialisation, data order, dropout, data sample),
    from the cells' resolved config and the rows their runs recorded."""
    seeded = [c for c in cells if c.kind == "test"]
    if not seeded:
        return ""
    cfg = seeded[0].config
    varies = ["the order of the training batches"]
    if cfg.model.static is not None:
        varies.insert(0, "the initial weights (a StaticEmbedding from scratch)")
        fixed = []
    else:
        varies.append("dropout")
        fixed = ["the initial weights (the pretrained model's)"]
    sampled = [s for s in cfg.data.train if s.sample]
    rows = next((m.data.get("rows") for c in seeded if (m := meta_or_none(exp.run_dir(c))) and m.data), None)
    size = f"{rows:,} pairs" if rows else "the same pairs"
    if sampled and exp.spec.vary_sample:
        varies.append(f"the training sample (each seed draws its own {sampled[0].sample:,} rows a source)")
    elif sampled:
        seeds = ", ".join(str(s) for s in sorted({s.sample_seed for s in sampled}))
        fixed.append(f"the training sample (every run trains on the same {size}, sample seed {seeds})")
    else:
        fixed.append(f"the training data (every run trains on all of it, {size})")
    return f"Seeds vary {' and '.join(varies)}; fixed across seeds: {' and '.join(fixed)}."


def cost_table(exp: Experiment, cells: list[Cell]) -> list[str]:
    lines = ["| arm | runs | wall time (s) | examples / s | peak memory (MiB) |", "|---|---:|---:|---:|---:|"]
    for arm in exp.spec.arms:
        metas = [
            m for c in cells if c.arm == arm and c.kind == "test" and (m := meta_or_none(exp.run_dir(c))) and m.train
        ]
        if not metas:
            continue
        rates = [r for m in metas if (r := m.examples_per_second) is not None]  # None: not measured
        cols = [[m.wall_time_s for m in metas], rates, [m.train["peak_memory_bytes"] / 2**20 for m in metas]]
        cells_text = [
            (f"{statistics.mean(v):.1f}" + (f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")) if v else "n/a"
            for v in cols
        ]
        if len(rates) < len(metas):
            cells_text[1] += f" ({len(rates)} of {len(metas)} runs measured)"
        lines.append(f"| {arm} | {len(metas)} | " + " | ".join(cells_text) + " |")
    return lines


def training_curves(exp: Experiment, cells: list[Cell], path: Path) -> bool:
    """Training loss per step (mean over seeds) per arm, and the partition shares of bidirectional arms."""
    from matplotlib.figure import Figure

    logs: dict[str, list[list[dict]]] = {}
    for cell in (c for c in cells if c.kind == "test"):
        run = exp.run_dir(cell)
        if run.train_log.is_file():
            lines = TrainLog(run.train_log).lines()
            logs.setdefault(cell.arm, []).append([x for x in lines if "loss" in x])
    if not logs:
        return False
    fig = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    loss_ax, share_ax = fig.subplots(1, 2)
    for arm, runs in logs.items():
        steps = sorted({x["step"] for run in runs for x in run})
        mean = [statistics.mean(x["loss"] for run in runs for x in run if x["step"] == s) for s in steps]
        loss_ax.plot(steps, mean, label=arm)
        with_partition = [[x for x in run if "partition" in x] for run in runs]
        if any(with_partition):
            for block in ("q->d", "q->q", "d->q", "d->d", "positive"):
                share = [statistics.mean(x["partition"][block] for run in with_partition for x in run if x["step"] == s)
                         for s in steps if any(x["step"] == s for run in with_partition for x in run)]  # fmt: skip
                share_ax.plot(steps[: len(share)], share, label=f"{arm} {block}")
    loss_ax.set(xlabel="step", ylabel="training loss (mean over seeds)")
    share_ax.set(xlabel="step", ylabel="share of the softmax mass")
    loss_ax.legend(fontsize="small")
    share_ax.legend(fontsize="x-small")
    fig.savefig(path, format="png")
    return True


def beside_lines(exp: Experiment, tests: dict[str, Comparison]) -> list[str]:
    """An earlier experiment's figures (``beside:``) on the datasets of this one's first test suite, arm by arm,
    from its committed summary.json: where the two differ in one pre-registered setting, the reader sees both."""
    if not exp.spec.beside or not tests:
        return []
    from ..compare.render import comparison_dict

    other = Summary.load(Path(exp.spec.beside) / "summary.json")
    theirs = {row["name"]: row for rows in other.comparisons.values() for row in rows.get("rows", [])}
    suite, comparison = next(iter(tests.items()))
    arms = [a for a in exp.spec.arms if a in other.arms]
    header = " | ".join(f"{a} (here) | {a} ({other.experiment})" for a in arms)
    lines = [f"### Beside experiment {other.experiment}", "",
             f"The same datasets of `{suite}` in `{portable(exp.spec.beside, exp.root)}` (its mean over its seeds; its own mean row "
             f"covers its own datasets, so it is left out):", "", f"| dataset | {header} |",
             "|---|" + "---:|" * (2 * len(arms))]  # fmt: skip
    ours = {row["name"]: row for row in comparison_dict(comparison)["rows"]}
    for dataset in comparison.datasets:
        if dataset not in theirs:
            continue
        values = []
        for arm in arms:
            mine = ours[dataset]["cells"].get(arm, {}).get("value") if dataset in ours else None
            earlier = theirs[dataset]["cells"].get(arm, {}).get("value")
            values += [f"{v:.4f}" if v is not None else "-" for v in (mine, earlier)]
        lines.append(f"| {dataset} | " + " | ".join(values) + " |")
    return lines + [""]


def design_line(plan: dict[str, Any]) -> str:
    if plan.get("design_now") == "not comparable":
        return "not comparable (the first report recorded no design of this hash version)"
    first = f"`{plan['design_hash'][:16]}` (first report)"
    if plan.get("design_now") == "changed":
        return f"{first}, **changed since**: {'; '.join(plan.get('design_changes', []))}"
    return f"{first}, unchanged since"


def cell_shape(exp: Experiment, done: list[Cell]) -> str:
    """``cell``, or for cells of several training processes ``process, N processes per cell (torchrun), global
    batch G`` (G as the cells' meta.json recorded it: processes x per-device batch x accumulation)."""
    if exp.processes == 1:
        return "cell"
    batches = sorted({m.global_batch for c in done if c.kind != "base" and (m := meta_or_none(exp.run_dir(c)))
                      and m.global_batch})  # fmt: skip
    batch = f", global batch {'/'.join(map(str, batches))}" if batches else ""
    return f"process, {exp.processes} processes per cell (torchrun){batch}"


def write_report(exp: Experiment) -> Summary:
    """Write DIR/report.md, DIR/summary.json and the plots from the completed cells; return the summary."""
    from ..compare.render import comparison_dict, render_markdown, save_plot
    from .confirm import plan_hash

    cells = exp.cells()
    done = [c for c in cells if meta_or_none(exp.run_dir(c)) and exp.state(c) == "done"]
    missing = [c.name for c in cells if c not in done] + (
        [] if exp.test_cells() else ["seeded cells (after the selection)"]
    )
    exp.dir.mkdir(parents=True, exist_ok=True)
    plan = exp.dir / "plan.json"
    if not plan.exists():
        fixed = design(exp)
        PlanRecord(plan_hash=plan_hash(exp), plan_hash_version=PLAN_HASH_VERSION, first_report=now(),
                   commit=package_commit(), design_hash=design_hash(fixed), design_hash_version=DESIGN_HASH_VERSION,
                   design=fixed).save(plan)  # fmt: skip
    recorded = PlanRecord.load(plan)
    status, changes = design_status(exp, recorded.to_dict())
    warning = [f"**The design changed after the first report** ({'; '.join(changes)}): the p-values and intervals "
               "below are computed as if it had not (running on after a look is optional stopping), so they do not "
               "mean what they say."] if status == "changed" else []  # fmt: skip
    tests = comparisons(exp, exp.suites, done)
    sequential_md, sequential_record, sequential_lines = [], None, {}
    if exp.spec.sequential and (chosen := exp.chosen()) is not None:
        from .sequential_report import section

        sequential_md, sequential_record, sequential_lines = section(exp, chosen, exp.dir)
    fixed = "Fixed-design figures (as if the runs had been fixed in advance; the sequential verdict is above): "
    verdicts = {suite: warning + (list(sequential_lines.values()) if i == 0 else [])
                + [fixed + line if sequential_lines else line for line in verdict_lines(c)]
                for i, (suite, c) in enumerate(tests.items())}  # fmt: skip
    summary = Summary(
        experiment=exp.spec.name, file=str(exp.path), baseline=exp.spec.baseline, arms=list(exp.spec.arms),
        seeds=exp.spec.seed_list, threads=exp.threads, missing=missing, seeds_vary=what_seeds_vary(exp, cells),
        limitations=exp.spec.limitations, selection=exp.chosen() if exp.spec.select else None,
        verdicts=verdicts, sequential=sequential_record,
        comparisons={suite: _statistics(comparison_dict(c)) for suite, c in tests.items()},
        plan={k: v for k, v in recorded.to_dict().items() if k != "design"}
        | {"plan_hash_now": plan_hash(exp), "design_now": status, "design_changes": changes},
    )  # fmt: skip
    seeds = f"{len(exp.spec.seed_list)} seeds per arm ({', '.join(map(str, exp.spec.seed_list))})"
    if exp.spec.sequential:
        seeds = f"at most {seeds[:-1]}, run in order up to the look the sequential design stops at)"
    md = [f"# Experiment {exp.spec.name}", "", f"`{exp.path}`: arms {', '.join(exp.spec.arms)} (baseline "
          f"{exp.spec.baseline}), {seeds}, "
          f"{exp.threads} CPU threads per {cell_shape(exp, done)}. {what_seeds_vary(exp, cells)}".rstrip(), ""]  # fmt: skip
    if missing:
        md += [f"**Incomplete**: {len(missing)} cell(s) missing: {', '.join(missing)}. The numbers below use the "
               "completed cells only.", ""]  # fmt: skip
    md += ["## Verdict", ""]
    if exp.spec.limitations:
        md += ["**Read first: what this design cannot show**", "", *(f"- {x}" for x in exp.spec.limitations), ""]
    for suite in tests:
        md += [f"On `{suite}`:", "", *(f"- {line}" for line in verdicts[suite]), ""]
    md += selection_table(exp) + ([""] if exp.spec.select else [])
    md += sequential_md + beside_lines(exp, tests)
    for suite, comparison in tests.items():
        plot = exp.dir / f"differences-{suite}.png"
        save_plot(comparison, plot)
        fixed_note = (["Fixed-design figures: this table's p-values, intervals, MDD and runs needed treat the runs as "
                       "fixed in advance; the sequential verdict is in \"Sequential design\".", ""]
                      if sequential_lines else [])  # fmt: skip
        md += [f"## {suite}", "", *fixed_note, render_markdown(comparison), f"![differences]({plot.name})", ""]
    md += ["## Training", "", *cost_table(exp, done), ""]
    if training_curves(exp, done, exp.dir / "training.png"):
        md += ["![training loss and partition shares](training.png)", ""]
    md += _confirmation(exp, done, summary)
    md += _provenance(exp, done, summary)
    atomic_write_text(exp.dir / "report.md", "\n".join(md) + "\n")
    summary.save(exp.dir / "summary.json")
    log(f"report written to {exp.dir / 'report.md'}")
    return summary


def _statistics(comparison: dict[str, Any]) -> dict[str, Any]:
    """A comparison's numbers without the training measurements (timings differ between reruns)."""
    return {k: v for k, v in comparison.items() if k not in ("meta_rows", "columns")} | {
        "columns": [{"name": c["name"], "runs": len(c["runs"])} for c in comparison["columns"]]
    }


def _confirmation(exp: Experiment, done: list[Cell], summary: Summary) -> list[str]:
    from ..compare.render import comparison_dict, render_markdown

    record = exp.dir / "confirmation.json"
    if not record.exists():
        return []
    confirmation = ConfirmationRecord.load(record)
    held_out = comparisons(exp, exp.spec.confirm, done)
    summary.confirmation = confirmation.to_dict() | {
        "verdicts": {s: verdict_lines(c) for s, c in held_out.items()},
        "comparisons": {s: _statistics(comparison_dict(c)) for s, c in held_out.items()},
    }
    first = PlanRecord.load(exp.dir / "plan.json")
    if first.hash_version != confirmation.hash_version:
        verdict = "hashed by different versions of the plan hash, so not comparable."
    else:
        verdict = "the same plan." if first.plan_hash == confirmation.plan_hash else "**the plan changed in between**."
    if first.design_hash and confirmation.design_hash:  # refused when it changed: the same design, said so
        verdict += f" Design hash at both: `{first.design_hash[:16]}` (the same design)."
    md = ["## Confirmation on held-out suites", "",
          f"Evaluated once, {confirmation.time}, after every cell was complete. Plan hash when the test report was "
          f"first written ({first.first_report}): `{first.plan_hash[:16]}`; at confirmation: "
          f"`{confirmation.plan_hash[:16]}`: {verdict}", ""]  # fmt: skip
    for suite, comparison in held_out.items():
        md += [
            f"### {suite}",
            "",
            *(f"- {line}" for line in verdict_lines(comparison)),
            "",
            render_markdown(comparison),
        ]
    return md


def _provenance(exp: Experiment, done: list[Cell], summary: Summary) -> list[str]:
    metas = [m for c in done if (m := meta_or_none(exp.run_dir(c)))]
    commits = sorted({m.git_commit or "unknown" for m in metas})
    # What ran is bidir's source tree; the repository's commit also moves with each results commit.
    codes = sorted(
        {m.code or (m.git_commit and code_of_commit(m.git_commit)) or f"commit {m.git_commit}" for m in metas}
    )
    versions = metas[0].versions if metas else {}
    summary.machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": exp.threads,
                          "commits": commits, "code": codes, "versions": versions}  # fmt: skip
    md = ["## Provenance", "", f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {exp.threads} threads per cell",
          f"- code (bidir_cli tree): {', '.join(codes)}" + (" (**cells ran different code**)" if len(codes) > 1 else ""),
          f"- repository commits: {', '.join(commits)}",
          "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
          f"- plan hash: `{summary.plan['plan_hash'][:16]}` (first report), `{summary.plan['plan_hash_now'][:16]}` (now"
          + ("" if PlanRecord.from_dict(summary.plan).hash_version == PLAN_HASH_VERSION else f", hash version {PLAN_HASH_VERSION}: not comparable") + "); it covers the code too, so it moves with every code change",
          f"- design hash (what decides the statistics: cells, suites, seeds, metric, target difference): {design_line(summary.plan)}",
          f"- command: `bidir experiment {exp.path}`", "", "Each cell's command:", ""]  # fmt: skip
    md += [f"- `{c.name}`: `{portable_text(' '.join(m.argv), exp.root)}`" for c in done
           if (m := meta_or_none(exp.run_dir(c))) and m.argv]  # fmt: skip
    return md + [""]
