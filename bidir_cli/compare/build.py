"""``bidir compare``: load runs and results files, match their datasets, build the comparison.

A *column* of the comparison is one run (a run directory or a results file) or a named group of
runs of the same configuration with different seeds. Every number in the comparison is computed
from the per-query scores in the results files; no model is ever loaded, so the command is fast.
"""

from __future__ import annotations

import glob
import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs.results import EvalResult
from ..runs.rundir import RunDir
from ..runs.settings import DEFAULT_SETTINGS, NUMBER_SETTINGS, EvalSettings, describe_setting
from .comparison import ALPHA, MEAN, POWER, TARGET_DIFF, Aggregate, Column, Comparison, Difference, Source
from .meta_rows import meta_rows
from .stats import compare_runs, holm, seed_mean_std


def load_columns(
    inputs: list[str], groups: list[str], suite: str | None, settings: EvalSettings = DEFAULT_SETTINGS
) -> list[Column]:
    """One column per positional input, then one per ``--group NAME=GLOB``, names checked unique.

    ``suite`` and ``settings`` (the number settings wanted, default :data:`DEFAULT_SETTINGS`) choose a run
    directory's results file.
    """
    columns = []
    for arg in inputs:
        source = load_source(Path(arg), suite, settings)
        columns.append(Column(name=source.name, sources=[source]))
    for spec in groups:
        name, sep, pattern = spec.partition("=")
        if not sep or not name or not pattern:
            raise InputError(f"--group {spec!r}: expected NAME=GLOB, e.g. --group bidir='runs/bidir-seed*'")
        paths = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not paths:
            raise InputError(f"--group {name}: {pattern!r} matches nothing")
        columns.append(Column(name=name, sources=[load_source(Path(p), suite, settings) for p in paths], group=True))
    if not columns:
        raise InputError("nothing to compare: give run directories, results files or --group NAME=GLOB")

    seen: dict[str, Column] = {}
    for column in columns:
        if column.name in seen:
            where = ", ".join(str(s.path) for s in seen[column.name].sources + column.sources)
            raise InputError(f"two columns are named {column.name!r} ({where}); name one with --group NEW_NAME=PATH")
        seen[column.name] = column
    return columns


def load_source(path: Path, suite: str | None, settings: EvalSettings = DEFAULT_SETTINGS) -> Source:
    """A run directory (the results file of its evaluation that ``suite`` and ``settings`` choose, and its
    meta.json) or a results file (taken as it is).

    A results file in the ``eval/`` folder of a directory that has a meta.json is read as that run. A column
    is named after the run, with the settings part of the file's name (``mnbrl--dim64``) when there is one.
    """
    if path.is_dir():
        run = RunDir(path.resolve())
        results, result = run.find_results(suite, settings)
        return Source(_column_name(run, result, results), results, result, run.read_meta())
    if not path.exists():
        raise InputError(f"{path}: no such run directory or results file")
    result = EvalResult.load(path)
    run = RunDir(path.resolve().parent.parent)
    if path.resolve().parent == run.eval_dir and run.is_run():
        return Source(_column_name(run, result, path), path, result, run.read_meta())
    return Source(path.stem, path, result, None)


def _column_name(run: RunDir, result: EvalResult, path: Path) -> str:
    """The run's name, with the settings (and copy number) its results file's name shows (``mnbrl--dim64``);
    a file named otherwise adds its whole name."""
    suite, settings, copy = EvalSettings.from_stem(path.stem)
    if suite != run.results_file(result.suite["name"]).stem:
        return f"{run.path.name}--{path.stem}"
    return "--".join([run.path.name, *settings.parts(), *([str(copy)] if copy else [])])


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


def build_comparison(
    columns: list[Column],
    *,
    baseline: str | None,
    metric: str,
    permutations: int,
    seed: int,
    mixed_settings: bool = False,
    target_diff: float = TARGET_DIFF,
) -> Comparison:
    """Cells, differences from the baseline with their tests, and meta rows, for loaded columns.

    Each (column, row) pair draws from its own generator seeded with ``(seed, column, row)``, so
    adding a column at the end leaves the numbers of the others unchanged.

    Raises:
        InputError: the results were computed under different number settings (truncation, precision, ...),
            unless ``mixed_settings``; the message names each setting that differs.
    """
    check_same_settings(columns, mixed_settings)
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

    cells: dict[str, dict[str, Aggregate]] = {row: {} for row in [*datasets, MEAN]}
    for name in names:
        per_seed = {dataset: scores[name][dataset].mean(axis=1) for dataset in datasets}
        for dataset in datasets:
            cells[dataset][name] = _cell(per_seed[dataset])
        cells[MEAN][name] = _cell(np.mean([per_seed[dataset] for dataset in datasets], axis=0))

    differences: dict[str, dict[str, Difference]] = {row: {} for row in cells}
    for i, name in enumerate(names):
        if name != baseline:
            found = column_differences(
                scores[name], scores[baseline], permutations=permutations, seed=[seed, i], target_diff=target_diff
            )
            for row, difference in found.items():
                differences[row][name] = difference

    queries = {d: scores[baseline][d].shape[1] for d in datasets}
    notes += _shared_runs_notes(columns)
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
        target_diff=target_diff,
        notes=notes,
    )


