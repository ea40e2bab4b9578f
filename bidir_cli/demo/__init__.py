"""The data bundled with bidir (README.md here says what and under which licence): WordNet training pairs
(``demo:wordnet/train.jsonl``, for ``data.train``) and an evaluation collection in BEIR layout
(``demo:wordnet-eval``, for ``--suite``). This package knows where they lie; nothing else builds their paths."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_path(relative: str) -> Path:
    """A file or folder bundled with bidir under ``bidir_cli/demo``."""
    return Path(str(resources.files("bidir_cli").joinpath("demo", relative)))
