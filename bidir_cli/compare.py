"""``bidir compare``: load runs and results files, match their datasets, build the comparison.

A *column* of the comparison is one run (a run directory or a results file) or a named group of
runs of the same configuration with different seeds. Every number in the comparison is computed
from the per-query scores in the results files; no model is ever loaded, so the command is fast.
"""

from __future__ import annotations

import glob
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import ALPHA, LEVEL, MEAN, Cell, Column, Comparison, Difference, MetaRow, Source
from .errors import InputError
from .results import EvalResult
from .runs import RunDir
from .stats import bootstrap_ci, holm, seed_mean_std, sign_flip_test


def compare_command(
    inputs: list[str],
    *,
    groups: list[str],
    baseline: str | None,
    metric: str,
    fmt: str,
    plot: Path | None,
    suite: str | None,
    permutations: int,
    seed: int,
) -> Comparison:
    """Load the inputs, compare them, print the result to stdout and notes to stderr."""
    from . import report

    if fmt not in report.FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (choose from {', '.join(report.FORMATS)})")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot: {plot} should end in .png (the plot is saved as a PNG image)")
    columns = load_columns(inputs, groups, suite)
    comparison = build_comparison(columns, baseline=baseline, metric=metric, permutations=permutations, seed=seed)
    for note in comparison.notes:
        print(f"bidir: note: {note}", file=sys.stderr)
    report.FORMATS[fmt](comparison, sys.stdout)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        width, height = report.save_plot(comparison, plot)
        print(f"bidir: wrote {plot} ({width}x{height} px)", file=sys.stderr)
    return comparison


# ---------------------------------------------------------------------------------------------
# Loading


def load_columns(inputs: list[str], groups: list[str], suite: str | None) -> list[Column]:
    """One column per positional input, then one per ``--group NAME=GLOB``, names checked unique."""
    columns = []
    for arg in inputs:
        source = load_source(Path(arg), suite)
        columns.append(Column(name=source.name, sources=[source]))
    for spec in groups:
        name, sep, pattern = spec.partition("=")
        if not sep or not name or not pattern:
            raise InputError(f"--group {spec!r}: expected NAME=GLOB, e.g. --group bidir='runs/bidir-seed*'")
        paths = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not paths:
            raise InputError(f"--group {name}: {pattern!r} matches nothing")
        columns.append(Column(name=name, sources=[load_source(Path(p), suite) for p in paths], group=True))
    if not columns:
        raise InputError("nothing to compare: give run directories, results files or --group NAME=GLOB")

    seen: dict[str, Column] = {}
    for column in columns:
        if column.name in seen:
            where = ", ".join(str(s.path) for s in seen[column.name].sources + column.sources)
            raise InputError(f"two columns are named {column.name!r} ({where}); name one with --group NEW_NAME=PATH")
        seen[column.name] = column
    return columns


def load_source(path: Path, suite: str | None) -> Source:
    """A run directory (its ``eval/<suite>.json`` and ``meta.json``) or a results file.

    A results file in the ``eval/`` folder of a directory that has a meta.json is read as that run.
    """
    if path.is_dir():
        run = RunDir(path.resolve())
        results = find_results(run, suite)
        return Source(run.path.name, results, EvalResult.load(results), run.read_meta())
    if not path.exists():
        raise InputError(f"{path}: no such run directory or results file")
    run = RunDir(path.resolve().parent.parent)
    if path.resolve().parent == run.eval_dir and run.is_run():
        return Source(run.path.name, path, EvalResult.load(path), run.read_meta())
    return Source(path.stem, path, EvalResult.load(path), None)


def find_results(run: RunDir, suite: str | None) -> Path:
    """The results file of a run directory: ``eval/<suite>.json``, or the only one there is."""
    found = run.results_files()
    names = ", ".join(p.stem for p in found)
    if suite is not None:
        path = run.results_file(suite)
        if not path.is_file():
            raise InputError(f"{run.path}: no eval/{path.name}" + (f" (it has: {names})" if found else ""))
        return path
    if not found:
        raise InputError(f"{run.path}: no results in {run.eval_dir} (run `bidir eval {run.path}` first)")
    if len(found) > 1:
        raise InputError(f"{run.path}: several results in eval/ ({names}); choose one with --suite")
    return found[0]


# ---------------------------------------------------------------------------------------------
# Matching datasets and queries


