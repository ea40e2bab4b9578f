"""`bidir mine` on tiny data with a tiny static model: what the miner excludes, that every option reaches it
(checked against a similarity ranking computed by hand from the model's weights), the sidecar and its way into
a run's meta.json, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml
from helpers import WORDS, make_tokenizer
from typer.testing import CliRunner

from bidir_cli.cli import app

# --------------------------------------------------------------------------------------------------
# Tiny data and model


@pytest.fixture(scope="session")
def static_dir(tmp_path_factory) -> Path:
    """A 16-dim StaticEmbedding over the word-level test tokenizer, saved as a model folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("static") / "model"
    SentenceTransformer(modules=[StaticEmbedding(make_tokenizer(), embedding_dim=16)], device="cpu").save(str(path))
    return path


def distinct_texts(
    rng: random.Random, n: int, used: set, prefix: tuple[str, ...] = (), words: tuple[int, int] = (3, 7)
) -> list[str]:
    """Texts of ``prefix`` and 3 to 7 more words whose bags of words differ from each other and from ``used``
    (a static model embeds a bag of words, so equal bags would tie in every ranking)."""
    out = []
    while len(out) < n:
        text = (*prefix, *(rng.choice(WORDS) for _ in range(rng.randint(*words))))
        bag = tuple(sorted(text))
        if bag not in used:
            used.add(bag)
            out.append(" ".join(text))
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def themed_pairs(n_queries: int = 12, positives: int = 3, seed: int = 0) -> list[dict]:
    """Each query is a theme of 4 words; its several positives are the theme and one more word, so they are the
    nearest documents to it: exactly the texts a miner must not return as negatives."""
    rng, used = random.Random(seed), set()
    rows = []
    for _ in range(n_queries):
        theme = tuple(rng.sample(WORDS, 4))
        (query,) = distinct_texts(rng, 1, used, theme, words=(0, 0))
        rows += [{"anchor": query, "positive": p} for p in distinct_texts(rng, positives, used, theme, words=(1, 1))]
    return rows


def random_pairs(n: int = 24, seed: int = 1) -> list[dict]:
    rng, used = random.Random(seed), set()
    anchors, positives = distinct_texts(rng, n, used), distinct_texts(rng, n, used)
    return [{"anchor": a, "positive": p} for a, p in zip(anchors, positives)]


def mine(*args: str):
    return CliRunner().invoke(app, ["mine", *map(str, args)])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def negatives_of(row: dict) -> list[str]:
    return [row[k] for k in sorted((k for k in row if k.startswith("negative")), key=lambda k: (len(k), k))]


# --------------------------------------------------------------------------------------------------
# The independent computation: cosine similarity from the StaticEmbedding weights, in float64


class HandRanking:
    """Every candidate ranked for a query by cosine similarity, each text embedded as the mean of its tokens'
    rows of the embedding matrix (what StaticEmbedding computes), without calling encode."""

    def __init__(self, model_dir: Path, rows: list[dict], extra_corpus: list[str] = ()) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        module = SentenceTransformer(str(model_dir), device="cpu")[0]
        self.weight = module.embedding.weight.detach().double()
        self.tokenizer = module.tokenizer
        self.positives: dict[str, set[str]] = {}
        for r in rows:
            self.positives.setdefault(r["anchor"], set()).add(r["positive"])
        self.candidates = list(dict.fromkeys([*extra_corpus, *(r["positive"] for r in rows)]))
        self.torch = torch

    def embed(self, text: str):
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        v = self.weight[ids].mean(0)
        return v / v.norm()

    def score(self, query: str, doc: str) -> float:
        return float(self.embed(query) @ self.embed(doc))

    def ranking(self, query: str, exclude_positives: bool = True) -> list[tuple[float, str]]:
        """(score, text), best first; the query's positives and its own text left out unless told otherwise."""
        excluded = (self.positives[query] | {query}) if exclude_positives else set()
        scored = [(self.score(query, c), c) for c in self.candidates if c not in excluded]
        return sorted(scored, key=lambda t: -t[0])

    def lowest_positive(self, query: str) -> float:
        return min(self.score(query, p) for p in self.positives[query])


# --------------------------------------------------------------------------------------------------
# What the miner must never return


