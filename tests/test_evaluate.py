"""``bidir eval``: every metric against sentence-transformers' InformationRetrievalEvaluator, hand-computed
answers, the embedding cache, run directories, NanoBEIR copies, mteb, and bad input at the command line."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import pytest
from helpers import bidir_eval, make_collection, random_sentence, write_beir, write_nanobeir_copy
from typer.testing import CliRunner

from bidir_cli.cli import app
from bidir_cli.eval.metrics import METRIC_NAMES, METRICS
from bidir_cli.runs.results import EvalResult

runner = CliRunner()
# The metrics of sentence-transformers' InformationRetrievalEvaluator (binary relevance): all but the graded ones.
BINARY_METRICS = [m.name for m in METRICS if not m.graded]


def ir_evaluator(
    model, corpus: list[dict], queries: list[dict], qrels: list[tuple], corpus_embeddings=None
) -> dict[str, float]:
    """The reference: sentence-transformers' evaluator on dicts built here from the raw records (``corpus_embeddings``:
    the documents' embeddings in ``corpus`` order, instead of its own encoding of them)."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    docs = {d["_id"]: f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in corpus}
    relevant: dict[str, set[str]] = {}
    for query_id, doc_id, score in qrels:
        if score > 0 and doc_id in docs:
            relevant.setdefault(query_id, set()).add(doc_id)
    evaluator = InformationRetrievalEvaluator(
        {q["_id"]: q["text"] for q in queries},
        docs,
        relevant,
        precision_recall_at_k=[1, 3, 5, 10, 100],  # Recall@100 as bidir reports it
        batch_size=64,
        # compute_metrices (given the corpus embeddings) does not take the model's similarity as __call__ does
        score_functions=None if corpus_embeddings is None else {model.similarity_fn_name: model.similarity},
    )
    if corpus_embeddings is None:
        scores = evaluator(model)
        return {name: scores[f"{model.similarity_fn_name}_{name}"] for name in BINARY_METRICS}
    by_k = evaluator.compute_metrices(model, corpus_embeddings=corpus_embeddings)[model.similarity_fn_name]
    scores = {metric.replace("@k", f"@{k}"): v for metric, values in by_k.items() for k, v in values.items()}
    return {name: scores[name] for name in BINARY_METRICS}


