"""A cell's identity: its resolved config, written so that another checkout recognises it, and what differs.

A config records absolute paths (data, suites, a model inside a virtual environment); :func:`portable` writes
those beside or inside the checkout relative to it, so the same cell run in a clone elsewhere compares equal;
:func:`describe_changes` names, field by field, what differs when it does not.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


def portable(value: Any, root: Path) -> Any:
    """A config with every absolute path beside or inside the checkout ``root`` written relative to it, so that
    the same cell run in another checkout (another folder, another virtual environment) has the same identity."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and value.startswith("/") and Path(value).is_relative_to(root.parent):
        return os.path.relpath(value, root)
    return value


ABSOLUTE_PATH = re.compile(r"/[^\s\"'=,;]+")


def portable_text(text: str, root: Path) -> str:
    """A command line with every absolute path beside or inside the checkout ``root`` written relative to it (the
    command as it reads from the checkout's top, whichever folder it was run in)."""
    return ABSOLUTE_PATH.sub(lambda m: portable(m.group(0), root), text)


def leaves(value: Any, at: str = "") -> dict[str, Any]:
    """A nested config as dotted paths to its values (lists kept whole)."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{at}{key}.").items()}
    return {at.rstrip("."): value}


def describe_changes(theirs: dict[str, Any], here: dict[str, Any], fallbacks: list[str], file_name: str) -> str:
    """What differs between a cell's recorded config and the experiment's, field by field with both values, and
    the ``${VAR:-default}`` defaults the experiment file fell back to (the usual cause: a variable not set)."""
    old, new = leaves(theirs), leaves(here)
    changed = [f"{k}: this experiment {json.dumps(new.get(k))}, the cell ran {json.dumps(old.get(k))}"
               for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]  # fmt: skip
    shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
    defaults = f" (in {file_name}: {'; '.join(fallbacks)})" if fallbacks else ""
    return (f"{shown}{defaults}. The experiment never reuses or replaces a cell: restore the experiment file (or the "
            "environment it reads) or use another --output-dir")  # fmt: skip