@pytest.mark.parametrize("fmt", ["n-tuple", "triplet"])
def test_negatives_are_never_a_positive_of_their_query(tmp_path, static_dir, fmt):
    rows = themed_pairs()
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    hand = HandRanking(static_dir, rows)
    # The test has teeth: by raw similarity, a query's own positives lead its ranking.
    for q, positives in hand.positives.items():
        assert hand.ranking(q, exclude_positives=False)[0][1] in positives

    out = tmp_path / "mined.jsonl"
    result = mine(data, "--model", static_dir, "--output", out, "-n", 4, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # results are the file; progress and the miner's statistics go to stderr
    assert "Negative candidates mined" in result.stderr and "Metric" in result.stderr

    mined = read_jsonl(out)
    assert {(r["anchor"], r["positive"]) for r in mined} <= {(r["anchor"], r["positive"]) for r in rows}
    for row in mined:
        negatives = negatives_of(row)
        assert len(negatives) == (4 if fmt == "n-tuple" else 1)
        assert not set(negatives) & hand.positives[row["anchor"]], row
        assert row["anchor"] not in negatives
    if fmt == "triplet":  # one row per (pair, negative): 4 distinct negatives per pair
        per_pair: dict = {}
        for row in mined:
            per_pair.setdefault((row["anchor"], row["positive"]), []).append(row["negative"])
        assert all(len(v) == len(set(v)) == 4 for v in per_pair.values())


# --------------------------------------------------------------------------------------------------
# Options reach the miner, checked against the hand ranking


@pytest.mark.parametrize(("n", "range_min"), [(3, 0), (2, 2), (1, 5)])
def test_top_negatives_are_the_hand_ranking(tmp_path, static_dir, n, range_min):
    """--sampling top takes ranks range_min .. range_min + n - 1 of the candidates that are not the query's
    positives; --corpus adds candidates (title joined to text, the BEIR way); --scores reports the cosines."""
    rows = random_pairs()
    rng = random.Random(7)
    used = {tuple(sorted(t.split())) for r in rows for t in r.values()}
    extra = distinct_texts(rng, 30, used)
    # Every third document in BEIR style: its first word as the title.
    split = [t.split(" ", 1) if i % 3 == 0 else ["", t] for i, t in enumerate(extra)]
    corpus_rows = [{"_id": f"d{i}", "title": title, "text": text} for i, (title, text) in enumerate(split)]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", corpus_rows)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "mined.jsonl"

    args = ["-n", n, "--range-min", range_min, "--corpus", corpus, "--scores"]
    result = mine(data, "--model", static_dir, "--output", out, *args)
    assert result.exit_code == 0, result.output
    # Standard output is empty; on standard error (not a terminal here) every line is bidir's, the miner's own
    # lines prefixed, and no progress bar.
    assert result.stdout == "" and "\r" not in result.stderr and "Batches" not in result.stderr
    assert all(line.startswith("bidir: ") for line in result.stderr.splitlines()), result.stderr
    assert "bidir: sentence-transformers: Negative candidates mined" in result.stderr
    hand = HandRanking(static_dir, rows, extra_corpus=extra)  # the joined texts are the original texts
    mined = read_jsonl(out)
    assert len(mined) == len(rows)
    assert any(neg in extra for row in mined for neg in negatives_of(row))  # the corpus took part
    for row in mined:
        expected = hand.ranking(row["anchor"])[range_min : range_min + n]
        assert negatives_of(row) == [text for _, text in expected]
        want = [hand.score(row["anchor"], row["positive"]), *(s for s, _ in expected)]
        assert row["scores"] == pytest.approx(want, abs=1e-5)


def test_range_max_bounds_the_random_draw(tmp_path, static_dir):
    rows = random_pairs(n=40)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    hand = HandRanking(static_dir, rows)

    def draw(range_max: int, seed: int) -> list[dict]:
        out = tmp_path / f"mined-{len(list(tmp_path.glob('mined-*.jsonl')))}.jsonl"
        args = ["-n", 2, "--sampling", "random", "--range-max", range_max, "--seed", seed]
        result = mine(data, "--model", static_dir, "--output", out, *args)
        assert result.exit_code == 0, result.output
        return read_jsonl(out)

    wide = draw(6, seed=0)
    top2 = top_beyond = 0
    for row in wide:
        ranked = [t for _, t in hand.ranking(row["anchor"])]
        negatives = negatives_of(row)
        assert set(negatives) <= set(ranked[:6])  # never beyond range_max
        assert negatives == sorted(negatives, key=ranked.index)  # the miner re-sorts a draw by score
        top2 += set(negatives) == set(ranked[:2])
        top_beyond += any(ranked.index(x) >= 2 for x in negatives)
    assert top_beyond > len(wide) // 2 and top2 < len(wide)  # a draw, not the top 2
    assert draw(6, seed=0) == wide  # seeded
    # ... and the record is the same too, but for the file's name: an identity, no times.
    first, again = (json.loads(p.read_text()) for p in sorted(tmp_path.glob("mined-[01].jsonl.mined.json")))
    assert first["output"].pop("file") != again["output"].pop("file") and first == again
    assert draw(6, seed=1) != wide
    # With range_max = num_negatives there is nothing to draw from but the top n.
    for row in draw(2, seed=0):
        assert set(negatives_of(row)) == {t for _, t in hand.ranking(row["anchor"])[:2]}


@pytest.mark.parametrize("n", [1, 4])
def test_num_negatives_sets_the_columns(tmp_path, static_dir, n):
    rows = random_pairs()
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out, triplets = tmp_path / "tuple.jsonl", tmp_path / "triplet.jsonl"
    assert mine(data, "--model", static_dir, "--output", out, "-n", n).exit_code == 0
    assert mine(data, "--model", static_dir, "--output", triplets, "-n", n, "--format", "triplet").exit_code == 0
    assert list(read_jsonl(out)[0]) == ["anchor", "positive", *(f"negative_{i}" for i in range(1, n + 1))]
    mined = read_jsonl(triplets)
    assert list(mined[0]) == ["anchor", "positive", "negative"] and len(mined) == n * len(rows)


@pytest.mark.parametrize(
    ("option", "value", "keep"),
    [
        ("--absolute-margin", 0.1, lambda s, pos, v: s <= pos - v),
        ("--relative-margin", 0.5, lambda s, pos, v: s <= pos - abs(pos) * v),
        ("--max-score", 0.2, lambda s, pos, v: s <= v),
        ("--min-score", 0.5, lambda s, pos, v: s >= v),
    ],
)
def test_score_filters_match_the_hand_ranking(tmp_path, static_dir, option, value, keep):
    """Each filter keeps the candidates it documents; a pair left with too few is left out, and counted."""
    rows = random_pairs(n=30)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "mined.jsonl"
    # A range_max beyond the corpus lets every candidate compete, so the hand ranking needs no window.
    result = mine(data, "--model", static_dir, "--output", out, "-n", 3, "--range-max", 1000, option, value)
    hand = HandRanking(static_dir, rows)
    expected, unfiltered = {}, {}
    for r in rows:
        q = r["anchor"]
        unfiltered[(q, r["positive"])] = [t for _, t in hand.ranking(q)[:3]]
        eligible = [t for s, t in hand.ranking(q) if keep(s, hand.lowest_positive(q), value)]
        if len(eligible) >= 3:
            expected[(q, r["positive"])] = eligible[:3]
    changed = sum(expected.get(pair) != top for pair, top in unfiltered.items())
    assert expected and changed >= len(rows) // 3, changed  # the filter bites, and leaves something
    assert result.exit_code == 0, result.output
    assert {(r["anchor"], r["positive"]): negatives_of(r) for r in read_jsonl(out)} == expected
    sidecar = json.loads(Path(f"{out}.mined.json").read_text())
    dropped = len(rows) - len(expected)
    assert sidecar["counts"]["pairs_without_enough_negatives"] == dropped
    assert (f"{dropped} of {len(rows)} distinct pairs got too few negatives" in result.stderr) == (dropped > 0)


# --------------------------------------------------------------------------------------------------
# Identity: the sidecar, and a run's meta.json


def test_identity_lands_in_a_runs_meta_json(tmp_path, static_dir):
    from bidir_cli.config.schema import SourceConfig
    from bidir_cli.data.sources import load_source
    from bidir_cli.runs.rundir import fingerprint_folder

    rows = random_pairs(n=32)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "mined" / "negatives.jsonl"
    result = mine(data, "--model", static_dir, "--output", out, "-n", 2, "--range-min", 1, "--relative-margin", 0.0)
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "mined" / "negatives.jsonl.mined.json").read_text())

    # What the sidecar says, each checked independently.
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps([r["anchor"], r["positive"]], ensure_ascii=False).encode() + b"\n")
    assert sidecar["data"]["hash"] == digest.hexdigest() and sidecar["data"]["rows"] == 32
    assert sidecar["data"]["location"] == str(data.resolve())
    assert sidecar["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert sidecar["output"]["rows"] == len(read_jsonl(out))
    assert sidecar["model"]["fingerprint"] == fingerprint_folder(static_dir)
    assert sidecar["corpus"] is None
    assert sidecar["options"] == {
        "num_negatives": 2, "range_min": 1, "range_max": None, "absolute_margin": None, "relative_margin": 0.0,
        "max_score": None, "min_score": None, "sampling_strategy": "top", "seed": 0, "batch_size": 32,
        "search_batch_size": 16384, "output_format": "n-tuple", "output_scores": False,
    }  # fmt: skip
    assert {"bidir", "sentence-transformers", "torch", "python"} <= set(sidecar["versions"])

    # Train a few steps on the mined file: the source's identity in meta.json carries the sidecar.
    config = {
        "name": "on-mined",
        "model": {"static": {"tokenizer": "train", "vocab_size": 200, "dim": 16}},
        "data": {"train": [{"source": str(out)}]},
        "loss": {"name": "mnbrl"},
        "training": {"per_device_train_batch_size": 8, "max_steps": 2, "logging_steps": 1, "save_steps": 2},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    trained = CliRunner().invoke(app, ["train", str(tmp_path / "config.yaml"), "--output-dir", str(run)])
    assert trained.exit_code == 0, trained.output
    (source,) = json.loads((run / "meta.json").read_text())["data"]["sources"]
    assert source["negatives"] == 2
    assert source["mined"] == {**sidecar, "verified": True}

    # A run directory is a model too: its model/ mines, and the sidecar names the run.
    again = tmp_path / "again.jsonl"
    assert mine(data, "--model", run, "--output", again).exit_code == 0
    model = json.loads(Path(f"{again}.mined.json").read_text())["model"]
    assert model["run"] == str(run) and model["fingerprint"] == fingerprint_folder(run / "model")

    # Edited after mining, the file no longer matches its record, and the identity says so.
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:-1]))
    edited = load_source(SourceConfig(source=str(out)), tmp_path, "data.train.0")
    assert edited.identity["mined"]["verified"] is False

    # A folder source reads the mined file, not its sidecar, and names the mined file.
    folder = load_source(SourceConfig(source=str(out.parent)), tmp_path, "data.train.0")
    assert len(folder.dataset) == len(read_jsonl(out)) and list(folder.identity["mined"]) == ["negatives.jsonl"]


