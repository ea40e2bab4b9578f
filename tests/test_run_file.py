"""``bidir eval --run-file``: TREC run files whose scores keep bidir's order under trec_eval's re-sorting, checked
with ir_measures (pytrec_eval, i.e. trec_eval itself) on collections with tied scores."""

from __future__ import annotations

import random

import pytest
from helpers import bidir_eval, make_collection, random_sentence, write_beir

from bidir_cli.runs.results import EvalResult


def tied_collection(rng: random.Random) -> tuple[list, list, list]:
    """Groups of documents with the same text (so exactly the same score for every query) beside random ones.

    q1's text is group t's: its 15 copies tie for first place. bidir ranks tied documents by ascending id, so
    t00 is first and t13 fourteenth; trec_eval, re-sorting raw scores, ranks them by descending id: t14 first,
    t13 second, t00 fifteenth. Relevant: t00 and t13, so the two orders give different nDCG@10.
    """
    corpus = [{"_id": f"t{i:02d}", "text": "red cat sits on the old house"} for i in range(15)]
    corpus += [{"_id": f"u{i}", "text": "blue river flows"} for i in range(4)]
    corpus += [{"_id": f"x{i}", "text": random_sentence(rng, 6)} for i in range(40)]
    rng.shuffle(corpus)
    queries = [
        {"_id": "q1", "text": "red cat sits on the old house"},
        {"_id": "q2", "text": "blue river flows"},
        {"_id": "q3", "text": random_sentence(rng, 5)},
    ]
    qrels = [("q1", "t00", 1), ("q1", "t13", 1), ("q1", "x3", 0), ("q2", "u0", 1), ("q2", "u3", 2), ("q3", "x5", 1),
             ("q3", "x9", 1)]  # fmt: skip
    return corpus, queries, qrels


def ir_measures_ndcg(qrels_path, run_path) -> dict[str, float]:
    import ir_measures
    from ir_measures import nDCG

    qrels = list(ir_measures.read_trec_qrels(str(qrels_path)))
    run = list(ir_measures.read_trec_run(str(run_path)))
    return {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qrels, run)}


def test_ir_measures_on_the_run_file_equals_bidirs_ndcg_with_tied_scores(tmp_path, tiny_bert_path):
    import ir_measures
    from ir_measures import nDCG

    corpus, queries, qrels = tied_collection(random.Random(0))
    folder = write_beir(tmp_path / "ties", corpus, queries, qrels)
    run_path = tmp_path / "run.trec"
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--run-file", run_path, "--output", tmp_path / "o.json",
                        "--no-cache")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    ours = EvalResult.load(tmp_path / "o.json").datasets["ties"]
    assert ours.per_query["ndcg@10"][0] == pytest.approx(1 / (1 + 1 / 1.5849625007211563))  # t00 at rank 1 only

    # The files: the run (top 100 of each evaluated query, ranks 1..), the qrels beside it (binary).
    lines = [line.split() for line in run_path.read_text().splitlines()]
    assert (
        {len(fields) for fields in lines} == {6}
        and {f[1] for f in lines} == {"Q0"}
        and {f[5] for f in lines} == {"bidir"}
    )
    assert [f[2] for f in lines if f[0] == "q1"][:3] == ["t00", "t01", "t02"]  # ties by ascending id, as bidir
    assert all(sum(f[0] == q for f in lines) == len(corpus) for q in ("q1", "q2", "q3"))  # 59 documents < 100
    qrels_path = tmp_path / "run.qrels"
    assert sorted(qrels_path.read_text().splitlines()) == sorted(f"{q} 0 {d} {int(s > 0)}" for q, d, s in qrels)

    # ir_measures (pytrec_eval) re-sorts by score: the scores must carry bidir's order.
    reference = ir_measures_ndcg(qrels_path, run_path)
    assert reference == pytest.approx(dict(zip(ours.query_ids, ours.per_query["ndcg@10"], strict=True)), abs=1e-4)
    aggregate = ir_measures.calc_aggregate([nDCG @ 10], ir_measures.read_trec_qrels(str(qrels_path)),
                                           ir_measures.read_trec_run(str(run_path)))  # fmt: skip
    assert aggregate[nDCG @ 10] == pytest.approx(ours.metrics["ndcg@10"], abs=1e-4)

    # The control: the same run with the raw (tied) similarities gives trec_eval's order, another nDCG@10.
    tied = run_path.with_name("tied.trec")
    scores = {}
    for q, _, d, _, score, _ in lines:
        scores.setdefault(q, []).append((d, float(score)))
    rows = []
    for q, docs in scores.items():
        first = {}
        for d, score in docs:  # undo the adjustment: every copy of a text gets the score of its first copy
            text = next(c["text"] for c in corpus if c["_id"] == d)
            first.setdefault(text, score)
            rows.append(f"{q} Q0 {d} 0 {first[text]!r} raw")
    tied.write_text("\n".join(rows) + "\n")
    assert ir_measures_ndcg(qrels_path, tied)["q1"] < ours.per_query["ndcg@10"][0] - 0.1


