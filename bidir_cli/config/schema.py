"""The YAML config of ``bidir train``: pydantic models, loading, and ``--set`` overrides.

Every field is documented where it is declared (the docstring under it). Unknown keys are errors
with a suggestion, and every problem in a file is reported at once, each with its location::

    quickstart.yaml: 2 problems
      loss.tempreature: unknown key (did you mean temperature?)
      training.learning_rate: Input should be a valid number
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InputError, did_you_mean
from ..losses import BIDIRECTIONAL_LOSSES as BIDIRECTIONAL
from ..losses import CACHED_LOSSES as CACHED
from ..losses import LOSS_NAMES, WRAPPER_NAMES, WRAPPER_OPTIONS, WRAPPERS
from .training import TrainingConfig

LossName = Literal[LOSS_NAMES]  # the loss registry's names


WrapperName = Literal[WRAPPER_NAMES]  # the wrapper registry's names


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class StaticModelConfig(Section):
    """A StaticEmbedding model (mean of trained token embeddings) built from a tokenizer, from scratch."""

    tokenizer: str
    """Hub id or local folder of a (fast) tokenizer, or ``train`` to learn a WordPiece tokenizer from the
    training texts at start (seconds; makes the run fully offline)."""
    dim: int = Field(256, ge=1)
    """Embedding dimension."""
    vocab_size: int = Field(16000, ge=100)
    """Vocabulary size when ``tokenizer: train``."""


class ModelConfig(Section):
    name_or_path: str | None = None
    """Hub id (e.g. ``sentence-transformers/all-MiniLM-L6-v2``) or local folder of a model to fine-tune."""
    static: StaticModelConfig | None = None
    """Build a StaticEmbedding model from scratch instead (give this or ``name_or_path``, not both)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of ``name_or_path``."""
    max_seq_length: int | None = Field(None, ge=1)
    """Truncate inputs to this many tokens (transformer models; default: the model's own)."""
    query_prompt: str | None = None
    """Prompt prepended to queries (anchors), in training and evaluation."""
    document_prompt: str | None = None
    """Prompt prepended to documents (positives and negatives), in training and evaluation."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.name_or_path is None) == (self.static is None):
            raise ValueError("give exactly one of model.name_or_path and model.static")
        return self


class ColumnsConfig(Section):
    """Which columns of a source are the anchor, the positive and the hard negatives."""

    anchor: str = "anchor"
    """Column holding the query / anchor text."""
    positive: str = "positive"
    """Column holding the positive document text."""
    negatives: list[str] | None = None
    """Columns holding hard negatives, in order. Default: every column named ``negative`` or ``negative_<n>``."""


class SourceConfig(Section):
    """One training source."""

    source: str
    """Local file (.jsonl, .json, .csv, .parquet) or folder of such files, a hub dataset id, or
    ``demo:<path>`` for data bundled with bidir. Relative paths are resolved against the config file's folder."""
    name: str | None = None
    """Name of the source in logs, meta.json and multi-dataset training (default: derived from ``source``)."""
    subset: str | None = None
    """Hub dataset configuration (subset) name."""
    split: str = "train"
    """Split to read (hub datasets; local files are one split)."""
    revision: str | None = None
    """Hub dataset revision (branch, tag or commit)."""
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    """Column mapping onto anchor / positive / negatives."""
    limit: int | None = Field(None, ge=1)
    """Use only the first ``limit`` rows."""
    sample: int | None = Field(None, ge=1)
    """Use a random sample of ``sample`` rows (all rows when the source has fewer), kept in file order. The
    draw depends only on ``sample_seed``, not on ``training.seed``: runs with different seeds see the same rows."""
    sample_seed: int = 0
    """Seed of the ``sample`` draw."""

    @model_validator(mode="after")
    def _one_subset(self) -> SourceConfig:
        if self.limit is not None and self.sample is not None:
            raise ValueError("give at most one of limit (the first rows) and sample (a random sample)")
        return self


class DataConfig(Section):
    train: list[SourceConfig] = Field(min_length=1)
    """One or more training sources; several train as a multi-dataset (one source per batch)."""
    sampling: Literal["proportional", "round_robin", "concatenate"] = "proportional"
    """How several sources train: ``proportional`` or ``round_robin`` draw each batch from one source
    (sentence-transformers' multi-dataset samplers); ``concatenate`` joins them into one dataset, so that
    a batch mixes sources (they must have the same number of hard-negative columns)."""
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of each source held out to report the loss on at ``training.eval_steps`` (0 = none)."""


class LossConfig(Section):
    name: LossName
    """``mnbrl`` (bidirectional), ``cmnbrl`` (bidirectional, GradCache), ``mnrl`` or ``cmnrl`` (baselines)."""
    scale: float | None = Field(None, gt=0)
    """Inverse temperature applied to similarities (default 20). Give this or ``temperature``."""
    temperature: float | None = Field(None, gt=0)
    """Temperature, ``1 / scale``."""
    similarity: Literal["cosine", "dot"] = "cosine"
    """Similarity function."""
    doc_doc_mask: Literal["same_query", "self"] | None = None
    """Bidirectional losses only: leave out of row i's doc->doc block every document of query i
    (``same_query``, default) or only its positive (``self``)."""
    mini_batch_size: int | None = Field(None, ge=1)
    """Cached losses only: texts embedded at once (default 32). Bounds memory, not the loss."""
    gather_across_devices: bool = False
    """Multi-GPU: all-gather embeddings so every process sees the whole world batch as negatives."""

    # The wrapper and its options: sentence-transformers' loss modifiers, their arguments under their own names.
    wrapper: WrapperName | None = None
    """Wrap the loss in a sentence-transformers loss modifier: ``matryoshka`` (MatryoshkaLoss: the loss at each of
    ``matryoshka_dims``, so embeddings can be truncated), ``adaptive_layer`` (AdaptiveLayerLoss: the loss at
    earlier layers too, so the model can be cut short) or ``matryoshka2d`` (Matryoshka2dLoss: both). Default:
    ``matryoshka`` when ``matryoshka_dims`` is given, else none. The layer wrappers need a transformer model and
    an uncached loss (mnbrl, mnrl): they cannot wrap a GradCache loss."""
    matryoshka_dims: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=1)
    """matryoshka, matryoshka2d: the embedding dimensions to train, largest first (e.g. [384, 256, 128, 64])."""
    matryoshka_weights: list[float] | None = None
    """matryoshka, matryoshka2d: the weight of each dimension's loss (default 1 each)."""
    n_dims_per_step: int | None = None
    """matryoshka, matryoshka2d: dimensions drawn per step (-1: all; default -1 for matryoshka, 1 for matryoshka2d)."""
    n_layers_per_step: int | None = None
    """adaptive_layer, matryoshka2d: earlier layers drawn per step besides the last (-1: all; default 1)."""
    last_layer_weight: float | None = Field(None, ge=0)
    """adaptive_layer, matryoshka2d: weight of the last layer's loss (default 1)."""
    prior_layers_weight: float | None = Field(None, ge=0)
    """adaptive_layer, matryoshka2d: weight of the earlier layers' losses (default 1)."""
    kl_div_weight: float | None = Field(None, ge=0)
    """adaptive_layer, matryoshka2d: weight of the KL divergence between earlier layers and the last (default 1)."""
    kl_temperature: float | None = Field(None, ge=0)
    """adaptive_layer, matryoshka2d: temperature of that KL divergence (default 0.3; 0 leaves the term out)."""
    layer_weighting: Literal["uniform", "log", "linear"] | None = None
    """adaptive_layer, matryoshka2d: how earlier layers' losses are weighted by depth (default uniform)."""

    @model_validator(mode="after")
    def _options_apply(self) -> LossConfig:
        problems = []
        if self.scale is not None and self.temperature is not None and abs(self.scale * self.temperature - 1) > 1e-9:
            problems.append("give scale or temperature, not both")
        if self.doc_doc_mask is not None and self.name not in BIDIRECTIONAL:
            problems.append(f"doc_doc_mask applies only to the bidirectional losses (mnbrl, cmnbrl), not {self.name}")
        if self.mini_batch_size is not None and self.name not in CACHED:
            problems.append(f"mini_batch_size applies only to the cached losses (cmnbrl, cmnrl), not {self.name}")
        wrapper = self.resolved_wrapper
        spec = WRAPPERS[wrapper] if wrapper else None
        for option in WRAPPER_OPTIONS:
            if getattr(self, option) is not None and (spec is None or option not in spec.options):
                takers = ", ".join(name for name, w in WRAPPERS.items() if option in w.options)
                problems.append(f"{option} applies only to the wrappers {takers}, not {wrapper or 'none'}")
        if spec is not None:
            problems += [f"wrapper {wrapper} needs {o}" for o in spec.required if getattr(self, o) is None]
            if self.name in CACHED and not spec.wraps_cached:
                problems.append(
                    f"wrapper {wrapper} cannot wrap a cached loss ({self.name}): it runs the loss once per layer, "
                    f"which GradCache's deferred backward does not allow; use {self.name[1:]}, or wrapper matryoshka"
                )
        dims, weights = self.matryoshka_dims, self.matryoshka_weights
        if dims and weights and len(weights) != len(dims):
            problems.append("matryoshka_weights needs one weight per dimension of matryoshka_dims")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def resolved_wrapper(self) -> str | None:
        """The wrapper: ``wrapper``, or ``matryoshka`` when only ``matryoshka_dims`` is given."""
        return self.wrapper or ("matryoshka" if self.matryoshka_dims else None)

    @property
    def resolved_scale(self) -> float:
        if self.temperature is not None:
            return 1.0 / self.temperature
        return 20.0 if self.scale is None else self.scale

    def settings(self) -> dict[str, Any]:
        """The loss settings that apply to this loss, defaults filled in (for build_loss and meta.json)."""
        out: dict[str, Any] = {
            "name": self.name,
            "scale": self.resolved_scale,
            "similarity": self.similarity,
            "gather_across_devices": self.gather_across_devices,
            "matryoshka_dims": self.matryoshka_dims,
            "wrapper": self.resolved_wrapper,
        }
        # the wrapper's options that were given; the others keep the wrapper's own defaults
        out |= {k: getattr(self, k) for k in WRAPPER_OPTIONS if getattr(self, k) is not None and k != "matryoshka_dims"}
        if self.name in BIDIRECTIONAL:
            out["doc_doc_mask"] = self.doc_doc_mask or "same_query"
        if self.name in CACHED:
            out["mini_batch_size"] = self.mini_batch_size or 32
        return out


class EvaluationConfig(Section):
    suite: str | None = None
    """What ``bidir eval`` runs on the final model: ``nanobeir``, a BEIR folder, a suite YAML, or
    ``demo:<path>``; relative paths resolve against the config file's folder. Null: no evaluation."""
    datasets: list[str] | None = None
    """Subset of the suite's datasets."""
    batch_size: int = Field(64, ge=1)
    """Encoding batch size."""
    during_training: bool = False
    """Also evaluate at ``training.eval_steps`` (logged to train_log.jsonl)."""


class Config(Section):
    """A training run: model, data, loss, training settings, and the evaluation after training."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Run name: the run directory is ``runs/<name>`` unless ``--output-dir`` says otherwise."""
    model: ModelConfig
    """The model to train."""
    data: DataConfig
    """Training data."""
    loss: LossConfig
    """The loss."""
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    """Optimisation and checkpointing."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """Evaluation of the trained model."""

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        problems = []
        if self.loss.name in CACHED and self.model.static is not None:
            problems.append(
                f"loss.name: {self.loss.name} is a cached loss, which cannot train a StaticEmbedding model "
                f"(model.static); use {self.loss.name[1:]} instead"
            )
        if self.data.eval_fraction > 0 and self.training.eval_steps is None:
            problems.append("training.eval_steps: needed when data.eval_fraction > 0")
        if self.evaluation.during_training and (self.training.eval_steps is None or self.evaluation.suite is None):
            problems.append("evaluation.during_training: needs training.eval_steps and evaluation.suite")
        wrapper = self.loss.resolved_wrapper
        if wrapper and WRAPPERS[wrapper].needs_layers and self.model.static is not None:
            problems.append(
                f"loss.wrapper: {wrapper} needs a transformer model (model.name_or_path); "
                "a StaticEmbedding model (model.static) has no layers"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _known_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names of the section that ``path`` (a pydantic error location) points into."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = _section_type(field.annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _section_type(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def format_errors(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem: ``section.field: message``, with a suggestion for unknown keys of ``model``
    (default: :class:`Config`)."""
    lines = []
    for err in error.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = _known_keys(model or Config, loc[:-1])
            hint = did_you_mean(str(loc[-1]), known) or (f" (known keys: {', '.join(known)})" if known else "")
            lines.append(f"{where}: unknown key{hint}")
        elif err["type"] == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.extend(f"{where + ': ' if loc else ''}{m}" for m in message.split("\n"))
        else:
            lines.append(f"{where}: {err['msg']}")
    return lines


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error naming both lines (PyYAML
    keeps the last silently: two arms of one name would merge, or one vanish)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (lines {seen[key]} and {line})", key_node.start_mark
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (:class:`UniqueKeyLoader`): every YAML file bidir reads."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, with the line and column of a syntax error (a duplicate key among them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a config file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        data = load_yaml(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputError(f"{path}: YAML syntax error at {where}{e.problem or e}") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: YAML syntax error: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of sections (name, model, data, loss, ...)")
    return data


