"""The ``bidir`` command line: each command parses, calls one function, renders.

Heavy ML imports happen inside the commands, so ``bidir --help`` is instant. Results go to standard
output; progress, diagnostics and errors to standard error. Exit status: 0 success, 1 a failure
while running, 2 a bad invocation, config or input (one message naming the field, file or row).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .compare.render import FORMATS
from .help_examples import examples

app = typer.Typer(
    name="bidir",
    help="Train, evaluate and compare sentence-embedding models: the GTE bidirectional loss against in-batch negatives.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}

# --debug is accepted before the command (bidir --debug train ...) and after it (bidir train ... --debug).
Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"bidir {version('bidir')}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Debug = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print bidir's version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


def run_command(fn: Callable[[], Any], debug: bool = False) -> Any:
    """Run a command body, turning errors into one line on standard error and the exit status."""
    from .console import quiet_progress_bars
    from .errors import InputError, Interrupted

    _state["debug"] = _state["debug"] or debug
    quiet_progress_bars()
    try:
        return fn()
    except InputError as e:
        if _state["debug"]:
            traceback.print_exc()
        print(f"bidir: error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    except Interrupted as e:
        print(f"bidir: interrupted: {e}", file=sys.stderr)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        print("bidir: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, status 1
        if _state["debug"]:
            traceback.print_exc()
        print(f"bidir: failed: {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
        raise typer.Exit(1) from None


@app.command(
    epilog=examples("train"),
)
def train(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Run directory (default: runs/<name>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an existing run from its last checkpoint.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate, print the resolved config and dataset sizes; train nothing.")
    ] = False,
    untrained: Annotated[
        bool,
        typer.Option("--untrained", help="Save the model as built, before its first step; train and evaluate nothing."),
    ] = False,
    debug: Debug = False,
) -> None:
    """Train a model from a YAML config into a run directory."""

    def body() -> None:
        from .train.recipe import train_command

        train_command(config, overrides=set_ or [], output_dir=output_dir, resume=resume, overwrite=overwrite,
                      dry_run=dry_run, untrained=untrained)  # fmt: skip

    run_command(body, debug)


@app.command(
    "eval",
    epilog=examples("eval"),
)
def eval_(
    model: Annotated[str, typer.Argument(help="Hub id, model folder, or run directory (then evaluates run/model).")],
    suite: Annotated[
        str,
        typer.Option("--suite", help="'nanobeir', a NanoBEIR folder, a BEIR folder, a suite YAML file, or demo:NAME."),
    ] = "nanobeir",
    datasets: Annotated[str | None, typer.Option("--datasets", help="Comma-separated subset of the suite.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Encoding batch size.")] = 64,
    truncate_dim: Annotated[
        str | None,
        typer.Option(
            "--truncate-dim",
            help="Truncate embeddings (Matryoshka models); several, e.g. 384,128,64, share one encoding and "
            "each gets its own results file.",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Results JSON file to write.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="'bidir', or 'mteb' to cross-check with mteb.")] = "bidir",
    precision: Annotated[
        str, typer.Option("--precision", help="Encoding precision: fp32, bf16, or fp16 (CUDA only).")
    ] = "fp32",
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Corpus-embedding cache (default: ~/.cache/bidir/embeddings).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")] = False,
    graded: Annotated[
        bool,
        typer.Option(
            "--graded",
            help="Show nDCG@10 with graded relevance (ndcg@10_graded, always saved); graded qrels in --run-file.",
        ),
    ] = False,
    query_prompt: Annotated[
        str | None,
        typer.Option("--query-prompt", help="Prepend this to every query (replaces the model's 'query' prompt)."),
    ] = None,
    document_prompt: Annotated[
        str | None,
        typer.Option(
            "--document-prompt", help="Prepend this to every document (replaces the model's 'document' prompt)."
        ),
    ] = None,
    max_seq_length: Annotated[
        int | None, typer.Option("--max-seq-length", min=1, help="Truncate inputs to this many tokens.")
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow a hub model's own code to run when it loads.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, cuda:1, mps (default: a GPU if there is one).")
    ] = None,
    model_backend: Annotated[
        str, typer.Option("--model-backend", help="sentence-transformers' backend: torch, onnx or openvino.")
    ] = "torch",
    run_file: Annotated[
        Path | None,
        typer.Option("--run-file", help="Write the rankings in TREC format (top 100), and the qrels beside them."),
    ] = None,
    debug: Debug = False,
) -> None:
    """Evaluate a model on NanoBEIR or any BEIR-format suite (nDCG@10 and more, per query)."""

    def body() -> None:
        from .eval.command import eval_command

        eval_command(model, suite=suite, datasets=datasets, batch_size=batch_size, truncate_dim=truncate_dim,
                     output=output, backend=backend, precision=precision, cache_dir=cache_dir,
                     use_cache=not no_cache, graded=graded, query_prompt=query_prompt,
                     document_prompt=document_prompt, max_seq_length=max_seq_length,
                     trust_remote_code=trust_remote_code, device=device, model_backend=model_backend,
                     run_file=run_file)  # fmt: skip

    run_command(body, debug)


@app.command(
    epilog=examples("compare"),
)
def compare(
    inputs: Annotated[list[str] | None, typer.Argument(help="Run directories or results JSON files.")] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="A named group of runs (seeds): NAME=GLOB (repeatable).")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Column to compare against (default: first).")
    ] = None,
    metric: Annotated[str, typer.Option("--metric", help="Metric to compare.")] = "ndcg@10",
    format_: Annotated[str, typer.Option("--format", help=f"Output format: {', '.join(FORMATS)}.")] = "table",
    plot: Annotated[Path | None, typer.Option("--plot", help="Save a grouped bar chart (PNG).")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="Which eval/<suite>.json of a run to read.")] = None,
    permutations: Annotated[
        int, typer.Option("--permutations", min=100, help="Randomization-test permutations.")
    ] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the randomization test.")] = 0,
    truncate_dim: Annotated[
        int | None,
        typer.Option("--truncate-dim", min=1, help="Read a run's results at this truncation (default: full)."),
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="Read a run's results of this precision (default: fp32).")
    ] = "fp32",
    backend: Annotated[str, typer.Option("--backend", help="Read a run's results of this backend.")] = "bidir",
    model_backend: Annotated[
        str, typer.Option("--model-backend", help="Read a run's results of this model backend (torch, onnx, openvino).")
    ] = "torch",
    mixed_settings: Annotated[
        bool,
        typer.Option(
            "--mixed-settings", help="Compare results evaluated under different settings (listed in the table)."
        ),
    ] = False,
    target_diff: Annotated[
        float,
        typer.Option("--target-diff", help="The difference that 'runs needed' (per side, for 80% power) is for."),
    ] = 0.01,
    debug: Debug = False,
) -> None:
    """Compare runs: per dataset and for the mean, each column against the baseline with a test and its interval.

    Groups of several runs are tested at the run level (run-to-run variation and query sampling);
    a single run on a side gets the paired per-query test (query sampling only).
    """

    def body() -> None:
        from .compare.command import compare_command
        from .runs.settings import EvalSettings

        # Other prompts or lengths are read by naming their results file (eval/<suite>--len128.json).
        settings = EvalSettings(truncate_dim, precision, backend, model_backend)
        compare_command(inputs or [], groups=group or [], baseline=baseline, metric=metric, fmt=format_, plot=plot,
                        suite=suite, permutations=permutations, seed=seed, settings=settings,
                        mixed_settings=mixed_settings, target_diff=target_diff)  # fmt: skip

    run_command(body, debug)


@app.command(
    epilog=examples("experiment"),
)
def experiment(
    file: Annotated[Path, typer.Argument(help="Experiment YAML file (arms x seeds of a train config).")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Output folder (default: runs/experiments/<name>).")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Cells run at once, as separate processes.")] = 1,
    plan: Annotated[bool, typer.Option("--plan", help="Print one command per pending cell; run nothing.")] = False,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Build the report from the completed cells; run nothing.")
    ] = False,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Evaluate every cell once on the held-out suites (after completion).")
    ] = False,
    verify: Annotated[
        str | None, typer.Option("--verify", help="Retrain this cell in a temporary folder and compare exactly.")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild the models of complete cells (not committed) exactly.")
    ] = False,
    rtol: Annotated[
        float, typer.Option("--rtol", help="--rebuild: accept a train log within this relative difference.")
    ] = 0.0,
    scratch: Annotated[Path | None, typer.Option("--scratch", help="--rebuild: keep rebuilt runs here.")] = None,
    evidence: Annotated[
        bool, typer.Option("--evidence", help="List the results-only files of complete cells and the report.")
    ] = False,
    cell: Annotated[
        list[str] | None, typer.Option("--cell", help="Only this cell (repeatable): run or --rebuild it.")
    ] = None,
    executor: Annotated[
        Literal["local", "slurm"] | None,
        typer.Option("--executor", help="local or slurm (default: the file's executor.name, else local)."),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="SLURM: submit the current stage and return; rerun to advance.")
    ] = False,
    status: Annotated[bool, typer.Option("--status", help="Print where every cell stands; run nothing.")] = False,
    cancel: Annotated[bool, typer.Option("--cancel", help="scancel every job that holds a cell.")] = False,
    debug: Debug = False,
) -> None:
    """Run an experiment: arms x seeds, each cell an ordinary run, then a report with the verdict. Ctrl-C starts no
    new cell, stops the running ones and says how to resume (rerun the same command)."""

    def body() -> None:
        from .experiment.command import ExperimentOptions, experiment_command

        options = ExperimentOptions(jobs=jobs, plan=plan, report_only=report_only, confirm=confirm, verify=verify,
                                    rebuild=rebuild, rtol=rtol, scratch=scratch, evidence=evidence, cells=cell or [],
                                    executor=executor, detach=detach, status=status, cancel=cancel)  # fmt: skip
        experiment_command(file, output_dir, options)

    run_command(body, debug)


@app.command(
    "results-page",
    epilog=examples("results-page"),
)
def results_page(
    experiments: Annotated[
        list[str],
        typer.Argument(help="Experiment output folders (with report.md), or FILE=FOLDER (rebuilt if complete)."),
    ],
    output: Annotated[Path | None, typer.Option("--output", help="Write the page here (default: stdout).")] = None,
    title: Annotated[str, typer.Option("--title", help="The page's title.")] = "Results",
    section: Annotated[
        list[Path] | None,
        typer.Option(
            "--section", help="A markdown file to include after the summary (repeatable), e.g. a script's output."
        ),
    ] = None,
    table_into: Annotated[
        Path | None,
        typer.Option("--table-into", help="Also put the summary's table into this file, between its table markers."),
    ] = None,
    debug: Debug = False,
) -> None:
    """Assemble several experiments into one page (docs/results.md): a summary, sections, each report."""

    def body() -> None:
        from .experiment.page import write_results_page

        text = write_results_page(experiments, title, section or [], output, table_into)
        if output is None:
            sys.stdout.write(text)

    run_command(body, debug)


@app.command(
    epilog=examples("mine"),
)
def mine(
    data: Annotated[
        str, typer.Argument(help="(anchor, positive) pairs: .jsonl/.json/.csv/.parquet file, folder or hub id.")
    ],
    model: Annotated[str, typer.Option("--model", help="Hub id, model folder, or run directory (then run/model).")],
    output: Annotated[Path, typer.Option("--output", help="The .jsonl file to write (and OUT.mined.json beside it).")],
    num_negatives: Annotated[int, typer.Option("--num-negatives", "-n", help="Negatives per pair.")] = 3,
    range_min: Annotated[int, typer.Option("--range-min", help="Skip this many most similar candidates.")] = 0,
    range_max: Annotated[
        int | None, typer.Option("--range-max", help="Consider only this many most similar candidates.")
    ] = None,
    absolute_margin: Annotated[
        float | None, typer.Option("--absolute-margin", help="Keep candidates scoring this much below the positive.")
    ] = None,
    relative_margin: Annotated[
        float | None,
        typer.Option("--relative-margin", help="Keep candidates scoring at most positive - |positive| * this."),
    ] = None,
    max_score: Annotated[
        float | None, typer.Option("--max-score", help="Keep candidates scoring at most this.")
    ] = None,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Keep candidates scoring at least this.")
    ] = None,
    sampling: Annotated[
        str, typer.Option("--sampling", help="'top' (the most similar left) or 'random' (a seeded draw).")
    ] = "top",
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sampling random.")] = 0,
    corpus: Annotated[
        str | None, typer.Option("--corpus", help="More candidate documents: a file, folder or BEIR folder.")
    ] = None,
    corpus_column: Annotated[str, typer.Option("--corpus-column", help="The --corpus column holding text.")] = "text",
    anchor_column: Annotated[str, typer.Option("--anchor-column", help="DATA's anchor column.")] = "anchor",
    positive_column: Annotated[str, typer.Option("--positive-column", help="DATA's positive column.")] = "positive",
    format_: Annotated[
        str, typer.Option("--format", help="'n-tuple' (negative_1..n, a row a pair) or 'triplet' (a row a negative).")
    ] = "n-tuple",
    scores: Annotated[bool, typer.Option("--scores", help="Add a scores column (positive, then negatives).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts encoded at once.")] = 32,
    search_batch_size: Annotated[
        int, typer.Option("--search-batch-size", help="Queries scored at once (bounds memory).")
    ] = 16384,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if bidir mined it (it has its .mined.json).")
    ] = False,
    debug: Debug = False,
) -> None:
    """Mine hard negatives for (anchor, positive) pairs with sentence-transformers' miner, for bidir train."""

    def body() -> None:
        from .data.mining import MineOptions, mine_command

        options = MineOptions(num_negatives=num_negatives, range_min=range_min, range_max=range_max,
                              absolute_margin=absolute_margin, relative_margin=relative_margin,
                              max_score=max_score, min_score=min_score, sampling_strategy=sampling, seed=seed,
                              batch_size=batch_size, search_batch_size=search_batch_size, output_format=format_,
                              output_scores=scores)  # fmt: skip
        mine_command(data, model=model, output=output, options=options, corpus=corpus, corpus_column=corpus_column,
                     anchor_column=anchor_column, positive_column=positive_column, overwrite=overwrite)  # fmt: skip

    run_command(body, debug)


def invoke(args: list[str]) -> int:
    """``bidir ARGS`` in this process; returns the exit status (the in-process executor of ``bidir experiment``)."""
    saved = dict(_state)
    try:
        return typer.main.get_command(app).main(args, prog_name="bidir", standalone_mode=False) or 0
    except typer.TyperException as e:  # a usage error (typer's own click exceptions), as the command line prints it
        e.show()
        return e.exit_code
    finally:
        _state.update(saved)


if __name__ == "__main__":
    app()
