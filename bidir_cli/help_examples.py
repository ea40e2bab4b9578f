"""The examples under each command's ``--help`` (tests/test_cli.py parses every one as an invocation)."""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "train": [
        ("validate, print the resolved config and data sizes", "bidir train configs/quickstart.yaml --dry-run"),
        (
            "another seed and scale, into a folder of its own",
            "bidir train configs/quickstart.yaml --set training.seed=7 --set loss.scale=40 --output-dir runs/qs-seed7",
        ),
        ("continue from the last checkpoint", "bidir train configs/quickstart.yaml --resume"),
    ],
    "eval": [
        ("a run directory on a bundled suite", "bidir eval runs/quickstart-mnbrl --suite demo:wordnet-eval"),
        (
            "NanoBEIR, two datasets",
            "bidir eval sentence-transformers/all-MiniLM-L6-v2 --datasets NanoSciFact,NanoFiQA2018",
        ),
        (
            "a BEIR folder at two truncations (one encoding), with TREC run files",
            "bidir eval runs/x --suite path/to/beir-folder --truncate-dim 384,128 --run-file runs/x/run.trec",
        ),
        ("the bundled demo suites, listed", "bidir eval runs/quickstart-mnbrl --suite demo:"),
    ],
    "compare": [
        ("two runs, per query", "bidir compare runs/quickstart-mnrl runs/quickstart-mnbrl"),
        (
            "seeds, per run",
            "bidir compare --group mnrl='runs/exp/runs/mnrl-seed*' --group mnbrl='runs/exp/runs/mnbrl-seed*'",
        ),
        (
            "a markdown table and a bar chart of the differences",
            "bidir compare runs/a runs/b --format markdown --plot differences.png",
        ),
    ],
    "experiment": [
        ("run every cell, then the report", "bidir experiment configs/experiments/quickstart.yaml --jobs 2"),
        ("the commands of the pending cells", "bidir experiment configs/experiments/quickstart.yaml --plan"),
        (
            "submit to SLURM and return",
            "bidir experiment configs/experiments/quickstart.yaml --executor slurm --detach",
        ),
        ("where every cell stands", "bidir experiment configs/experiments/quickstart.yaml --status"),
        (
            "retrain one committed cell and compare it exactly",
            "bidir experiment configs/experiments/static.yaml --output-dir docs/experiments/static --verify mnbrl-seed3",
        ),
    ],
    "results-page": [
        (
            "two experiments on one page, a summary first",
            "bidir results-page docs/experiments/static docs/experiments/transformer --output docs/results.md",
        ),
    ],
    "mine": [
        (
            "one hard negative per pair, skipping the 10 most similar candidates",
            "bidir mine pairs.jsonl --model runs/quickstart-mnbrl --output mined/pairs.jsonl -n 1 --range-min 10",
        ),
        (
            "three negatives per pair as (anchor, positive, negative) rows",
            "bidir mine pairs.jsonl --model sentence-transformers/all-MiniLM-L6-v2 --output hard.jsonl --format triplet",
        ),
    ],
}


def examples(command: str) -> str:
    """A command's --help epilog: what each example does, then its command line (no square brackets: markup)."""
    pairs = EXAMPLES[command]
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"[dim]# {what}[/dim]\n{line}" for what, line in pairs)
