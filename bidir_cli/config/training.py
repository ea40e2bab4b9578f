"""The config's ``training`` section and how it becomes sentence-transformers' training arguments.

``training:`` speaks ``SentenceTransformerTrainingArguments``' own names: the fields that bidir types and
documents (:class:`TrainingConfig`) and every other argument, passed through unchanged and checked when the
arguments object is built (``--dry-run`` builds it too). This module holds the section's schema, the one table
of arguments that bidir sets itself (:data:`TRAINER_ARGS`: the value and where it comes from), the names a
config may not use (:data:`RENAMED`, :data:`REFUSED`), and the check that refuses them with the reason. Like
config.py it imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

if TYPE_CHECKING:
    from .schema import Config


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


# argument -> (where its value comes from, the value). These override the training section; a name here that is
# not a field of TrainingConfig is refused in a config, with this source as the reason.
TRAINER_ARGS: dict[str, tuple[str, Value]] = {
    "output_dir": ("bidir (the run directory's checkpoints/)", lambda c, r: r.output_dir),
    "data_seed": ("bidir (training.seed seeds initialisation, data order and dropout)", lambda c, r: c.training.seed),
    # the held-out loss sees as many in-batch negatives as the training loss
    "per_device_eval_batch_size": (
        "bidir (training.per_device_train_batch_size, so that the held-out loss has training's in-batch negatives)",
        lambda c, r: c.training.per_device_train_batch_size,
    ),
    "multi_dataset_batch_sampler": ("data.sampling", _multi_dataset_sampler),
    "save_strategy": ("bidir (checkpoints every training.save_steps, for --resume)", lambda c, r: "steps"),
    "eval_strategy": ("bidir (from data.eval_fraction and evaluation.during_training)", _eval_strategy),
    "prompts": ("model.query_prompt and model.document_prompt", lambda c, r: r.prompts),
    "resume_from_checkpoint": ("bidir (--resume continues the run directory's last checkpoint)", lambda c, r: None),
    # bidir pushes the model itself, once, after the final evaluation (hub.push_model): the trainer never does
    "push_to_hub": ("bidir (training.push_to_hub pushes once, after the final evaluation)", lambda c, r: False),
    "hub_strategy": ("bidir (one push, after the final evaluation)", lambda c, r: "end"),
    "hub_always_push": ("bidir (one push, after the final evaluation)", lambda c, r: False),
    "dataloader_pin_memory": ("bidir (on when a GPU is present)", lambda c, r: r.cuda),
    # Without a GPU, torchrun's processes only join one DDP group (gloo) when told to use the CPU.
    "use_cpu": ("bidir (on when no GPU is present)", lambda c, r: not r.cuda),
    "disable_tqdm": ("bidir (its own progress bar)", lambda c, r: True),
    # the non-finite-loss guard must see every loss
    "logging_nan_inf_filter": ("bidir (the non-finite-loss guard)", lambda c, r: False),
}


# bidir's names before it took sentence-transformers' own: refused, naming the new one
RENAMED: dict[str, str] = {
    "batch_size": "per_device_train_batch_size",
    "epochs": "num_train_epochs",
    "lr_scheduler": "lr_scheduler_type",
    "warmup_ratio": "warmup_steps (a float below 1 is a ratio of the total steps)",
    "precision": "bf16: true or fp16: true (fp32 is neither)",
    "dataloader_workers": "dataloader_num_workers",
}


# other names no config may use, and why
REFUSED: dict[str, str] = {
    "hub_token": "refused: set the HF_TOKEN environment variable instead (a token in the config would be written "
    "to config.yaml, meta.json and the model card)",
    "extra_args": "removed: give its keys directly under training (e.g. training.gradient_accumulation_steps: 2)",
}


def refused_training_keys(keys: list[str], typed: set[str]) -> dict[str, str]:
    """Each key of a training section that a config may not use, with its message (after ``training.<key>: ``).

    ``typed`` are the fields of TrainingConfig: a name in :data:`TRAINER_ARGS` that is one of them is bidir's
    to read (and the table says what the trainer gets instead), not the user's mistake.
    """
    problems = {}
    for key in keys:
        if key in RENAMED:
            problems[key] = f"renamed {RENAMED[key]}"
        elif key in REFUSED:
            problems[key] = REFUSED[key]
        elif key in TRAINER_ARGS and key not in typed:
            source = TRAINER_ARGS[key][0]
            bidir = source.startswith("bidir")
            problems[key] = f"set by {source}, not by the config" if bidir else f"set through {source}"
    return problems


class TrainingConfig(BaseModel):
    """Optimisation, checkpointing, trackers and the hub, in sentence-transformers' own names.

    Every key is an argument of ``SentenceTransformerTrainingArguments`` under its own name. The fields below are
    the ones bidir reads itself or gives another default; any other argument (``gradient_accumulation_steps``,
    ``optim``, ``max_grad_norm``, ``tf32``, ``torch_compile``, ...) is passed through as given and checked when
    the arguments object is built (``--dry-run`` builds it too). Refused, with the reason: bidir's old names
    (``batch_size``, ``epochs``, ...: the message names the new one), the arguments that bidir sets itself
    (``TRAINER_ARGS``: the output folder, save and evaluation strategy, the data seed, the hub
    push timing) and ``hub_token`` (use the ``HF_TOKEN`` environment variable).
    """

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, validate_assignment=True)

    seed: int = 42
    """Seed of model initialisation, data order and dropout (the trainer's ``data_seed`` follows it)."""
    per_device_train_batch_size: int = Field(64, ge=1)
    """Examples per batch on each device; the in-batch negatives come from it."""
    num_train_epochs: float = Field(1.0, gt=0)
    """Passes over the training data (ignored when ``max_steps`` is set)."""
    max_steps: int = Field(-1, ge=-1)
    """Stop after this many optimizer steps (-1: train ``num_train_epochs``)."""
    learning_rate: float = Field(2e-5, gt=0)
    """Peak learning rate."""
    lr_scheduler_type: str = "linear"
    """Learning-rate schedule after warm-up (transformers' names: linear, cosine, constant, ...)."""
    warmup_steps: int | float = Field(0.1, ge=0)
    """Warm-up of the learning rate from 0: an integer is a number of steps, a float below 1 a ratio of the total
    steps (transformers 5 has no ``warmup_ratio``; 0.1 warms up over the first 10%)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    bf16: bool = False
    """bf16 mixed precision (runs on a GPU or a CPU)."""
    fp16: bool = False
    """fp16 mixed precision (needs a CUDA device: the one precision rule of training and evaluation)."""
    batch_sampler: Literal["no_duplicates", "no_duplicates_hashed", "batch_sampler"] = "no_duplicates"
    """``no_duplicates`` keeps duplicate texts out of a batch (they would be false negatives);
    ``no_duplicates_hashed`` does it with less memory; ``batch_sampler`` is the plain sampler."""
    logging_steps: int = Field(10, ge=1)
    """Log (train_log.jsonl, progress bar, trackers) every this many steps."""
    save_steps: int = Field(500, ge=1)
    """Save a resumable checkpoint every this many steps."""
    save_total_limit: int | None = Field(2, ge=1)
    """Checkpoints kept (oldest deleted first); null keeps all."""
    eval_steps: int | None = Field(None, ge=1)
    """Report the held-out loss (``data.eval_fraction``) and run ``evaluation.during_training`` this often."""
    dataloader_num_workers: int = Field(0, ge=0)
    """Data-loading worker processes."""
    report_to: str | list[str] = "none"
    """Trackers that get the logs (loss, learning rate, the bidirectional losses' partition shares): ``none``,
    ``all`` (every one installed), or names of transformers' integrations (``tensorboard``, ``wandb``,
    ``mlflow``, ``trackio``, ...). TensorBoard writes into the run directory's ``tensorboard/``."""
    push_to_hub: bool = False
    """Push the saved model and its card to the Hugging Face Hub after the final evaluation (a failed push is
    reported in meta.json and does not fail the run; offline, the run says what it would have pushed)."""
    hub_model_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    """The repository to push to, ``owner/name`` (also the model id in the model card's usage example)."""
    hub_private_repo: bool | None = None
    """Create the repository as private (default: the hub's default, public)."""
    hub_revision: str | None = None
    """The branch to push to (default: main)."""

    @model_validator(mode="wrap")
    @classmethod
    def _names(cls, data: Any, handler: Any) -> TrainingConfig:
        """Refuse old, bidir-owned and secret names, each at its own location, with the section's other errors."""
        refused = refused_training_keys(list(data), set(cls.model_fields)) if isinstance(data, dict) else {}
        # the value is left out of the error: it may be a secret (hub_token)
        errors = [InitErrorDetails(type=PydanticCustomError("refused", message), loc=(key,), input=None)
                  for key, message in refused.items()]  # fmt: skip
        try:
            result = handler({k: v for k, v in data.items() if k not in refused} if refused else data)
        except ValidationError as e:
            errors += [InitErrorDetails(type=x["type"], loc=x["loc"], input=x["input"], ctx=x.get("ctx", {}))
                       for x in e.errors()]  # fmt: skip
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return result

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        problems = []
        if self.bf16 and self.fp16:
            problems.append("give bf16 or fp16, not both")
        if self.push_to_hub and self.hub_model_id is None:
            problems.append("push_to_hub needs hub_model_id (the repository, owner/name)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def precision(self) -> str:
        """``fp16``, ``bf16`` or ``fp32``: the name that the precision rule (``encode.precision_problem``) takes."""
        return "fp16" if self.fp16 else "bf16" if self.bf16 else "fp32"


def trainer_arguments(cfg: Config, context: RunContext) -> dict[str, Any]:
    """The keyword arguments of ``SentenceTransformerTrainingArguments``: the training section (typed fields and
    passed-through arguments alike, under their own names), then the table's values over it."""
    table = {name: value(cfg, context) for name, (_, value) in TRAINER_ARGS.items()}
    return cfg.training.model_dump(mode="json") | table
