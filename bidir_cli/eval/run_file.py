"""TREC run files (``bidir eval --run-file PATH``): the rankings and the qrels, for trec_eval, ir_measures, ranx.

A run file has one line per retrieved document, ``query-id Q0 doc-id rank score bidir``, the top
:data:`~bidir_cli.metrics.TOP_K` (100) documents of every evaluated query; its qrels file, beside it, has
``query-id 0 doc-id relevance`` for every judgement of those queries, so that a tool scoring the pair
averages over exactly the queries bidir averaged over.

**Scores that keep bidir's order.** trec_eval (and pytrec_eval, which ir_measures uses) ignores the rank
column: it re-sorts each query's documents by score, descending, breaking ties by document id
*descending*, and it holds scores as 32-bit floats. bidir ranks tied documents by id *ascending*
(sentence-transformers' order). So the score column is the similarity as a float32, except that a
document whose score does not fall below the previous one's gets the next float32 below it: every score
is then strictly lower than the one above it, in float32 as in float64, and every tool reads bidir's
ranking. A score is lowered by at most one float32 step per document tied above it (for a cosine
similarity near 1, a step is 6e-8: a tie of 100 documents moves the last by less than 1e-5).

**Relevance.** Binary by default (1 for a qrels score > 0, else 0), as bidir's metrics are; with
``--graded`` the qrels' own grades (written as integers when they are whole numbers), for graded nDCG.

**Names.** One dataset and one truncation: ``PATH`` and its qrels ``PATH`` with the suffix ``.qrels``
(``run.trec`` -> ``run.qrels``). Several datasets or truncations: the dataset's name and ``dim<N>`` are
inserted before the suffix (``run.scifact.trec``, ``run.scifact.dim64.trec``, qrels ``run.scifact.qrels``,
one per dataset). Existing files are never replaced.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..runs.atomic import atomic_open

if TYPE_CHECKING:
    from .retrieval import RetrievalDataset


RUN_TAG = "bidir"


QRELS_SUFFIX = ".qrels"


def _with_parts(base: Path, parts: list[str], suffix: str) -> Path:
    safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in parts]
    name = base.name[: -len(base.suffix)] if base.suffix else base.name
    return base.with_name(".".join([name, *safe]) + suffix)


def run_file_paths(
    base: Path, datasets: list[str], truncate_dims: list[int | None]
) -> tuple[dict[tuple[str, int | None], Path], dict[str, Path]]:
    """Where ``--run-file base`` writes: a run file per (dataset, truncation), a qrels file per dataset.

    Raises:
        InputError: ``base`` ends in ``.qrels`` (its qrels file would be itself), or a file to write exists.
    """
    if base.suffix == QRELS_SUFFIX:
        raise InputError(f"--run-file {base}: a run file cannot end in {QRELS_SUFFIX} (its qrels file gets that)")
    several_datasets, several_dims = len(datasets) > 1, len(truncate_dims) > 1
    runs, qrels = {}, {}
    for dataset in datasets:
        named = [dataset] if several_datasets else []
        qrels[dataset] = _with_parts(base, named, QRELS_SUFFIX)
        for dim in truncate_dims:
            dim_part = [f"dim{dim}" if dim is not None else "full"] if several_dims else []
            runs[(dataset, dim)] = _with_parts(base, named + dim_part, base.suffix) if named or dim_part else base
    existing = [str(p) for p in [*runs.values(), *qrels.values()] if p.exists()]
    if existing:
        raise InputError(
            f"--run-file: {', '.join(existing)} exists; bidir does not replace it (remove it or choose another path)"
        )
    return runs, qrels


def check_ids(dataset: RetrievalDataset) -> None:
    """A TREC file separates fields by white space: ids containing any cannot be written."""
    for kind, ids in (("query", dataset.query_ids), ("document", dataset.corpus_ids)):
        bad = next((i for i in ids if not i or re.search(r"\s", i)), None)
        if bad is not None:
            raise InputError(
                f"--run-file: {dataset.name}: {kind} id {bad!r} is empty or contains white space, which a TREC "
                "run file cannot hold"
            )


def trec_scores(scores: list[float]) -> list[str]:
    """Strictly decreasing float32 scores, as text that reads back to the same float32 (see the module doc)."""
    import numpy as np

    out, previous = [], None
    for score in scores:
        value = np.float32(score)
        if previous is not None and not value < previous:
            value = np.nextafter(previous, np.float32(-np.inf))
        out.append(np.format_float_positional(value, unique=True, trim="-"))
        previous = value
    return out


def write_run(
    path: Path, dataset: RetrievalDataset, rankings: list[list[int]], scores: list[list[float]], tag: str = RUN_TAG
) -> None:
    """One line per ranked document, best first, with the scores of :func:`trec_scores`."""
    with atomic_open(path) as f:
        for query_id, ranking, row in zip(dataset.query_ids, rankings, scores, strict=True):
            for rank, (index, score) in enumerate(zip(ranking, trec_scores(row), strict=True), start=1):
                f.write(f"{query_id} Q0 {dataset.corpus_ids[index]} {rank} {score} {tag}\n")


def _grade(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_qrels(path: Path, dataset: RetrievalDataset, graded: bool = False) -> None:
    """Every judgement of the evaluated queries: binary (1 for a score > 0, else 0), or the grades."""
    with atomic_open(path) as f:
        for query_id in dataset.query_ids:
            for doc_id, grade in sorted(dataset.qrels[query_id].items()):
                relevance = _grade(grade) if graded else str(int(grade > 0))
                f.write(f"{query_id} 0 {doc_id} {relevance}\n")
