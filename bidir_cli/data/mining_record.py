"""The record of how ``bidir mine`` made a file: ``OUT.jsonl.mined.json`` beside ``OUT.jsonl``.

``bidir mine`` writes it (:func:`write_sidecar`); ``bidir train`` reads it (:func:`read_sidecar`) into the
source's identity in meta.json. This module is the one reader and writer of the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..console import log
from ..errors import InputError
from ..runs.atomic import atomic_write_json

SIDECAR_SUFFIX = ".mined.json"


KIND = "bidir mine"


def sidecar_path(output: str | Path) -> Path:
    """Where the identity of a mined file lives: ``OUT.jsonl.mined.json`` beside ``OUT.jsonl``."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def is_sidecar(path: Path) -> bool:
    """A mining record beside its data file (so a folder source does not read it as data)."""
    return path.name.endswith(SIDECAR_SUFFIX) and path.with_name(path.name.removesuffix(SIDECAR_SUFFIX)).is_file()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mined_identity(location: Path, suffixes: tuple[str, ...]) -> dict[str, Any] | None:
    """What ``bidir train`` records of a mined source: the sidecar, with ``verified`` (the file is the one mined).

    A file with a sidecar gives the sidecar; a folder gives ``{file name: sidecar}`` for its mined files;
    anything else gives None.
    """
    location = Path(location)
    if location.is_dir():
        files = sorted(p for p in location.iterdir() if p.suffix in suffixes and sidecar_path(p).is_file())
        return {p.name: read_sidecar(p) for p in files} or None
    return read_sidecar(location) if sidecar_path(location).is_file() else None


def write_sidecar(output: str | Path, record: dict[str, Any]) -> None:
    """The record of how ``output`` was mined, beside it (atomically)."""
    atomic_write_json(sidecar_path(output), record)


def read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = sidecar_path(path)
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{sidecar}: unreadable mining record ({e}); delete it or mine {path.name} again") from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise InputError(f'{sidecar}: not a bidir mining record (no "kind": "{KIND}")')
    record["verified"] = record.get("output", {}).get("sha256") == file_sha256(path)
    if not record["verified"]:
        log(f"warning: {path} changed since it was mined ({sidecar.name} records another hash); meta.json says so")
    return record
