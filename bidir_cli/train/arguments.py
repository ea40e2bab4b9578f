"""The trainer's arguments: sentence-transformers' ``SentenceTransformerTrainingArguments`` built from the
config's ``training`` section and the one table of arguments bidir sets itself (``config/training.py``), checked
before any run directory exists; and the trackers of ``training.report_to``, refused when not installed."""

from __future__ import annotations

from ..config.schema import Config
from ..config.training import RunContext
from ..errors import InputError, did_you_mean
from ..runs.rundir import RunDir


def training_arguments(cfg: Config, data, run: RunDir):  # data: TrainingData or None
    """SentenceTransformerTrainingArguments from the training section and ``trainer_args.TRAINER_ARGS``.

    Built before the run directory exists, so a bad argument (an unknown name, a bad value, a tracker that is
    not installed) fails with exit 2 and leaves nothing behind. Without ``data`` (an experiment checking its cells
    before any runs) the document prompts of the data's columns are left out.
    """
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments

    from ..config.training import trainer_arguments

    problems = trainer_argument_problems(cfg)
    if problems:
        raise InputError(problems[0] if len(problems) == 1 else f"{len(problems)} problems", problems=problems)
    prompts = {}
    if cfg.model.query_prompt:
        prompts["anchor"] = cfg.model.query_prompt
    if cfg.model.document_prompt and data is not None:
        columns = {c for s in data.sources for c in s.dataset.column_names if c != "anchor"}
        prompts |= {c: cfg.model.document_prompt for c in columns}
    context = RunContext(output_dir=str(run.checkpoints), prompts=prompts or None, cuda=torch.cuda.is_available())
    try:
        return SentenceTransformerTrainingArguments(**trainer_arguments(cfg, context))
    except (TypeError, ValueError) as e:
        raise InputError(f"training: invalid trainer arguments: {e}") from None


def trainer_argument_problems(cfg: Config) -> list[str]:
    """The training section's passed-through keys that SentenceTransformerTrainingArguments does not take, and
    trackers that are not installed: what can be known of the arguments without the data."""
    import dataclasses

    from sentence_transformers import SentenceTransformerTrainingArguments

    known = sorted(f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init)
    problems = [
        f"training.{key}: not an argument of SentenceTransformerTrainingArguments{did_you_mean(key, known)}"
        for key in cfg.training.model_extra or {}
        if key not in known
    ]
    return problems + tracker_problems(cfg.training.report_to)


def tracker_problems(report_to: str | list[str]) -> list[str]:
    """``training.report_to`` names that transformers does not know or whose package is not installed (the
    trainer would only find out when it starts, after the run directory exists)."""
    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    installed = get_available_reporting_integrations()
    problems = []
    for name in [report_to] if isinstance(report_to, str) else report_to:
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            problems.append(f"training.report_to: {name} is not a tracker that transformers knows ({known})")
        elif name not in installed:
            problems.append(f"training.report_to: {name} is not installed (pip install {name})")
    return problems