def _shared_runs_notes(columns: list[Column]) -> list[str]:
    """A warning for each pair of columns that share results files or models: their difference is not a
    comparison of two things (one run under two group names gives p = 1 and an interval [0, 0])."""

    def identities(column: Column) -> set[str]:
        return {str(s.path.resolve()) for s in column.sources} | {
            f"model {fp}" for s in column.sources if (fp := s.result.model.get("fingerprint"))
        }

    notes = []
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            shared = identities(a) & identities(b)
            if shared:
                what = "the same runs" if identities(a) == identities(b) else "some of the same runs"
                notes.append(
                    f"warning: columns {a.name} and {b.name} hold {what} (the same results files or model "
                    f"fingerprints: {len(shared)}); their difference is not a comparison of two models"
                )
    return notes


def check_same_settings(columns: list[Column], allowed: bool) -> None:
    """Refuse to pair results of different number settings, naming what differs (unless allowed).

    The suite itself need not match: datasets are paired by name and checked by content hash.
    """
    differing = {}
    for key in NUMBER_SETTINGS:
        raw = {c.name: {json.dumps(s.result.number_settings[key], sort_keys=True) for s in c.sources} for c in columns}
        if len(set().union(*raw.values())) > 1:  # shown as a user writes them
            differing[key] = {
                name: sorted(describe_setting(key, json.loads(v)) for v in vs) for name, vs in raw.items()
            }
    if differing and not allowed:
        described = "; ".join(
            ", ".join(f"{name}: {' / '.join(vs)}" for name, vs in values.items()) for values in differing.values()
        )
        raise InputError(
            f"the results were evaluated under different settings ({described}); their numbers are not "
            "comparable: pass --mixed-settings to compare them anyway (the table then lists the differences)"
        )


def column_differences(
    system: dict[str, np.ndarray],
    baseline: dict[str, np.ndarray],
    *,
    permutations: int,
    seed: list[int],
    target_diff: float = TARGET_DIFF,
) -> dict[str, Difference]:
    """One column against the baseline: a difference per dataset, then the mean row, then Holm across datasets.

    Args:
        system: The column's per-query scores, dataset -> ``(runs, queries)`` array.
        baseline: The baseline's, the same datasets and queries.
        permutations: Sign assignments of the sign-flip test (one run on a side).
        seed: The column's seed; row j draws from ``np.random.default_rng([*seed, j])``.
        target_diff: The difference that the runs needed are for.

    The tests and power lines are :func:`bidir_cli.stats.compare_runs`'; the mean row's is stratified
    over all the datasets, each weighing the same. scripts/calibrate_stats.py calls this function.
    """
    datasets = list(system)
    out = {}
    for j, row in enumerate([*datasets, MEAN]):
        strata = datasets if row == MEAN else [row]
        test = compare_runs(
            [system[d] for d in strata],
            [baseline[d] for d in strata],
            permutations=permutations,
            rng=np.random.default_rng([*seed, j]),
            target_diff=target_diff,
            alpha=ALPHA,
            power=POWER,
        )
        c = test.components
        out[row] = Difference(
            diff=test.diff,
            ci=test.ci,
            p=test.p,
            significant=test.significant,
            test=test.test,
            se=test.se,
            df=test.df,
            exact=test.exact,
            mdd=test.mdd,
            runs_needed=test.runs_needed.runs,
            runs_needed_text=test.runs_needed.text,
            components=None if c is None else c.record(),
        )
    adjusted, rejected = holm([out[d].p for d in datasets], ALPHA)
    for dataset, p_holm, reject in zip(datasets, adjusted, rejected, strict=True):
        out[dataset].p_holm = float(p_holm)
        out[dataset].holm_significant = bool(reject)
    return out


def _cell(per_seed: np.ndarray) -> Aggregate:
    value, std = seed_mean_std(per_seed)
    return Aggregate(value=value, std=std, seeds=[float(x) for x in per_seed])


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
