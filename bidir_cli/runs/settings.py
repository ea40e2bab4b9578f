"""The evaluation settings that change a result's numbers, and the results file they name.

Which settings a result was computed under decides where it is stored and what it may be merged with.
The *number settings* (:data:`NUMBER_SETTINGS`: the suite, truncation, prompts, maximum sequence length,
precision, backend, model backend, similarity, and which of the model's own prompts and length the
command line overrode) change the numbers; device, batch size, ``--trust-remote-code`` and the embedding
cache do not. A run keeps one file per suite and number settings (:meth:`EvalSettings.stem`), the name showing
each flag that differs from its default, in this order::

    eval/<suite>.json                   full dimension, fp32, the bidir backend on torch, the model's own
                                        prompts and maximum sequence length
    eval/<suite>--dim64.json            --truncate-dim 64 (--truncate-dim 384,64 writes --dim384 and --dim64)
    eval/<suite>--dim64--bf16.json      --truncate-dim 64 --precision bf16
    eval/<suite>--mteb.json             --backend mteb
    eval/<suite>--openvino.json         --model-backend openvino (onnx: --onnx)
    eval/<suite>--len128.json           --max-seq-length 128
    eval/<suite>--p1a2b3c4d.json        --query-prompt and/or --document-prompt: ``p`` and the first 8 hex
                                        digits of the SHA-256 of the prompts given (:func:`prompt_key`)
    eval/<suite>--2.json                the same settings but another model fingerprint (or a setting that the
                                        name does not show, such as the model's own prompts or per-dataset
                                        prompts of a suite file): never merged with the first

:class:`EvalSettings` is the one value for the flags that name a file; :meth:`EvalSettings.stem` is the one way
to a file name and :meth:`EvalSettings.from_stem` the one way back. Nothing else builds or parses these names.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

# The settings that change the numbers (with the suite): results that differ in one are never merged.
# ``prompts`` and ``max_seq_length`` are the values used; ``overrides`` says which of them the command line
# set (``--query-prompt``, ``--document-prompt``, ``--max-seq-length``), and names the file.
NUMBER_SETTINGS = (
    "truncate_dim",
    "prompts",
    "max_seq_length",
    "precision",
    "backend",
    "model_backend",
    "similarity",
    "overrides",
)
PROMPT_FLAGS = ("query_prompt", "document_prompt")
PRECISIONS, BACKENDS, MODEL_BACKENDS = ("fp32", "bf16", "fp16"), ("bidir", "mteb"), ("torch", "onnx", "openvino")


@dataclass(frozen=True)
class EvalSettings:
    """The flags of ``bidir eval`` that change the numbers and name the results file (a value: frozen).

    ``overrides`` are the prompts and maximum length the command line set, as ``(flag, value)`` pairs in flag
    order; a name shows the prompts only as the key of their hash, so settings read back from a name hold them
    as ``(("prompts", KEY),)``."""

    truncate_dim: int | None = None
    precision: str = "fp32"
    backend: str = "bidir"
    model_backend: str = "torch"
    overrides: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_record(cls, settings: dict[str, Any]) -> EvalSettings:
        """The settings a results file recorded (``settings`` of its JSON; a flag absent from an older file is
        at its default)."""
        overrides = settings.get("overrides") or {}
        return cls(
            truncate_dim=settings.get("truncate_dim"),
            precision=settings.get("precision", "fp32"),
            backend=settings.get("backend", "bidir"),
            model_backend=settings.get("model_backend", "torch"),
            overrides=tuple(sorted(overrides.items())),
        )

    def record(self) -> dict[str, Any]:
        """The keys a results file records them under."""
        return {"truncate_dim": self.truncate_dim, "precision": self.precision, "backend": self.backend,
                "model_backend": self.model_backend, "overrides": dict(self.overrides)}  # fmt: skip

    def parts(self) -> list[str]:
        """The pieces of a file name after the suite: each flag that is not at its default, in a fixed order."""
        default, overrides = EvalSettings(), dict(self.overrides)
        parts = [] if self.truncate_dim is None else [f"dim{self.truncate_dim}"]
        parts += [
            getattr(self, k)
            for k in ("precision", "backend", "model_backend")
            if getattr(self, k) != getattr(default, k)
        ]
        if overrides.get("max_seq_length") is not None:
            parts.append(f"len{overrides['max_seq_length']}")
        if key := prompt_key(overrides):
            parts.append(f"p{key}")
        return parts

    def stem(self, suite: str) -> str:
        """A results file's name without ``.json``: the suite, then :meth:`parts`."""
        return "--".join([suite, *self.parts()])

    @classmethod
    def from_stem(cls, stem: str) -> tuple[str, EvalSettings, int | None]:
        """A results file's name back: (suite, the settings it shows, the copy number of a ``--N`` file)."""
        suite, *parts = stem.split("--")
        found: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        copy = None
        for part in parts:
            if m := re.fullmatch(r"dim(\d+)", part):
                found["truncate_dim"] = int(m.group(1))
            elif part in PRECISIONS:
                found["precision"] = part
            elif part in BACKENDS:
                found["backend"] = part
            elif part in MODEL_BACKENDS:
                found["model_backend"] = part
            elif m := re.fullmatch(r"len(\d+)", part):
                overrides["max_seq_length"] = int(m.group(1))
            elif m := re.fullmatch(r"p([0-9a-f]{8})", part):
                overrides["prompts"] = m.group(1)
            elif part.isdigit():
                copy = int(part)
            else:
                return stem, cls(), None  # not a name bidir made: the whole stem is the suite's
        return suite, cls(**found, overrides=tuple(sorted(overrides.items()))), copy

    def selects(self, result_settings: dict[str, Any]) -> bool:
        """Whether a results file recorded exactly these settings."""
        return EvalSettings.from_record(result_settings) == self

    def describe(self) -> str:
        return describe_settings(self.record())


DEFAULT_SETTINGS = EvalSettings()


def describe_setting(key: str, value: Any) -> str:
    """One setting as a user writes it on the command line (``no truncation``, ``bf16``, ``max seq length 128``),
    never a Python value."""
    if key == "truncate_dim":
        return "no truncation" if value is None else f"truncate dim {value}"
    if key in ("precision",):
        return str(value)
    if key in ("backend", "model_backend", "similarity"):
        return f"{key.replace('_', ' ')} {value}"
    if key == "max_seq_length":
        return "model's max seq length" if value is None else f"max seq length {value}"
    if key == "prompts":
        return "no prompts" if not value else "prompts " + ", ".join(f"{k} {v!r}" for k, v in sorted(value.items()))
    if key == "overrides":
        if not value:
            return "no prompt or length flags"
        return ", ".join(f"--{k.replace('_', '-')} {v!r}" if isinstance(v, str) else f"--{k.replace('_', '-')} {v}"
                         for k, v in sorted(value.items()))  # fmt: skip
    return f"{key} {value}"


def describe_settings(settings: dict[str, Any]) -> str:
    return ", ".join(describe_setting(k, v) for k, v in settings.items())


def prompt_key(overrides: dict[str, Any]) -> str | None:
    """8 hex digits naming the prompts given on the command line (None when none was)."""
    if "prompts" in overrides:  # settings read back from a file name hold only the key
        return overrides["prompts"]
    given = {k: overrides[k] for k in PROMPT_FLAGS if k in overrides}
    if not given:
        return None
    return hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()[:8]
