"""``bidir mine``: hard negatives for (anchor, positive) pairs, by sentence-transformers' miner.

The mining is ``sentence_transformers.util.mine_hard_negatives``, called with the options as given. This
module reads the pairs as ``bidir train`` reads a training source, loads the model as ``bidir eval`` does,
writes the result where ``bidir train`` finds its negative columns, and records how it was made::

    OUT.jsonl             anchor, positive, negative_1 .. negative_n  (--format n-tuple: one row a pair)
                          anchor, positive, negative                  (--format triplet: one row a negative)
    OUT.jsonl.mined.json  the sidecar: the data's identity and hash, the corpus's, the model's fingerprint,
                          every option, counts, versions, and the SHA-256 of OUT.jsonl

``bidir train`` copies the sidecar into the source's identity in meta.json (key ``mined``, with
``verified``: whether the file is still the one that was mined), so a run says how its data was mined. The
sidecar holds no times: mining the same data with the same model and options writes the same record, so
``bidir compare`` shows a difference in mining only where there is one.

What the miner guarantees, and bidir relies on: rows with the same anchor are one query with several
positives, and none of a query's positives (nor the query's own text) is ever one of its negatives. The
candidates are the positives of all rows, deduplicated, plus the ``--corpus`` texts. In the output, rows
come grouped by anchor (in order of first appearance), a repeated (anchor, positive) pair appears once, and
with ``n-tuple`` a pair for which fewer than ``num_negatives`` candidates pass the filters is left out
(counted in the sidecar and on standard error).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config.schema import ColumnsConfig, SourceConfig
from ..console import library_output, log
from ..errors import InputError
from ..runs.atomic import atomic_open
from ..runs.environment import versions
from .mining_record import KIND, sidecar_path, write_sidecar
from .sources import content_hash, load_source, read_local

FORMATS = ("n-tuple", "triplet")  # the miner's formats that bidir train reads as negative columns


SAMPLING = ("top", "random")


@dataclass(frozen=True)
class MineOptions:
    """The miner's options, as ``bidir mine`` exposes them (names as in ``mine_hard_negatives``)."""

    num_negatives: int = 3
    """Negatives per pair."""
    range_min: int = 0
    """Skip the ``range_min`` most similar candidates (near-duplicates and unlabelled positives live there)."""
    range_max: int | None = None
    """Consider only the ``range_max`` most similar candidates (default: the miner's, from ``num_negatives``)."""
    absolute_margin: float | None = None
    """Keep a candidate only if its score is at least this much below the (lowest) positive's score."""
    relative_margin: float | None = None
    """Keep a candidate only if its score is at most ``positive - |positive| * relative_margin``."""
    max_score: float | None = None
    """Keep only candidates scoring at most this."""
    min_score: float | None = None
    """Keep only candidates scoring at least this."""
    sampling_strategy: str = "top"
    """``top``: the most similar candidates left; ``random``: a random draw from them (seeded by ``seed``)."""
    seed: int = 0
    """Seed of the ``random`` draw."""
    batch_size: int = 32
    """Texts encoded at once."""
    search_batch_size: int = 16384
    """Queries scored at once (the miner's ``faiss_batch_size``): bounds the score matrix to this times the corpus."""
    output_format: str = "n-tuple"
    """``n-tuple`` or ``triplet`` (see the module docstring)."""
    output_scores: bool = False
    """Add a ``scores`` column (the positive's score, then each negative's); bidir train ignores it."""

    def problems(self) -> list[str]:
        out = []
        if self.num_negatives < 1:
            out.append(f"--num-negatives: must be at least 1, not {self.num_negatives}")
        if self.range_min < 0:
            out.append(f"--range-min: must be at least 0, not {self.range_min}")
        if self.range_max is not None and self.range_max - self.range_min < self.num_negatives:
            out.append(
                f"--range-max: {self.range_max} leaves {max(self.range_max - self.range_min, 0)} candidates after "
                f"--range-min {self.range_min}, fewer than --num-negatives {self.num_negatives}"
            )
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            out.append(f"--min-score: {self.min_score} is above --max-score {self.max_score}")
        if self.sampling_strategy not in SAMPLING:
            out.append(f"--sampling: {self.sampling_strategy!r} is not one of {', '.join(SAMPLING)}")
        if self.output_format not in FORMATS:
            out.append(f"--format: {self.output_format!r} is not one of {', '.join(FORMATS)}")
        for name in ("batch_size", "search_batch_size"):
            if getattr(self, name) < 1:
                out.append(f"--{name.replace('_', '-')}: must be at least 1, not {getattr(self, name)}")
        return out


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an output bidir train cannot read, or one that would replace a file bidir did not mine."""
    if output.suffix != ".jsonl":
        raise InputError(f"--output: {output}: give a .jsonl file (bidir train reads its negative columns)")
    if output.is_dir():
        raise InputError(f"--output: {output} is a folder")
    if output.exists():
        if not overwrite:
            raise InputError(f"--output: {output} exists; pass --overwrite to replace it")
        if not sidecar_path(output).is_file():
            raise InputError(
                f"--output: {output} exists and bidir did not mine it (no {sidecar_path(output).name} beside it); "
                "--overwrite replaces only mined files"
            )


def load_corpus(spec: str | Path, column: str) -> tuple[list[str], dict[str, Any]]:
    """Candidate documents from a .jsonl/.json/.csv/.parquet file, a folder of them, or a BEIR folder.

    A row's text is its ``column``, or ``title + " " + column`` when it has a non-empty ``title`` (the BEIR
    convention, so a BEIR ``corpus.jsonl`` works as it is).
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"--corpus: {spec}: no such file or folder")
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        path = path / "corpus.jsonl"  # a BEIR folder: its queries are not documents
    rows = read_local(path, "--corpus")
    if not rows:
        raise InputError(f"--corpus: {path} holds no rows")
    texts = []
    for row in rows:
        text = row.get(column)
        if not isinstance(text, str) or not text.strip():
            problem = "missing" if column not in row else "null" if text is None else "not text or blank"
            keys = ", ".join(k for k in row if k != "__row__")
            raise InputError(
                f"--corpus: {path}, row {row['__row__']}: column {column!r} is {problem} (its columns: {keys}; "
                "choose one with --corpus-column)"
            )
        title = row.get("title")
        texts.append(f"{title} {text}" if isinstance(title, str) and title.strip() else text)
    identity = {"location": str(path.resolve()), "column": column, "rows": len(texts),
                "hash": content_hash({"text": texts})}  # fmt: skip
    return texts, identity


