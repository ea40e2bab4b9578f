"""Typed evaluation results, with to/from disk.

One results file (``runs/<name>/eval/<suite>.json``, or any ``--output`` of ``bidir eval``) holds a
suite's evaluation of one model: for each dataset its identity, counts, aggregated metrics and
the per-query value of every metric, so that ``bidir compare`` can run paired tests on any metric
without loading a model.

Which settings a result was computed under decides where it is stored and what it may be merged with.
The *number settings* (:data:`NUMBER_SETTINGS`: the suite, truncation, prompts, maximum sequence length,
precision, backend, model backend, similarity, and which of the model's own prompts and length the
command line overrode) change the numbers; device, batch size, ``--trust-remote-code`` and the embedding
cache do not. A run keeps one file per suite and number settings (:func:`results_stem`), the name showing
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

An evaluation of some of a suite's datasets is merged into the file of the same settings when the model
fingerprint and every number setting are the same, and each dataset in both has the same content and the
same per-dataset prompts (its datasets replace theirs, the others stay); otherwise it goes to the next free
name. A result is never replaced by one computed under other settings.

Layout on disk (``format`` = ``bidir.eval/2``; ``bidir.eval/1`` files, without per-dataset ``created``,
are still read)::

    {
      "format": "bidir.eval/2",
      "suite": {"name": "nanobeir", "source": "...", "hash": "..."},
      "model": {"name": "...", "fingerprint": "..."},
      "settings": {"batch_size": 64, "truncate_dim": null, "backend": "bidir", "model_backend": "torch",
                   "device": "cpu", "prompts": {...}, "max_seq_length": 256, "overrides": {}, ...},
      "versions": {"bidir": "...", "sentence-transformers": "...", ...},
      "created": "2026-11-27T10:00:00+00:00",
      "datasets": {
        "<name>": {
          "hash": "...", "source": "...",
          "counts": {"corpus": 5183, "queries": 300, ...},
          "metrics": {"ndcg@10": 0.64, ...},
          "query_ids": ["q1", "q2", ...],
          "per_query": {"ndcg@10": [0.5, 1.0, ...], ...},
          "time_s": 12.3,
          "created": "2026-11-27T10:00:00+00:00"
        }
      },
      "mean": {"ndcg@10": 0.61, ...}
    }
"""

from __future__ import annotations

import hashlib
import json
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


# Their values when a flag does not say otherwise (and in files written before the flag existed); a file's
# name shows the flags that differ from them.
DEFAULT_SETTINGS = {
    "truncate_dim": None,
    "precision": "fp32",
    "backend": "bidir",
    "model_backend": "torch",
    "overrides": {},
}


PROMPT_FLAGS = ("query_prompt", "document_prompt")


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
    given = {k: overrides[k] for k in PROMPT_FLAGS if k in overrides}
    if not given:
        return None
    return hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()[:8]


def results_stem(suite: str, settings: dict[str, Any]) -> str:
    """A results file's name without ``.json``: the suite, then each flag setting that is not the default."""
    parts = [suite]
    if settings.get("truncate_dim") is not None:
        parts.append(f"dim{settings['truncate_dim']}")
    parts += [
        settings[k]
        for k in ("precision", "backend", "model_backend")
        if settings.get(k, DEFAULT_SETTINGS[k]) != DEFAULT_SETTINGS[k]
    ]
    overrides = settings.get("overrides") or {}
    if overrides.get("max_seq_length") is not None:
        parts.append(f"len{overrides['max_seq_length']}")
    if key := prompt_key(overrides):
        parts.append(f"p{key}")
    return "--".join(parts)