def test_trec_scores_strictly_decrease_in_float32_and_stay_close_to_the_similarity():
    import numpy as np

    from bidir_cli.eval.run_file import trec_scores

    rng = random.Random(1)
    raw = sorted((rng.choice([0.5, 0.25, -0.125]) + rng.choice([0, 0, 1e-3]) for _ in range(100)), reverse=True)
    written = trec_scores(raw)
    as_float32 = [np.float32(x) for x in written]
    as_float64 = [float(x) for x in written]
    assert all(a > b for a, b in zip(as_float32, as_float32[1:]))  # trec_eval's float sim
    assert all(a > b for a, b in zip(as_float64, as_float64[1:]))  # ir_measures, ranx
    assert max(abs(a - b) for a, b in zip(as_float64, raw)) < 100 * 6e-8
    assert trec_scores([0.75, 0.5]) == ["0.75", "0.5"]  # untied scores are the similarities


def test_several_datasets_graded_qrels_and_nothing_replaced(tmp_path, tiny_bert_path):
    for seed, name in ((3, "one"), (4, "two")):
        write_beir(tmp_path / name, *make_collection(seed=seed, docs=30))
    (tmp_path / "pair.yaml").write_text("name: pair\ndatasets:\n  one: one\n  two: two\n")
    run_path = tmp_path / "out" / "run.trec"
    result = bidir_eval(tiny_bert_path, "--suite", tmp_path / "pair.yaml", "--run-file", run_path, "--graded",
                        "--no-cache", "--output", tmp_path / "o.json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in run_path.parent.iterdir()) == ["run.one.qrels", "run.one.trec", "run.two.qrels",
                                                                  "run.two.trec"]  # fmt: skip
    saved = EvalResult.load(tmp_path / "o.json")
    _, _, qrels = make_collection(seed=3, docs=30)
    evaluated = set(saved.datasets["one"].query_ids)
    graded = sorted(f"{q} 0 {d} {s}" for q, d, s in qrels if q in evaluated)
    assert sorted((run_path.parent / "run.one.qrels").read_text().splitlines()) == graded
    assert any(line.endswith(" 2") for line in graded)  # grades, not 0/1
    for name in ("one", "two"):
        ours = saved.datasets[name]
        reference = ir_measures_ndcg(run_path.parent / f"run.{name}.qrels", run_path.parent / f"run.{name}.trec")
        per_query = dict(zip(ours.query_ids, ours.per_query["ndcg@10_graded"], strict=True))
        assert reference == pytest.approx(per_query, abs=1e-4)
        assert ours.extra["run_file"] == str(run_path.parent / f"run.{name}.trec")

    before = (run_path.parent / "run.one.trec").read_bytes()
    again = bidir_eval(tiny_bert_path, "--suite", tmp_path / "pair.yaml", "--run-file", run_path, "--no-cache")
    assert again.exit_code == 2 and "bidir does not replace it" in again.stderr
    assert "loading model" not in again.stderr  # refused before any model work
    assert (run_path.parent / "run.one.trec").read_bytes() == before


def test_ids_a_trec_file_cannot_hold_are_refused(tmp_path, tiny_bert_path):
    corpus, queries, qrels = make_collection(seed=5, docs=20)
    corpus[0]["_id"] = "doc 0"
    qrels.append((queries[0]["_id"], "doc 0", 1))
    folder = write_beir(tmp_path / "spaces", corpus, queries, qrels)
    result = bidir_eval(tiny_bert_path, "--suite", folder, "--run-file", tmp_path / "run.trec")
    assert result.exit_code == 2
    assert "document id 'doc 0' is empty or contains white space" in result.stderr
    assert not (tmp_path / "run.trec").exists()