def mine_command(
    data: str,
    *,
    model: str,
    output: Path,
    options: MineOptions = MineOptions(),
    corpus: str | None = None,
    corpus_column: str = "text",
    anchor_column: str = "anchor",
    positive_column: str = "positive",
    overwrite: bool = False,
) -> dict[str, Any]:
    """``bidir mine``: check everything, load the pairs, corpus and model, mine, write OUT and its sidecar.

    Returns:
        The sidecar's content.
    """
    output = Path(output)
    problems = options.problems()
    try:
        check_output(output, overwrite)
    except InputError as e:
        problems.append(str(e))
    if problems:
        raise InputError(problems[0] if len(problems) == 1 else f"{len(problems)} problems", problems=problems)

    columns = ColumnsConfig(anchor=anchor_column, positive=positive_column, negatives=[])
    source = load_source(SourceConfig(source=data, columns=columns), Path.cwd(), "DATA")
    log(f"{source.identity['location']}: {len(source.dataset)} pairs")
    corpus_texts, corpus_identity = load_corpus(corpus, corpus_column) if corpus is not None else (None, None)
    if corpus_identity:
        log(f"{corpus_identity['location']}: {corpus_identity['rows']} candidate documents besides the positives")

    from ..models.load import load_for_evaluation

    st_model, model_info, run = load_for_evaluation(model)
    model_info |= {"run": str(run.path) if run else None, "prompts": dict(st_model.prompts)}

    mined = run_miner(source.dataset, st_model, options, corpus_texts)
    pairs = set(zip(source.dataset["anchor"], source.dataset["positive"]))
    kept = set(zip(mined["anchor"], mined["positive"])) if len(mined) else set()
    counts = {
        "pairs": len(source.dataset),
        "distinct_pairs": len(pairs),
        "queries": len(set(source.dataset["anchor"])),
        "pairs_without_enough_negatives": len(pairs - kept),
        "rows": len(mined),
    }
    if not len(mined):
        raise InputError(
            f"no pair got {options.num_negatives} negatives that pass the filters: widen --range-max or loosen "
            "--absolute-margin, --relative-margin, --max-score, --min-score; nothing written"
        )
    if counts["pairs_without_enough_negatives"]:
        log(
            f"{counts['pairs_without_enough_negatives']} of {len(pairs)} distinct pairs got too few negatives: left out"
        )

    digest = write_jsonl(output, mined)
    sidecar = {
        "kind": KIND,
        "output": {"file": output.name, "sha256": digest, "rows": len(mined), "columns": mined.column_names},
        "data": source.identity,
        "corpus": corpus_identity,  # None: the positives of DATA only
        "model": model_info,
        "options": asdict(options),
        "counts": counts,
        "versions": versions(),
    }
    write_sidecar(output, sidecar)
    log(f"{len(mined)} rows written to {output} ({counts['distinct_pairs'] - counts['pairs_without_enough_negatives']} "
        f"pairs x {options.num_negatives} negatives; how they were mined: {sidecar_path(output)})")  # fmt: skip
    return sidecar


def run_miner(dataset, model, options: MineOptions, corpus: list[str] | None):
    """``mine_hard_negatives`` on an (anchor, positive) dataset: its progress bars and report go to standard error."""
    from sentence_transformers.util import mine_hard_negatives

    state = random.getstate()
    random.seed(options.seed)  # the miner's "random" sampling draws from the random module
    try:
        with library_output("sentence-transformers"):  # the miner prints its statistics and progress bars
            return mine_hard_negatives(
                dataset,
                model,
                anchor_column_name="anchor",
                positive_column_name="positive",
                corpus=corpus,
                range_min=options.range_min,
                range_max=options.range_max,
                max_score=options.max_score,
                min_score=options.min_score,
                absolute_margin=options.absolute_margin,
                relative_margin=options.relative_margin,
                num_negatives=options.num_negatives,
                sampling_strategy=options.sampling_strategy,
                output_format=options.output_format,
                output_scores=options.output_scores,
                batch_size=options.batch_size,
                faiss_batch_size=options.search_batch_size,
                verbose=True,
            )
    finally:
        random.setstate(state)


def write_jsonl(path: Path, dataset) -> str:
    """Write a Dataset as JSON lines, atomically; return the SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    columns = dataset.to_dict()
    names = list(columns)
    with atomic_open(path) as f:
        for values in zip(*columns.values()):
            line = json.dumps(dict(zip(names, values)), ensure_ascii=False) + "\n"
            digest.update(line.encode("utf-8"))
            f.write(line)
    return digest.hexdigest()