def test_overwrite_replaces_only_a_mined_file(tmp_path, static_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", random_pairs())
    out = tmp_path / "mined.jsonl"
    assert mine(data, "--model", static_dir, "--output", out, "-n", 1).exit_code == 0
    first = out.read_text()
    refused = mine(data, "--model", static_dir, "--output", out, "-n", 2)
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr and out.read_text() == first
    assert mine(data, "--model", static_dir, "--output", out, "-n", 2, "--overwrite").exit_code == 0
    assert list(read_jsonl(out)[0]) == ["anchor", "positive", "negative_1", "negative_2"]
    assert json.loads(Path(f"{out}.mined.json").read_text())["options"]["num_negatives"] == 2

    # A file bidir did not mine is never replaced, --overwrite or not.
    Path(f"{out}.mined.json").unlink()
    refused = mine(data, "--model", static_dir, "--output", out, "--overwrite")
    assert refused.exit_code == 2 and "did not mine" in refused.stderr


# --------------------------------------------------------------------------------------------------
# Bad input: exit 2, one message, nothing written


BAD_INPUT = {
    "no such data": (lambda d: ["missing.jsonl"], "missing.jsonl: no such file"),
    "row without positive": (lambda d: [d(positive=None)], "pairs.jsonl, row 3: column 'positive' is missing"),
    "blank anchor": (lambda d: [d(anchor="  ")], "pairs.jsonl, row 3: column 'anchor' is blank"),
    "no such column": (lambda d: [d(), "--anchor-column", "query"], "no column 'query' (anchor)"),
    "num negatives 0": (lambda d: [d(), "-n", 0], "--num-negatives: must be at least 1"),
    "range too narrow": (lambda d: [d(), "-n", 3, "--range-min", 2, "--range-max", 4], "--range-max: 4 leaves 2"),
    "unknown sampling": (lambda d: [d(), "--sampling", "best"], "--sampling: 'best' is not one of top, random"),
    "unknown format": (lambda d: [d(), "--format", "labeled-pair"], "--format: 'labeled-pair' is not one of"),
    "output not jsonl": (lambda d: [d(), "--output", "out.csv"], "--output: out.csv: give a .jsonl file"),
    "no such model": (lambda d: [d(), "--model", "./nope"], "./nope: no such model folder"),
    "no such corpus": (lambda d: [d(), "--corpus", "nope.jsonl"], "--corpus: nope.jsonl: no such file"),
    "corpus row without text": (lambda d: [d(), "--corpus", "corpus.jsonl"], "corpus.jsonl, row 2: column 'text'"),
    "nothing passes": (lambda d: [d(), "--max-score", -1.0], "no pair got 3 negatives that pass the filters"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_exits_2_and_writes_nothing(tmp_path, static_dir, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    make_args, message = BAD_INPUT[case]
    pairs = random_pairs()
    write_jsonl(tmp_path / "corpus.jsonl", [{"text": "cat"}, {"body": "dog"}])

    def data(**change) -> str:
        rows = [dict(r) for r in pairs]
        rows[2] = {k: v for k, v in {**rows[2], **change}.items() if v is not None}
        write_jsonl(tmp_path / "pairs.jsonl", rows)
        return "pairs.jsonl"

    args = make_args(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    options = {"--model": str(static_dir), "--output": "out.jsonl"}
    for flag in options:
        if flag in args:
            i = args.index(flag)
            options[flag] = args.pop(i + 1)
            args.pop(i)
    result = mine(*args, *(x for kv in options.items() for x in kv))
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("bidir: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no sidecar, no temporary file