def match_datasets(columns: list[Column]) -> tuple[list[str], dict[str, list[str]]]:
    """The datasets every results file has, in the order they first appear, and those left out.

    Raises:
        InputError: a dataset has different content hashes in two files (it is not the same data),
            or no dataset is in every file.
    """
    sources = [s for c in columns for s in c.sources]
    first_seen: dict[str, Source] = {}
    for source in sources:
        for name, dataset in source.result.datasets.items():
            other = first_seen.setdefault(name, source)
            if dataset.hash != other.result.datasets[name].hash:
                raise InputError(
                    f"dataset {name} differs between {other.path} (hash {other.result.datasets[name].hash}) "
                    f"and {source.path} (hash {dataset.hash}): they were evaluated on different data"
                )
    common = [name for name in first_seen if all(name in s.result.datasets for s in sources)]
    left_out = {
        name: [str(s.path) for s in sources if name not in s.result.datasets]
        for name in first_seen
        if name not in common
    }
    if not common:
        raise InputError("no dataset is in every input: " + ", ".join(str(s.path) for s in sources))
    return common, left_out


def aligned_scores(source: Source, dataset: str, metric: str, reference: tuple[Path, list[str]]) -> np.ndarray:
    """One file's per-query scores of a dataset, in the order of the reference file's query ids.

    Raises:
        InputError: the metric is missing, the lists disagree in length, or the query ids are not
            the reference's (a different or filtered query set cannot be paired).
    """
    d = source.result.datasets[dataset]
    where = f"{source.path}: dataset {dataset}"
    if metric not in d.per_query:
        available = ", ".join(d.per_query) or "none"
        raise InputError(f"{where} has no per-query {metric!r} scores (available: {available})")
    scores = d.per_query[metric]
    if len(scores) != len(d.query_ids):
        raise InputError(f"{where}: {len(scores)} {metric} scores for {len(d.query_ids)} query ids")
    if not d.query_ids:
        raise InputError(f"{where} has no queries")
    if len(set(d.query_ids)) != len(d.query_ids):
        raise InputError(f"{where}: duplicate query ids")
    if not all(math.isfinite(x) for x in scores):
        raise InputError(f"{where}: a {metric} score is not a finite number")

    reference_path, reference_ids = reference
    position = {q: i for i, q in enumerate(d.query_ids)}
    if position.keys() != set(reference_ids):
        missing = [q for q in reference_ids if q not in position]
        extra = [q for q in d.query_ids if q not in set(reference_ids)]
        raise InputError(
            f"{where}: query ids differ from {reference_path} "
            f"({len(missing)} missing, e.g. {missing[:3]}; {len(extra)} extra, e.g. {extra[:3]})"
        )
    return np.asarray(scores, dtype=float)[[position[q] for q in reference_ids]]


# ---------------------------------------------------------------------------------------------
# The comparison


def build_comparison(
    columns: list[Column], *, baseline: str | None, metric: str, permutations: int, seed: int
) -> Comparison:
    """Cells, differences from the baseline with their tests, and meta rows, for loaded columns.

    Each (column, row) pair draws from its own generator seeded with ``(seed, column, row)``, so
    adding a column at the end leaves the numbers of the others unchanged.
    """
    names = [c.name for c in columns]
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise InputError(f"--baseline {baseline!r}: no such column (columns: {', '.join(names)})")
    datasets, left_out = match_datasets(columns)
    if MEAN in datasets:
        raise InputError(f"a dataset is named {MEAN!r}, like the table's mean row; rename it in the results files")
    notes = []
    if left_out:
        notes.append(
            f"left out {len(left_out)} dataset(s) not in every input: "
            + "; ".join(f"{name} (not in {', '.join(paths)})" for name, paths in left_out.items())
        )

    # scores[column][dataset]: a (seeds, queries) array, queries in the first file's order.
    first = columns[0].sources[0]
    scores: dict[str, dict[str, np.ndarray]] = {}
    for column in columns:
        scores[column.name] = {}
        for dataset in datasets:
            reference = (first.path, first.result.datasets[dataset].query_ids)
            rows = [aligned_scores(s, dataset, metric, reference) for s in column.sources]
            scores[column.name][dataset] = np.stack(rows)
            notes += _consistency_notes(column.sources, dataset, metric, rows)

    cells: dict[str, dict[str, Cell]] = {row: {} for row in [*datasets, MEAN]}
    for name in names:
        per_seed = {dataset: scores[name][dataset].mean(axis=1) for dataset in datasets}
        for dataset in datasets:
            cells[dataset][name] = _cell(per_seed[dataset])
        cells[MEAN][name] = _cell(np.mean([per_seed[dataset] for dataset in datasets], axis=0))

    differences: dict[str, dict[str, Difference]] = {row: {} for row in cells}
    for i, name in enumerate(names):
        if name == baseline:
            continue
        system, base = scores[name], scores[baseline]
        for j, row in enumerate([*datasets, MEAN]):
            strata = datasets if row == MEAN else [row]
            rng = np.random.default_rng([seed, i, j])
            # The test pairs per-query scores averaged over seeds; the interval also resamples seeds.
            diffs = [system[d].mean(axis=0) - base[d].mean(axis=0) for d in strata]
            test = sign_flip_test(diffs, permutations, rng)
            ci = bootstrap_ci([system[d] for d in strata], [base[d] for d in strata], permutations, rng, LEVEL)
            differences[row][name] = Difference(
                diff=float(np.mean([d.mean() for d in diffs])),
                ci=ci,
                p=test.p,
                exact=test.exact,
                significant=test.p <= ALPHA,
            )
        adjusted, rejected = holm([differences[d][name].p for d in datasets], ALPHA)
        for dataset, p_holm, reject in zip(datasets, adjusted, rejected, strict=True):
            differences[dataset][name].p_holm = float(p_holm)
            differences[dataset][name].holm_significant = bool(reject)

    queries = {d: scores[baseline][d].shape[1] for d in datasets}
    for column in columns:
        for source in column.sources:
            status = source.meta.status if source.meta else None
            if status is not None and status != "completed":
                notes.append(f"{source.path}: its run's meta.json says status {status!r}, not 'completed'")

    return Comparison(
        metric=metric,
        baseline=baseline,
        columns=columns,
        datasets=datasets,
        queries={**queries, MEAN: sum(queries.values())},
        cells=cells,
        differences=differences,
        meta_rows=meta_rows(columns),
        left_out=left_out,
        permutations=permutations,
        seed=seed,
        notes=notes,
    )