_INDEX = re.compile(r"^\d+$")


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key.path=value``; the value is parsed as YAML and typed by the schema later.

    A list element is named by its index (``data.train.0.sample``) or ``*`` for every element
    (``data.train.*.sample=800`` samples 800 rows of each source).
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set {assignment!r}: expected key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    _set_path(data, key.strip().split("."), 0, value, key.strip())


def _set_path(node: Any, parts: list[str], i: int, value: Any, key: str) -> None:
    part, last, where = parts[i], i == len(parts) - 1, ".".join(parts[: i + 1])
    if isinstance(node, list):
        if part == "*":
            if last:
                raise InputError(f"--set {key}: {where} names every element; set a key inside them")
            for element in node:
                _set_path(element, parts, i + 1, value, key)
            return
        if not _INDEX.match(part) or int(part) >= len(node):
            raise InputError(f"--set {key}: {where} is not an index of a list of {len(node)} (or * for each)")
        if last:
            node[int(part)] = value
        else:
            _set_path(node[int(part)], parts, i + 1, value, key)
    elif isinstance(node, dict):
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            _set_path(node[part], parts, i + 1, value, key)
    else:
        raise InputError(f"--set {key}: {'.'.join(parts[:i])} is a value, not a section")


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load, override and validate a config file; every problem is reported at once as an InputError."""
    path = Path(path)
    data = read_yaml(path)
    for assignment in overrides:
        apply_override(data, assignment)
    return validate_config(data, str(path))


def validate_config(data: dict[str, Any], origin: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        problems = format_errors(e)
        if len(problems) == 1:
            raise InputError(f"{origin}: {problems[0]}") from None
        raise InputError(f"{origin}: {len(problems)} problems", problems=problems) from None


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML (what ran): defaults filled in, loss options resolved."""
    data = config.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
