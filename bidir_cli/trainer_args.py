"""How a config becomes sentence-transformers' training arguments: one table, used both to build
``SentenceTransformerTrainingArguments`` and to refuse ``training.extra_args`` keys that bidir sets.

Each entry names where an argument's value comes from: a field of the config, or bidir itself (with
the reason). ``training.extra_args`` passes everything else through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config


@dataclass(frozen=True)
class RunContext:
    """What the arguments need beyond the config: known only when a run is about to start."""

    output_dir: str
    prompts: dict[str, str] | None
    cuda: bool


Value = Callable[["Config", RunContext], Any]


def _eval_strategy(c: Config, r: RunContext) -> str:
    return "steps" if c.data.eval_fraction > 0 or c.evaluation.during_training else "no"


def _multi_dataset_sampler(c: Config, r: RunContext) -> str:
    # concatenate joins the sources into one dataset before the trainer sees them
    return "proportional" if c.data.sampling == "concatenate" else c.data.sampling


# argument -> (where its value comes from, the value)
TRAINER_ARGS: dict[str, tuple[str, Value]] = {
    "output_dir": ("bidir (the run directory's checkpoints/)", lambda c, r: r.output_dir),
    "seed": ("training.seed", lambda c, r: c.training.seed),
    "data_seed": ("training.seed", lambda c, r: c.training.seed),
    "per_device_train_batch_size": ("training.batch_size", lambda c, r: c.training.batch_size),
    "per_device_eval_batch_size": ("training.batch_size", lambda c, r: c.training.batch_size),
    "num_train_epochs": ("training.epochs", lambda c, r: c.training.epochs),
    "max_steps": ("training.max_steps", lambda c, r: c.training.max_steps or -1),
    "learning_rate": ("training.learning_rate", lambda c, r: c.training.learning_rate),
    "lr_scheduler_type": ("training.lr_scheduler", lambda c, r: c.training.lr_scheduler),
    # a float below 1 is a ratio of the total steps (transformers 5 has no warmup_ratio argument)
    "warmup_steps": ("training.warmup_ratio", lambda c, r: c.training.warmup_ratio),
    "weight_decay": ("training.weight_decay", lambda c, r: c.training.weight_decay),
    "fp16": ("training.precision", lambda c, r: c.training.precision == "fp16"),
    "bf16": ("training.precision", lambda c, r: c.training.precision == "bf16"),
    "batch_sampler": ("training.batch_sampler", lambda c, r: c.training.batch_sampler),
    "multi_dataset_batch_sampler": ("data.sampling", _multi_dataset_sampler),
    "logging_steps": ("training.logging_steps", lambda c, r: c.training.logging_steps),
    "save_strategy": ("bidir (checkpoints every training.save_steps, for --resume)", lambda c, r: "steps"),
    "save_steps": ("training.save_steps", lambda c, r: c.training.save_steps),
    "save_total_limit": ("training.save_total_limit", lambda c, r: c.training.save_total_limit),
    "eval_strategy": ("bidir (from data.eval_fraction and evaluation.during_training)", _eval_strategy),
    "eval_steps": ("training.eval_steps", lambda c, r: c.training.eval_steps),
    "dataloader_num_workers": ("training.dataloader_workers", lambda c, r: c.training.dataloader_workers),
    "prompts": ("model.query_prompt and model.document_prompt", lambda c, r: r.prompts),
    "report_to": ("bidir (train_log.jsonl is its log)", lambda c, r: "none"),
    "dataloader_pin_memory": ("bidir (on when a GPU is present)", lambda c, r: r.cuda),
    # Without a GPU, torchrun's processes only join one DDP group (gloo) when told to use the CPU.
    "use_cpu": ("bidir (on when no GPU is present)", lambda c, r: not r.cuda),
    "disable_tqdm": ("bidir (its own progress bar)", lambda c, r: True),
    # the non-finite-loss guard must see every loss
    "logging_nan_inf_filter": ("bidir (the non-finite-loss guard)", lambda c, r: False),
}


def trainer_arguments(cfg: Config, context: RunContext) -> dict[str, Any]:
    """The keyword arguments of ``SentenceTransformerTrainingArguments``: the table's, then ``extra_args``."""
    return {name: value(cfg, context) for name, (_, value) in TRAINER_ARGS.items()} | cfg.training.extra_args


def clashing_extra_args(extra_args: dict[str, Any]) -> list[str]:
    """One message per ``training.extra_args`` key that the table sets, saying where to set it instead."""
    problems = []
    for name in sorted(set(extra_args) & set(TRAINER_ARGS)):
        source = TRAINER_ARGS[name][0]
        if source.startswith("bidir"):
            problems.append(f"training.extra_args: {name} is set by {source}, not by the config")
        else:
            problems.append(f"training.extra_args: {name} must be set through the training section ({source})")
    return problems
