"""The corpus-embedding cache of ``bidir eval``: embeddings on disk, keyed by everything that determines them.

A key names the model's files (fingerprint), the corpus content, prompts, maximum sequence length,
precision, the model backend, batch size, device and library versions, so a cached evaluation returns the
numbers a cold one would. Embeddings are cached at full dimension: ``bidir eval`` truncates after encoding
(as sentence-transformers' ``truncate_dim`` does), so every ``--truncate-dim`` reads the same entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..console import log
from ..models.load import max_seq_length
from ..runs.atomic import temporary_beside
from ..runs.environment import versions

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

    from .retrieval import RetrievalDataset


# The libraries whose versions can change an embedding (part of the key).
ENCODING_PACKAGES = ("sentence-transformers", "transformers", "torch")


def default_cache_dir() -> Path:
    return Path(os.environ.get("BIDIR_CACHE_DIR") or Path.home() / ".cache" / "bidir" / "embeddings")


class EmbeddingCache:
    """Corpus embeddings on disk: ``<key>.npy`` (float32) beside ``<key>.json`` (what the key was made of)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str, rows: int) -> torch.Tensor | None:
        """The cached embeddings, or None when absent or unreadable (then they are computed again)."""
        import numpy as np
        import torch

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            array = np.load(path)
        except (OSError, ValueError) as e:
            log(f"ignoring unreadable cache file {path} ({e})")
            return None
        if array.ndim != 2 or array.shape[0] != rows:
            log(f"ignoring cache file {path}: shape {array.shape} does not fit {rows} documents")
            return None
        return torch.from_numpy(array)

    def save(self, key: str, embeddings: torch.Tensor, parts: dict[str, Any]) -> None:
        """Write atomically (temporary file, then rename): a killed run never leaves half a file."""
        import numpy as np

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = temporary_beside(self.root, f".{key}.", ".npy")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, embeddings.detach().float().cpu().numpy())
                os.replace(tmp, self.path(key))
            finally:
                Path(tmp).unlink(missing_ok=True)
            self.path(key).with_suffix(".json").write_text(json.dumps(parts, indent=2, sort_keys=True) + "\n")
        except OSError as e:
            log(f"could not write the embedding cache in {self.root} ({e}); continuing without it")


def cache_parts(model: SentenceTransformer, dataset: RetrievalDataset, model_info: dict, settings: dict) -> dict:
    """Everything that determines a corpus's embeddings: equal keys give bit-identical embeddings."""
    parts = {
        "model": model_info["fingerprint"],
        "corpus": dataset.corpus_hash,
        "prompts": dict(model.prompts),
        "default_prompt_name": model.default_prompt_name,
        "max_seq_length": max_seq_length(model),
        "truncate_dim": None,  # always the full dimension (module docstring); the key keeps the field, so
        "precision": settings["precision"],  # entries that full-dimension evaluations wrote before still match
        "batch_size": settings["batch_size"],
        "device": settings["device"],
        "versions": {k: v for k, v in versions(ENCODING_PACKAGES).items() if k in ENCODING_PACKAGES},
    }
    backend = settings.get("model_backend", "torch")
    if backend != "torch":  # only then, so that the keys of torch evaluations are what they were
        parts["model_backend"] = backend
    return parts
