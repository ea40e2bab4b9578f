"""The rows of a comparison that come from the runs rather than the scores: training measurements from
meta.json, and the settings (evaluation, seed, loss, data, config) whose values differ between columns."""

from __future__ import annotations

import json
from typing import Any

from .comparison import Column, MetaRow

# (row name, kind, how to read it from a run's meta.json)
_MEASUREMENTS = (
    ("training wall time", "duration", lambda m: m.wall_time_s),
    ("examples per second", "rate", lambda m: m.examples_per_second),
    ("peak memory", "bytes", lambda m: m.train.get("peak_memory_bytes")),
)


def meta_rows(columns: list[Column]) -> list[MetaRow]:
    """The training measurements any run recorded, then the settings whose values differ between columns.

    Settings are meta.json's ``seed``, ``loss``, ``data`` and ``config`` flattened to dotted keys
    (``loss.scale``, ``data.sources[0].hash``). A column's settings are the distinct values among
    its runs; a key is shown when two columns that record it differ (a column without it, such as an
    untrained base model with no loss or data, does not make every key a difference). ``config.X`` is
    not shown again when ``X`` shows the same values (the resolved config repeats the loss and data sections).
    """
    rows = []
    for name, kind, read in _MEASUREMENTS:
        values = {c.name: [_number(read(s.meta) if s.meta else None) for s in c.sources] for c in columns}
        if any(v is not None for vs in values.values() for v in vs):
            rows.append(MetaRow(name, kind, values))

    for key, values in differing_settings(columns).items():
        rows.append(
            MetaRow(key, "setting", {name: [None if v is _ABSENT else v for v in vs] for name, vs in values.items()})
        )
    return rows


_ABSENT = object()  # a key a run does not record, unlike an explicit null


def differing_settings(columns: list[Column]) -> dict[str, dict[str, list[Any]]]:
    """The settings whose values differ between columns: key -> column -> each run's value (or ``_ABSENT``).

    A run's settings are its evaluation's number settings (``eval.truncate_dim``, ...) and its meta.json's
    ``seed``, ``loss``, ``data`` and ``config`` flattened to dotted keys (``loss.scale``, ``data.sources[0].hash``).
    An explicit null differs from a value; a key that a column does not record at all (an untrained base model
    has no loss) is not a difference. ``config.X`` is left out when ``X`` shows the same values (the resolved
    config repeats the loss and data sections).
    """
    flat = {
        c.name: [
            {f"eval.{k}": v for k, v in s.result.number_settings.items()}
            | _flatten(s.meta.settings() if s.meta else {})
            for s in c.sources
        ]
        for c in columns
    }
    keys = sorted({k for runs in flat.values() for run in runs for k in run}, key=_setting_order)
    settings: dict[str, dict[str, list[Any]]] = {}
    for key in keys:
        values = {name: [run.get(key, _ABSENT) for run in runs] for name, runs in flat.items()}
        recorded = [[v for v in vs if v is not _ABSENT] for vs in values.values()]
        distinct = {tuple(sorted({json.dumps(v, sort_keys=True) for v in vs})) for vs in recorded if vs}
        if len(distinct) > 1:
            settings[key] = values
    return {
        key: values
        for key, values in settings.items()
        if not (key.startswith("config.") and settings.get(key.removeprefix("config.")) == values)
    }


def _setting_order(key: str) -> tuple[int, str]:
    """eval, seed, then loss, data and config keys, each alphabetically."""
    return (("eval", "seed", "loss", "data", "config").index(key.split(".", 1)[0].split("[", 1)[0]), key)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists to ``{"a.b[0].c": leaf}``."""
    if isinstance(value, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()]
    elif isinstance(value, list) and value:
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    return {key: leaf for k, v in items for key, leaf in _flatten(v, k).items()}