def dcg(gains: list[int]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_every_metric_equals_information_retrieval_evaluator(tmp_path, tiny_bert, tiny_bert_path):
    corpus, queries, qrels = make_collection()
    folder = write_beir(tmp_path / "tiny", corpus, queries, qrels)

    result = bidir_eval(tiny_bert_path, "--suite", folder, "--output", tmp_path / "out.json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    [ours] = EvalResult.load(tmp_path / "out.json").datasets.values()

    reference = ir_evaluator(tiny_bert, corpus, queries, qrels)
    assert 0 < reference["ndcg@10"] < 1 and 0 < reference["recall@100"] < 1  # a case where ranks matter
    for name in BINARY_METRICS:
        assert ours.metrics[name] == pytest.approx(reference[name], abs=1e-6), name
    for name in METRIC_NAMES:
        per_query = ours.per_query[name]
        assert len(per_query) == len(ours.query_ids)
        assert sum(per_query) / len(per_query) == pytest.approx(ours.metrics[name], abs=1e-12)
    evaluated = {q for q, _, score in qrels if score > 0}
    assert set(ours.query_ids) == evaluated and ours.counts["queries"] == len(evaluated)
    assert ours.counts["queries_without_relevant"] == len(queries) - len(evaluated)


def test_ndcg_of_a_known_ranking(tmp_path, tiny_bert_path):
    # Documents a, b and c repeat q1's text: they score highest and tie, so ids order them a, b, c. Only c is
    # relevant, at rank 3: nDCG@10 = (1/log2 4) / 1 = 0.5, MRR@10 = 1/3. For q2, d repeats its text and is
    # its only relevant known document (the qrels' z is not in the corpus): nDCG@10 = MRR@10 = 1.
    rng = random.Random(3)
    corpus = [
        {"_id": "b", "text": "red cat sits"},
        {"_id": "c", "text": "red cat sits"},
        {"_id": "a", "text": "red cat sits"},
        {"_id": "d", "text": "old river flows"},
        *({"_id": f"x{i}", "text": random_sentence(rng, 6)} for i in range(20)),
    ]
    queries = [{"_id": "q1", "text": "red cat sits"}, {"_id": "q2", "text": "old river flows"}]
    folder = write_beir(tmp_path / "known", corpus, queries, [("q1", "c", 1), ("q2", "d", 1), ("q2", "z", 1)])

    result = bidir_eval(tiny_bert_path, "--suite", folder, "--output", tmp_path / "out.json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    ours = EvalResult.load(tmp_path / "out.json").datasets["known"]
    assert ours.query_ids == ["q1", "q2"]
    assert ours.per_query["ndcg@10"] == pytest.approx([dcg([0, 0, 1]) / dcg([1]), 1.0], abs=1e-9)
    assert ours.per_query["ndcg@10"][0] == pytest.approx(0.5, abs=1e-9)
    assert ours.per_query["mrr@10"] == pytest.approx([1 / 3, 1.0], abs=1e-9)
    assert ours.metrics["ndcg@10"] == pytest.approx(0.75, abs=1e-9)
    assert ours.counts["qrels_unknown_document"] == 1
    assert "dropped 1 qrels rows naming unknown documents" in result.stderr


def test_a_document_whose_id_equals_a_query_id_is_retrieved(tmp_path, tiny_bert, tiny_bert_path):
    # The classic collections number queries and documents from 1. Query 1's text is document 1's, so
    # document 1 ranks first; skipping it (as BEIR/TREC tools may) would give query 1 nDCG@10 = 0.
    import numpy as np

    rng = random.Random(5)
    corpus = [{"_id": str(i), "text": random_sentence(rng, 5)} for i in range(1, 31)]
    queries = [{"_id": "1", "text": corpus[0]["text"]}, {"_id": "2", "text": random_sentence(rng, 4)}]
    qrels = [("1", "1", 1), ("2", "2", 1), ("2", "7", 1)]
    folder = write_beir(tmp_path / "classic", corpus, queries, qrels)

    result = bidir_eval(tiny_bert_path, "--suite", folder, "--output", tmp_path / "out.json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    ours = EvalResult.load(tmp_path / "out.json").datasets["classic"]

    # By hand: cosine similarities, ranking by (score desc, id asc), binary nDCG@10.
    docs = tiny_bert.encode([d["text"] for d in corpus])
    docs = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    expected = []
    for q in queries:
        v = tiny_bert.encode(q["text"])
        scores = docs @ (v / np.linalg.norm(v))
        ranking = sorted(range(len(corpus)), key=lambda i: (-scores[i], corpus[i]["_id"]))[:10]
        relevant = {d for qid, d, _ in qrels if qid == q["_id"]}
        gains = [int(corpus[i]["_id"] in relevant) for i in ranking]
        expected.append(dcg(gains) / dcg([1] * min(len(relevant), 10)))
    assert expected[0] == pytest.approx(1.0)
    assert ours.per_query["ndcg@10"] == pytest.approx(expected, abs=1e-6)


def test_search_breaks_ties_by_document_id_across_chunks(monkeypatch):
    import torch

    from bidir_cli.eval import search

    gen = torch.Generator().manual_seed(0)
    corpus = torch.randint(0, 3, (57, 4), generator=gen).float()  # few distinct dot products: many ties
    queries = torch.randint(0, 3, (6, 4), generator=gen).float()
    ids = [f"doc{i:02d}" if i % 2 else str(i) for i in range(57)]  # string order is not index order
    scores = (queries @ corpus.T).tolist()
    expected = [sorted(range(57), key=lambda j: (-row[j], ids[j]))[:10] for row in scores]
    for chunk in (57, 8, 3):
        monkeypatch.setattr(search, "CORPUS_CHUNK_SIZE", chunk)
        assert search.search(queries, corpus, lambda a, b: a @ b.T, ids, top_k=10) == expected, chunk


def test_metrics_of_one_ranking_by_hand():
    from bidir_cli.eval.metrics import query_metrics

    ranking = ["n1", "r1", "n2", "r2"] + [f"n{i}" for i in range(3, 99)] + ["r3"]  # r3 at rank 101: not counted
    m = query_metrics(ranking, {"r1", "r2", "r3"})
    assert m["ndcg@10"] == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    )
    assert m["mrr@10"] == pytest.approx(1 / 2)
    assert m["map@100"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert (m["recall@1"], m["recall@3"], m["recall@5"], m["recall@100"]) == pytest.approx((0, 1 / 3, 2 / 3, 2 / 3))
    assert (m["precision@1"], m["precision@3"], m["precision@10"]) == pytest.approx((0, 1 / 3, 2 / 10))
    assert (m["accuracy@1"], m["accuracy@3"]) == (0.0, 1.0)


def test_cache_is_used_and_changes_nothing(tmp_path, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=1, docs=60)
    folder = write_beir(tmp_path / "tiny", corpus, queries, qrels)
    cache = tmp_path / "cache"

    cold = bidir_eval(tiny_bert_path, "--suite", folder, "--cache-dir", cache, "--output", tmp_path / "cold.json")
    warm = bidir_eval(tiny_bert_path, "--suite", folder, "--cache-dir", cache, "--output", tmp_path / "warm.json")
    assert cold.exit_code == warm.exit_code == 0
    assert "from the cache" not in cold.stderr and "corpus embeddings read from the cache" in warm.stderr
    assert len(list(cache.glob("*.npy"))) == 1
    cold_result = EvalResult.load(tmp_path / "cold.json").datasets["tiny"]
    warm_result = EvalResult.load(tmp_path / "warm.json").datasets["tiny"]
    assert (cold_result.extra["embedding_cache"], warm_result.extra["embedding_cache"]) == ("miss", "hit")
    assert warm_result.per_query == cold_result.per_query

    # Embeddings are cached at full dimension and truncated after: a truncation reads the same entry and
    # gives what a cold truncated evaluation gives.
    out = tmp_path / "truncated.json"
    truncated = bidir_eval(
        tiny_bert_path, "--suite", folder, "--cache-dir", cache, "--truncate-dim", 16, "--output", out
    )
    assert truncated.exit_code == 0 and "corpus embeddings read from the cache" in truncated.stderr
    assert len(list(cache.glob("*.npy"))) == 1
    cold_truncated = bidir_eval(tiny_bert_path, "--suite", folder, "--no-cache", "--truncate-dim", 16, "--output",
                                tmp_path / "cold16.json")  # fmt: skip
    assert cold_truncated.exit_code == 0
    assert (EvalResult.load(out).datasets["tiny"].per_query
            == EvalResult.load(tmp_path / "cold16.json").datasets["tiny"].per_query)  # fmt: skip


def test_run_directory_gets_its_eval_file(tmp_path, tiny_bert_path):
    run = tmp_path / "runs" / "r1"
    shutil.copytree(tiny_bert_path, run / "model")
    (run / "meta.json").write_text(json.dumps({"status": "completed"}))
    corpus, queries, qrels = make_collection(seed=2, docs=40)
    folder = write_beir(tmp_path / "mini", corpus, queries, qrels)

    result = bidir_eval(run, "--suite", folder, "--no-cache")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.relative_to(run).as_posix() for p in (run / "eval").rglob("*")) == ["eval/mini.json"]
    saved = EvalResult.load(run / "eval" / "mini.json")
    assert saved.suite["name"] == "mini" and list(saved.datasets) == ["mini"]
    assert saved.model["path"] == str((run / "model").resolve()) and len(saved.model["fingerprint"]) == 64
    assert saved.settings["batch_size"] == 64 and saved.settings["device"] == "cpu"
    assert {"bidir", "sentence-transformers", "transformers", "torch", "python"} <= set(saved.versions)
    dataset = saved.datasets["mini"]
    assert dataset.counts["corpus"] == 40 and dataset.time_s > 0 and len(dataset.hash) == 64
    assert set(dataset.per_query) == set(METRIC_NAMES)
    # The table on standard output: the dataset's row with its nDCG@10.
    assert "mini" in result.stdout and f"{dataset.metrics['ndcg@10']:.4f}" in result.stdout


def test_suite_file_table_has_a_mean_row(tmp_path, tiny_bert_path):
    for seed, name in ((3, "one"), (4, "two")):
        write_beir(tmp_path / name, *make_collection(seed=seed, docs=30))
    (tmp_path / "pair.yaml").write_text("name: pair\ndatasets:\n  one: one\n  two: two\n")
    result = bidir_eval(
        tiny_bert_path, "--suite", tmp_path / "pair.yaml", "--output", tmp_path / "o.json", "--no-cache"
    )
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(tmp_path / "o.json")
    mean = (saved.datasets["one"].metrics["ndcg@10"] + saved.datasets["two"].metrics["ndcg@10"]) / 2
    assert saved.to_dict()["mean"]["ndcg@10"] == pytest.approx(mean)
    assert any(line.split()[1:2] == ["mean"] and f"{mean:.4f}" in line for line in result.stdout.splitlines())


def test_nanobeir_copy_matches_information_retrieval_evaluator(tmp_path, tiny_bert, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=6, docs=50)
    tables = {
        "corpus": [{"_id": d["_id"], "text": d["text"]} for d in corpus],  # the hub's corpus has no title
        "queries": queries,
        "qrels": [{"query-id": q, "corpus-id": d} for q, d, score in qrels if score > 0],
    }
    copy = write_nanobeir_copy(tmp_path / "NanoBEIR-en", {"NanoSciFact": tables, "NanoArguAna": tables})
    result = bidir_eval(
        tiny_bert_path, "--suite", copy, "--datasets", "scifact", "--output", tmp_path / "o.json", "--no-cache"
    )
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(tmp_path / "o.json")
    assert saved.suite["name"] == "nanobeir" and list(saved.datasets) == ["NanoSciFact"]
    reference = ir_evaluator(tiny_bert, tables["corpus"], queries, qrels)
    assert saved.datasets["NanoSciFact"].metrics["ndcg@10"] == pytest.approx(reference["ndcg@10"], abs=1e-6)


def test_nanobeir_without_the_hub_fails_fast_saying_what_to_do(tmp_path, tiny_bert_path, monkeypatch):
    import datasets
    from huggingface_hub import constants

    # Empty caches: no copy downloaded earlier on this machine can stand in for the hub.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    start = time.perf_counter()
    result = bidir_eval(tiny_bert_path, "--datasets", "scifact")  # --suite nanobeir is the default
    assert time.perf_counter() - start < 20
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bidir: error: could not load sentence-transformers/NanoBEIR-en")
    assert "local copy" in line and "--suite NanoBEIR-en" in line and "BEIR folder" in line


def test_mteb_backend_agrees_and_is_shown_beside_ours(tmp_path, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=7, docs=80)
    folder = write_beir(tmp_path / "tiny", corpus, queries, qrels)
    result = bidir_eval(
        tiny_bert_path, "--suite", folder, "--backend", "mteb", "--no-cache", "--output", tmp_path / "o.json"
    )
    assert result.exit_code == 0, result.stderr
    dataset = EvalResult.load(tmp_path / "o.json").datasets["tiny"]
    assert abs(dataset.extra["mteb"]["ndcg@10"] - dataset.metrics["ndcg@10"]) < 0.002
    assert "mteb ndcg@10" in result.stdout and f"{dataset.extra['mteb']['ndcg@10']:.4f}" in result.stdout


def bad_input(*args) -> str:
    """Run bidir eval expecting exit status 2 and one line on standard error; return that line."""
    result = bidir_eval(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bidir: error: ")
    return line


def late_error(*args) -> str:
    """Run bidir eval expecting exit status 2 from a check that needs the loaded model (after the progress lines):
    its last line of standard error is the error; return that line."""
    result = bidir_eval(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("bidir: error: ")
    return line


def test_bad_input_gives_one_clear_line_and_status_2(tmp_path, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=8, docs=20)
    good = write_beir(tmp_path / "good", corpus, queries, qrels)

    no_qrels = write_beir(tmp_path / "no_qrels", corpus, queries, qrels)
    (no_qrels / "qrels" / "test.tsv").unlink()
    assert "missing qrels/test.tsv" in bad_input(tiny_bert_path, "--suite", no_qrels)

    broken = write_beir(tmp_path / "broken", corpus, queries, qrels)
    with open(broken / "queries.jsonl", "a") as f:
        f.write("{not json}\n")
    line = bad_input(tiny_bert_path, "--suite", broken)
    assert f"queries.jsonl line {len(queries) + 1}: not valid JSON" in line

    no_relevant = write_beir(tmp_path / "no_relevant", corpus, queries, [(q, "nowhere", 1) for q, _, _ in qrels])
    assert "no query has a relevant document" in bad_input(tiny_bert_path, "--suite", no_relevant)

    assert "no such file or folder" in bad_input(tiny_bert_path, "--suite", tmp_path / "nope")
    assert "--datasets: nope not in suite 'good'" in bad_input(tiny_bert_path, "--suite", good, "--datasets", "nope")
    assert "no such model folder" in bad_input(tmp_path / "no-model", "--suite", good)
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "notes.txt").write_text("not weights")
    assert bad_input(tmp_path / "notamodel", "--suite", good) == (
        f"bidir: error: {tmp_path / 'notamodel'}: not a model folder (a sentence-transformers or transformers model "
        "has modules.json or config.json)"
    )
    # The bundled suites: listed for a bare demo:, a misspelt one gets the closest (the list is bidir_cli/demo's
    # BEIR folders, read here from the package's own files).
    from importlib import resources

    bundled = sorted(
        p.name for p in resources.files("bidir_cli").joinpath("demo").iterdir() if (p / "corpus.jsonl").is_file()
    )
    assert bundled == ["wordnet-eval"]
    assert (
        bad_input(tiny_bert_path, "--suite", "demo:")
        == "bidir: error: --suite demo:: name a bundled demo suite: demo:wordnet-eval"
    )
    assert bad_input(tiny_bert_path, "--suite", "demo:wordnet-evl") == (
        "bidir: error: --suite demo:wordnet-evl: no such bundled suite (did you mean wordnet-eval?); bundled: "
        "demo:wordnet-eval"
    )
    assert "--backend: 'faiss' is not one of bidir, mteb" in bad_input(
        tiny_bert_path, "--suite", good, "--backend", "faiss"
    )


def test_unknown_documents_and_unjudged_queries_are_counted_not_fatal(tmp_path, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=9, docs=30)
    folder = write_beir(tmp_path / "loose", corpus, queries, [*qrels, ("q0", "ghost", 1), ("q99", corpus[0]["_id"], 1)])
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--output", tmp_path / "o.json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    counts = EvalResult.load(tmp_path / "o.json").datasets["loose"].counts
    assert counts["qrels_unknown_document"] == 1 and counts["qrels_unknown_query"] == 1
    assert counts["queries_without_relevant"] >= 1
    assert "loose: dropped 1 qrels rows naming unknown documents, e.g." in result.stderr
    assert "loose: dropped 1 qrels rows naming unknown queries, e.g." in result.stderr
    assert "queries have no relevant document: not evaluated" in result.stderr


@pytest.mark.slow
@pytest.mark.heavy
def test_minilm_on_a_shared_collection_equals_information_retrieval_evaluator(tmp_path, minilm_path, shared_data):
    """The real model on a real collection. Encoding MEDLINE's 1,033 abstracts takes about 40 s on 2 cores, so it
    is encoded once, by ``bidir eval``; the oracles around it stay independent of bidir: a sample of 64 documents
    encoded by sentence-transformers itself must equal bidir's embeddings of them, the evaluator encodes the queries
    itself, searches and scores on its own, and its nDCG@10 must be the collection's published figure (which was
    computed with the evaluator's own encoding of every document)."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    folder = shared_data / "eval" / "medline"
    corpus = [json.loads(line) for line in open(folder / "corpus.jsonl")]
    queries = [json.loads(line) for line in open(folder / "queries.jsonl")]
    rows = [line.rstrip("\n").split("\t") for line in open(folder / "qrels" / "test.tsv")][1:]
    qrels = [(q, d, int(s)) for q, d, s in rows]

    cache = tmp_path / "cache"
    result = bidir_eval(minilm_path, "--suite", folder, "--output", tmp_path / "o.json", "--cache-dir", cache)
    assert result.exit_code == 0, result.stderr
    ours = EvalResult.load(tmp_path / "o.json").datasets["medline"]
    assert ours.counts["corpus"] == 1033 and ours.counts["queries"] == 30
    (cached,) = cache.glob("*.npy")
    embeddings = np.load(cached)  # bidir's corpus embeddings, one row a document in file order

    model = SentenceTransformer(str(minilm_path), device="cpu")
    texts = [f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in corpus]
    longest = sorted(range(len(texts)), key=lambda i: -len(texts[i]))[:32]  # truncated at 256 tokens
    sample = sorted(set(longest) | set(range(0, len(texts), len(texts) // 32)))[:64]
    by_them = model.encode([texts[i] for i in sample], batch_size=64)
    assert np.abs(by_them - embeddings[sample]).max() < 1e-5

    reference = ir_evaluator(model, corpus, queries, qrels, corpus_embeddings=torch.from_numpy(embeddings))
    assert reference["ndcg@10"] == pytest.approx(0.788, abs=1e-3)  # the figure in shared/data/README.md
    for name in BINARY_METRICS:
        assert ours.metrics[name] == pytest.approx(reference[name], abs=1e-6), name


# --- Graded relevance: ndcg@10_graded against trec_eval (pytrec_eval through ir_measures) ----------------------


def trec_ndcg_at_10(qrels: dict[str, dict[str, int]], rankings: dict[str, list[str]]) -> dict[str, float]:
    """trec_eval's ndcg_cut.10 per query (graded gains), on rankings given strictly decreasing scores."""
    import ir_measures
    from ir_measures import nDCG

    run = {q: {doc: float(len(docs) - i) for i, doc in enumerate(docs)} for q, docs in rankings.items()}
    return {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qrels, run)}


def test_graded_ndcg_of_random_rankings_equals_trec_eval():
    from bidir_cli.eval.metrics import query_metrics

    rng = random.Random(11)
    qrels, rankings = {}, {}
    for q in range(40):
        docs = [f"d{i}" for i in range(30)]
        judged = rng.sample(docs, rng.randint(1, 12))
        grades = {d: rng.choice([0, 1, 2, 3]) for d in judged}
        grades[judged[0]] = rng.choice([1, 2, 3])  # at least one relevant document
        qrels[f"q{q}"] = grades
        rankings[f"q{q}"] = rng.sample(docs, 25)
    reference = trec_ndcg_at_10(qrels, rankings)
    ours = {q: query_metrics(rankings[q], qrels[q]) for q in qrels}
    assert {q: m["ndcg@10_graded"] for q, m in ours.items()} == pytest.approx(reference, abs=1e-9)
    # The binary figure is another number on graded judgements (and equal on binary ones).
    assert any(abs(m["ndcg@10"] - m["ndcg@10_graded"]) > 0.01 for m in ours.values())
    binary = {q: {d: int(g > 0) for d, g in grades.items()} for q, grades in qrels.items()}
    for q in qrels:
        m = query_metrics(rankings[q], binary[q])
        assert m["ndcg@10_graded"] == pytest.approx(m["ndcg@10"], abs=1e-12)


def test_graded_flag_shows_graded_ndcg_equal_to_trec_eval_on_bidirs_ranking(tmp_path, tiny_bert, tiny_bert_path):
    import numpy as np

    corpus, queries, qrels = make_collection(seed=12, docs=60)  # grades 0, 1 and 2
    folder = write_beir(tmp_path / "graded", corpus, queries, qrels)
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--graded", "--output", tmp_path / "o.json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(tmp_path / "o.json")
    ours = saved.datasets["graded"]
    assert saved.settings["graded"] is True
    assert "ndcg@10_graded" in result.stdout and f"{ours.metrics['ndcg@10_graded']:.4f}" in result.stdout

    # By hand: cosine similarities, (score desc, id asc), the judgements as written in the qrels file.
    docs = tiny_bert.encode([f"{d['title']} {d['text']}" if d["title"] else d["text"] for d in corpus])
    docs = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    judged = {}
    for q, d, grade in qrels:
        judged.setdefault(q, {})[d] = grade
    rankings = {}
    for q in queries:
        if q["_id"] in ours.query_ids:
            v = tiny_bert.encode(q["text"])
            scores = docs @ (v / np.linalg.norm(v))
            order = sorted(range(len(corpus)), key=lambda i: (-scores[i], corpus[i]["_id"]))[:100]
            rankings[q["_id"]] = [corpus[i]["_id"] for i in order]
    reference = trec_ndcg_at_10({q: judged[q] for q in rankings}, rankings)
    per_query = dict(zip(ours.query_ids, ours.per_query["ndcg@10_graded"], strict=True))
    assert per_query == pytest.approx(reference, abs=1e-6)
    assert ours.metrics["ndcg@10_graded"] != pytest.approx(ours.metrics["ndcg@10"], abs=1e-3)  # graded data


# --- Prompts, sequence length and model options (issue 19) -----------------------------------------------------


def beir_dicts(corpus: list[dict], queries: list[dict], qrels: list[tuple]):
    """InformationRetrievalEvaluator's inputs, built here from the raw records."""
    docs = {d["_id"]: f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in corpus}
    relevant: dict[str, set[str]] = {}
    for query_id, doc_id, score in qrels:
        if score > 0 and doc_id in docs:
            relevant.setdefault(query_id, set()).add(doc_id)
    return {q["_id"]: q["text"] for q in queries}, docs, relevant


def reference_metrics(model, corpus, queries, qrels, **evaluator_kwargs) -> dict[str, float]:
    """sentence-transformers' InformationRetrievalEvaluator, with its own prompt and truncation arguments."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    evaluator = InformationRetrievalEvaluator(
        *beir_dicts(corpus, queries, qrels), precision_recall_at_k=[1, 3, 5, 10, 100], batch_size=64,
        **evaluator_kwargs,
    )  # fmt: skip
    scores = evaluator(model)
    prefix = f"{model.similarity_fn_name}_"
    return {name: scores[prefix + name] for name in BINARY_METRICS}


def test_prompts_from_the_command_line_equal_information_retrieval_evaluators(tmp_path, tiny_bert, tiny_bert_path):
    import hashlib

    corpus, queries, qrels = make_collection(seed=13, docs=60)
    folder = write_beir(tmp_path / "tiny", corpus, queries, qrels)
    out = tmp_path / "o.json"
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--query-prompt", "red cat ", "--document-prompt",
                        "blue ", "--no-cache", "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(out)
    ours = saved.datasets["tiny"]
    reference = reference_metrics(tiny_bert, corpus, queries, qrels, query_prompt="red cat ", corpus_prompt="blue ")
    plain = reference_metrics(tiny_bert, corpus, queries, qrels)
    assert reference["ndcg@10"] != pytest.approx(plain["ndcg@10"], abs=1e-4)  # the prompts change the numbers
    for name in BINARY_METRICS:
        assert ours.metrics[name] == pytest.approx(reference[name], abs=1e-6), name
    # Recorded: what was given, and the prompts in force; the file's key is a hash of what was given.
    assert saved.settings["overrides"] == {"query_prompt": "red cat ", "document_prompt": "blue "}
    assert saved.settings["prompts"] == {"query": "red cat ", "document": "blue "}
    given = json.dumps({"document_prompt": "blue ", "query_prompt": "red cat "}, sort_keys=True)
    assert saved.stem == f"tiny--p{hashlib.sha256(given.encode()).hexdigest()[:8]}"


def test_a_suite_files_dataset_prompts_win_over_the_command_lines(tmp_path, tiny_bert, tiny_bert_path):
    collections = {name: make_collection(seed=seed, docs=30) for seed, name in ((14, "one"), (15, "two"))}
    for name, records in collections.items():
        write_beir(tmp_path / name, *records)
    (tmp_path / "s.yaml").write_text(
        "name: s\ndatasets:\n  one: {path: one, query_prompt: 'green tree ', document_prompt: 'old '}\n  two: two\n"
    )
    out = tmp_path / "o.json"
    result = bidir_eval(tiny_bert_path, "--suite", tmp_path / "s.yaml", "--query-prompt", "red cat ", "--no-cache",
                        "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(out)
    one = reference_metrics(tiny_bert, *collections["one"], query_prompt="green tree ", corpus_prompt="old ")
    two = reference_metrics(tiny_bert, *collections["two"], query_prompt="red cat ")
    assert saved.datasets["one"].metrics["ndcg@10"] == pytest.approx(one["ndcg@10"], abs=1e-6)
    assert saved.datasets["two"].metrics["ndcg@10"] == pytest.approx(two["ndcg@10"], abs=1e-6)
    assert saved.datasets["one"].extra["prompts"] == {"query": "green tree ", "document": "old "}
    assert "prompts" not in saved.datasets["two"].extra

    (tmp_path / "bad.yaml").write_text("datasets:\n  one: {path: one, query_promt: 'x'}\n")
    line = bad_input(tiny_bert_path, "--suite", tmp_path / "bad.yaml")
    assert "datasets.one.query_promt: unknown key (did you mean query_prompt?)" in line


def test_max_seq_length_equals_the_model_truncated_by_hand(tmp_path, tiny_bert, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=16, docs=50)
    folder = write_beir(tmp_path / "tiny", corpus, queries, qrels)
    out = tmp_path / "o.json"
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--max-seq-length", 5, "--no-cache", "--output", out)
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(out)
    tiny_bert.max_seq_length = 5
    reference = reference_metrics(tiny_bert, corpus, queries, qrels)
    for name in BINARY_METRICS:
        assert saved.datasets["tiny"].metrics[name] == pytest.approx(reference[name], abs=1e-6), name
    assert saved.settings["max_seq_length"] == 5 and saved.settings["overrides"] == {"max_seq_length": 5}
    assert saved.stem == "tiny--len5"
    assert "the model has 64 positions" in late_error(tiny_bert_path, "--suite", folder, "--max-seq-length", 65)


def test_device_and_trust_remote_code_reach_the_loader_and_the_results(tmp_path, tiny_bert_path, monkeypatch):

    seen = {}
    from bidir_cli.models import load as models

    real = models.load_model

    def spy(name, **kwargs):
        seen.update(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(models, "load_model", spy)
    folder = write_beir(tmp_path / "tiny", *make_collection(seed=17, docs=20))
    out = tmp_path / "o.json"
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--device", "cpu", "--trust-remote-code", "--no-cache",
                        "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert seen["device"] == "cpu" and seen["trust_remote_code"] is True and seen["backend"] == "torch"
    saved = EvalResult.load(out)
    assert saved.settings["device"] == "cpu" and saved.settings["trust_remote_code"] is True
    assert saved.stem == "tiny"  # neither changes the numbers: not part of the key

    assert "not a torch device" in bad_input(tiny_bert_path, "--suite", folder, "--device", "gpu0")
    import torch

    if not torch.cuda.is_available():
        assert "no CUDA device here" in bad_input(tiny_bert_path, "--suite", folder, "--device", "cuda")
        assert "fp16 needs a CUDA device" in bad_input(tiny_bert_path, "--suite", folder, "--precision", "fp16")


# --- Progress ---------------------------------------------------------------------------------------------------


def test_encoding_reports_progress_and_the_query_count_comes_after_the_work(tmp_path, tiny_bert, capsys):
    from bidir_cli.eval.command import evaluate
    from bidir_cli.eval.suites import resolve_suite

    folder = write_beir(tmp_path / "tiny", *make_collection(seed=18, docs=90))
    suite = resolve_suite(str(folder))
    [dataset] = suite.load()
    evaluate(tiny_bert, [dataset], suite=suite, model_info={"name": "t", "fingerprint": None}, batch_size=16,
             progress=True)  # fmt: skip
    err = capsys.readouterr().err
    # tqdm's bars on standard error, counting texts (the first frame at least: a fast encoding ends within
    # tqdm's refresh interval, and the bar is cleared when done).
    assert "tiny: documents:" in err and "/90 [" in err and "texts/s" in err
    assert "tiny: queries:" in err
    # Without a terminal and without asking, no bar (a log file gets none).
    evaluate(tiny_bert, [dataset], suite=suite, model_info={"name": "t", "fingerprint": None}, batch_size=16)
    quiet = capsys.readouterr().err
    assert "tiny: documents:" not in quiet and "texts/s" not in quiet
    lines = quiet.splitlines()
    encoding = next(i for i, line in enumerate(lines) if "encoding 90 documents" in line)
    evaluated = next(i for i, line in enumerate(lines) if f"{dataset.counts['queries']} queries evaluated" in line)
    assert encoding < evaluated


# --- Several truncations in one call ----------------------------------------------------------------------------


def test_several_truncations_encode_once_and_equal_separate_runs_and_the_evaluator(tmp_path, tiny_bert, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=19, docs=70)
    folder = write_beir(tmp_path / "tiny", corpus, queries, qrels)
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--truncate-dim", "16,8", "--no-cache", "--output",
                        tmp_path / "o.json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("encoding 70 documents") == 1
    assert sorted(p.name for p in tmp_path.glob("o*.json")) == ["o--dim16.json", "o--dim8.json"]
    for dim in (16, 8):
        together = EvalResult.load(tmp_path / f"o--dim{dim}.json")
        assert together.settings["truncate_dim"] == dim and together.stem == f"tiny--dim{dim}"
        single = bidir_eval(tiny_bert_path, "--suite", folder, "--truncate-dim", dim, "--no-cache", "--output",
                            tmp_path / f"single{dim}.json")  # fmt: skip
        assert single.exit_code == 0
        alone = EvalResult.load(tmp_path / f"single{dim}.json").datasets["tiny"]
        assert together.datasets["tiny"].per_query == alone.per_query
        reference = reference_metrics(tiny_bert, corpus, queries, qrels, truncate_dim=dim)
        for name in BINARY_METRICS:
            assert together.datasets["tiny"].metrics[name] == pytest.approx(reference[name], abs=1e-6), (dim, name)
    assert "(dim16)" in result.stdout and "(dim8)" in result.stdout  # one table per truncation
    assert "--truncate-dim 33 exceeds the model's 32 dimensions" in late_error(
        tiny_bert_path, "--suite", folder, "--truncate-dim", "16,33"
    )
    assert "a dimension is repeated" in bad_input(tiny_bert_path, "--suite", folder, "--truncate-dim", "8,8")
    assert "positive whole numbers" in bad_input(tiny_bert_path, "--suite", folder, "--truncate-dim", "8,x")


# --- Model backends (sentence-transformers' torch, onnx, openvino) ---------------------------------------------


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_model_backend_arguments_are_checked_before_any_work(tmp_path, tiny_bert_path):
    folder = write_beir(tmp_path / "tiny", *make_collection(seed=20, docs=20))
    assert "--model-backend tensorrt: 'tensorrt' is not one of torch, onnx, openvino" in bad_input(
        tiny_bert_path, "--suite", folder, "--model-backend", "tensorrt"
    )
    if not _installed("optimum.onnxruntime"):
        line = bad_input(tiny_bert_path, "--suite", folder, "--model-backend", "onnx")
        assert "--model-backend onnx: its packages are not installed" in line and "sentence-transformers[onnx]" in line
    else:
        line = bad_input(tiny_bert_path, "--suite", folder, "--model-backend", "onnx", "--precision", "bf16")
        assert "--model-backend onnx runs fp32" in line
    if _installed("optimum.intel.openvino"):
        line = bad_input(tiny_bert_path, "--suite", folder, "--model-backend", "openvino", "--precision", "fp16")
        assert "fp16 needs a CUDA device" in line or "--model-backend openvino runs fp32 or bf16" in line


def test_openvino_backend_gets_its_precision_hint_its_own_file_and_cache_key(tmp_path, tiny_bert_path, monkeypatch):
    """The OpenVINO path, with a torch model standing in for the exported one (optimum-intel is an optional extra
    that the test environment cannot hold beside sentence-transformers 6: docs/eval.md). What bidir does is
    checked here: sentence-transformers is asked for backend="openvino" with the precision hint, the results go
    to their own file, and the embedding cache never hands torch's embeddings to another backend. How close
    OpenVINO's numbers are to torch's is measured by scripts/bench_eval.py --variants."""
    import sentence_transformers

    from bidir_cli.eval import command as eval_command_module

    calls = []
    real = sentence_transformers.SentenceTransformer

    class Recording(real):
        def __init__(self, *args, backend="torch", model_kwargs=None, **kwargs):
            calls.append((backend, model_kwargs))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Recording)
    monkeypatch.setattr(eval_command_module, "backend_problem", lambda backend: None)  # as if installed
    run = tmp_path / "runs" / "r"
    shutil.copytree(tiny_bert_path, run / "model")
    (run / "meta.json").write_text(json.dumps({"status": "completed"}))
    folder = write_beir(tmp_path / "tiny", *make_collection(seed=21, docs=60))
    cache = tmp_path / "cache"
    assert bidir_eval(run, "--suite", folder, "--cache-dir", cache).exit_code == 0
    result = bidir_eval(run, "--suite", folder, "--cache-dir", cache, "--model-backend", "openvino")
    assert result.exit_code == 0, result.stderr
    assert calls == [("torch", None), ("openvino", {"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}})]
    torch_result = EvalResult.load(run / "eval" / "tiny.json")
    openvino = EvalResult.load(run / "eval" / "tiny--openvino.json")
    assert torch_result.settings["model_backend"] == "torch" and openvino.settings["model_backend"] == "openvino"
    assert openvino.datasets["tiny"].extra["embedding_cache"] == "miss"  # torch's entry was not read
    assert (
        bidir_eval(run, "--suite", folder, "--no-cache", "--model-backend", "openvino", "--precision", "bf16").exit_code
        == 0
    )
    assert calls[-1] == ("openvino", {"ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}})
    assert EvalResult.load(run / "eval" / "tiny--bf16--openvino.json").settings["precision"] == "bf16"
    # bidir compare reads a run's torch results by default and the OpenVINO ones when asked.
    shutil.copytree(run, tmp_path / "runs" / "r2", ignore=shutil.ignore_patterns("model"))
    for wanted, file in (([], "tiny.json"), (["--model-backend", "openvino"], "tiny--openvino.json")):
        compared = CliRunner().invoke(
            app, ["compare", str(run), str(tmp_path / "runs" / "r2"), "--format", "json", *wanted]
        )
        assert compared.exit_code == 0, compared.stderr
        assert [Path(c["runs"][0]).name for c in json.loads(compared.stdout)["columns"]] == [file, file]


# --- The demo suite, as a config names it -----------------------------------------------------------------------


def test_demo_suite_by_name_equals_information_retrieval_evaluator(tmp_path, tiny_bert, tiny_bert_path):
    from bidir_cli.demo import demo_path

    folder = demo_path("wordnet-eval")
    corpus = [json.loads(line) for line in open(folder / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(line) for line in open(folder / "queries.jsonl", encoding="utf-8")]
    rows = [line.rstrip("\n").split("\t") for line in open(folder / "qrels" / "test.tsv", encoding="utf-8")][1:]
    qrels = [(q, d, float(s)) for q, d, s in rows]
    result = bidir_eval(tiny_bert_path, "--suite", "demo:wordnet-eval", "--no-cache", "--output", tmp_path / "o.json")
    assert result.exit_code == 0, result.stderr
    saved = EvalResult.load(tmp_path / "o.json")
    assert saved.suite["name"] == "wordnet-eval" and list(saved.datasets) == ["wordnet-eval"]
    ours = saved.datasets["wordnet-eval"]
    assert ours.counts["corpus"] == len(corpus) and ours.counts["queries"] == 300
    reference = reference_metrics(tiny_bert, corpus, queries, qrels)
    assert ours.metrics["ndcg@10"] == pytest.approx(reference["ndcg@10"], abs=1e-6)