def _cell(per_seed: np.ndarray) -> Cell:
    value, std = seed_mean_std(per_seed)
    return Cell(value=value, std=std, seeds=[float(x) for x in per_seed])


def _consistency_notes(sources: list[Source], dataset: str, metric: str, rows: list[np.ndarray]) -> list[str]:
    """Flag a file whose stored aggregate disagrees with the mean of its per-query scores.

    The table shows the mean of the per-query scores (the quantity the tests are about); if a file's
    own aggregate differs, the table would silently disagree with what ``bidir eval`` printed.
    """
    notes = []
    for source, row in zip(sources, rows, strict=True):
        stored = source.result.datasets[dataset].metrics.get(metric)
        if stored is not None and abs(stored - row.mean()) > 1e-6:
            notes.append(
                f"{source.path}: dataset {dataset}: stored {metric} {stored:.6f} differs from the mean of its "
                f"per-query scores {row.mean():.6f}; the table shows the latter"
            )
    return notes


# ---------------------------------------------------------------------------------------------
# Rows from meta.json

# (row name, kind, path of keys in meta.json)
_MEASUREMENTS = (
    ("training wall time", "duration", ("wall_time_s",)),
    ("examples per second", "rate", ("train", "examples_per_second")),
    ("peak memory", "bytes", ("train", "peak_memory_bytes")),
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
    for name, kind, keys in _MEASUREMENTS:
        values = {c.name: [_number(_dig(s.meta.to_dict() if s.meta else {}, keys)) for s in c.sources] for c in columns}
        if any(v is not None for vs in values.values() for v in vs):
            rows.append(MetaRow(name, kind, values))

    flat = {c.name: [_flatten(s.meta.settings() if s.meta else {}) for s in c.sources] for c in columns}
    keys = sorted({k for runs in flat.values() for run in runs for k in run}, key=_setting_order)
    settings: dict[str, dict[str, list[Any]]] = {}
    for key in keys:
        values = {name: [run.get(key) for run in runs] for name, runs in flat.items()}
        recorded = [vs for vs in values.values() if any(v is not None for v in vs)]
        distinct = {tuple(sorted({json.dumps(v, sort_keys=True) for v in vs})) for vs in recorded}
        if len(distinct) > 1:
            settings[key] = values
    for key, values in settings.items():
        if key.startswith("config.") and settings.get(key.removeprefix("config.")) == values:
            continue
        rows.append(MetaRow(key, "setting", values))
    return rows


def _setting_order(key: str) -> tuple[int, str]:
    """seed, then loss, data and config keys, each alphabetically."""
    return (("seed", "loss", "data", "config").index(key.split(".", 1)[0].split("[", 1)[0]), key)


def _dig(meta: dict[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = meta
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


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
