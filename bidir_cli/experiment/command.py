"""``bidir experiment``: run the pending cells (or print their commands, verify one, rebuild the models, list the
evidence), then write the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..console import log
from ..errors import InputError
from .cells import Experiment
from .report import write_report
from .validate import validate


@dataclass(frozen=True)
class ExperimentOptions:
    jobs: int = 1
    plan: bool = False
    report_only: bool = False
    confirm: bool = False
    verify: str | None = None
    rebuild: bool = False
    rtol: float = 0.0
    scratch: Path | None = None
    evidence: bool = False
    cells: list[str] = field(default_factory=list)
    executor: str | None = None  # local or slurm (default: the experiment file's executor.name)
    detach: bool = False
    status: bool = False
    cancel: bool = False


def experiment_command(path: Path, output_dir: Path | None, options: ExperimentOptions) -> None:
    from . import confirm, rebuild, runner, slurm
    from .runner import Stop
    from .status import status_lines

    o = options
    modes = {"--plan": o.plan, "--report-only": o.report_only, "--confirm": o.confirm,
             "--verify": o.verify is not None, "--rebuild": o.rebuild, "--evidence": o.evidence,
             "--status": o.status, "--cancel": o.cancel}  # fmt: skip
    if sum(modes.values()) > 1:
        raise InputError(f"{', '.join(m for m, on in modes.items() if on)} exclude each other")
    if o.cells and not (o.rebuild or not any(modes.values())):
        raise InputError("--cell picks the cells to run or to --rebuild")
    if (o.rtol or o.scratch) and not o.rebuild:
        raise InputError("--rtol and --scratch go with --rebuild")
    exp = Experiment(path, output_dir, o.jobs, executor_name=o.executor)
    on_slurm = exp.executor_name == "slurm"
    if o.detach and not on_slurm:
        raise InputError("--detach submits to SLURM: give --executor slurm (or executor: {name: slurm} in the file)")
    if o.status:
        print("\n".join(status_lines(exp, (exp.spec.executor.max_parallel or 0) if on_slurm else exp.jobs)))
        return
    if o.cancel:
        jobs = slurm.cancel(exp)
        print(f"cancelled {', '.join(jobs)}" if jobs else "no job holds a cell of this experiment")
        return
    if not (o.report_only or o.evidence or o.rebuild):
        validate(exp)  # every cell's config, trainer arguments, data and suites, before anything is written
    if on_slurm and not (o.plan or o.report_only or o.evidence or o.verify or o.rebuild):
        slurm.require_slurm()
    if o.plan:
        print("# nothing to run: the experiment is complete" if exp.complete() else "\n".join(runner.plan(exp)))
        return
    if o.evidence:
        print("\n".join(str(p) for p in evidence(exp)))
        return
    if o.verify is not None:
        differences = confirm.verify(exp, o.verify)
        if differences:
            raise RuntimeError(f"cell {o.verify} did not reproduce: " + "; ".join(differences))
        print(f"cell {o.verify}: reproduced exactly (metrics, per-query scores, train log; timings excepted)")
        return
    if o.rebuild:
        print("\n".join(rebuild.rebuild(exp, o.cells, rtol=o.rtol, scratch=o.scratch)))
        return
    if o.cells:
        for name in o.cells:
            runner.run_cell(exp, confirm.find_cell(exp, name, "--cell"))
        return
    if o.confirm:
        confirm.confirm(exp)
    elif not o.report_only:
        if exp.complete():
            log(f"nothing to run: the experiment is complete{stopped_by_design(exp)}; its report is rewritten")
        with Stop() as stop:
            if on_slurm:
                if not slurm.run(exp, stop.event, detach=o.detach):
                    return
            else:
                runner.run(exp, stop.event)
    summary = write_report(exp)
    for suite, lines in summary.verdicts.items():
        print(f"{suite}:")
        print("\n".join(f"  {line.replace('**', '')}" for line in lines))
    print(f"report: {exp.dir / 'report.md'}")


def stopped_by_design(exp: Experiment) -> str:
    """For a sequential experiment, where each arm stopped (the reason a rerun runs nothing more)."""
    chosen = exp.chosen() if exp.spec.sequential else None
    if chosen is None:
        return ""
    from .sequential import analyse

    stops = [f"{arm} at look {s.stop_look} of {len(exp.spec.sequential.looks)} ({s.outcome.decision})"
             for arm, s in analyse(exp, chosen).items()]  # fmt: skip
    return f" (its sequential design stopped: {', '.join(stops)})"


REPORT_FILES = ("report.md", "summary.json", "plan.json", "confirmation.json", "rebuilt.md")
CELL_FILES = ("config.yaml", "meta.json", "train_log.jsonl", "rebuilt.json")


def evidence(exp: Experiment) -> list[Path]:
    """The results-only files of every complete cell and of the report (for ``git add``): what the report is
    rebuilt from. A cell still running or interrupted is left out; weights, checkpoints and logs always are."""
    found = []
    for cell in exp.cells():
        if exp.state(cell) != "done":
            continue
        run = exp.run_dir(cell)
        found += [run.path / name for name in CELL_FILES if (run.path / name).is_file()]
        found += run.results_files()
    found += [exp.dir / name for name in REPORT_FILES if (exp.dir / name).is_file()]
    return found + sorted(exp.dir.glob("*.png"))
