"""Retrieval data: the DESIGN.md conventions, bad input named by file and line, suites and NanoBEIR copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_beir, write_nanobeir_copy

from bidir_cli.errors import InputError
from bidir_cli.eval.loaders import NANOBEIR_HUB_ID, check_hub_reachable, load_beir_folder
from bidir_cli.eval.suites import load_suite_file, resolve_suite

REPO = Path(__file__).resolve().parents[1]


CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "the cat sits"},
    {"_id": "d2", "title": "", "text": "a dog runs"},
    {"_id": "d3", "text": "birds fly"},  # no title field at all
    {"_id": 4, "title": None, "text": "fish swim"},  # integer id, null title
]
QUERIES = [
    {"_id": "q1", "text": "cat"},
    {"_id": "q2", "text": "dog"},
    {"_id": "q3", "text": "bird"},  # judged, but only with score 0
    {"_id": "q4", "text": "fish"},  # not judged at all
]


def test_beir_folder_follows_the_data_conventions(tmp_path):
    qrels = [("q1", "d1", 2), ("q1", "d2", 0), ("q2", "d2", 1), ("q2", "d9", 1), ("q9", "d1", 1), ("q3", "d3", 0)]
    ds = load_beir_folder(write_beir(tmp_path / "tiny", CORPUS, QUERIES, qrels))

    assert ds.name == "tiny"
    assert ds.corpus_ids == ["d1", "d2", "d3", "4"]
    assert ds.corpus_texts == ["Cats the cat sits", "a dog runs", "birds fly", "fish swim"]
    assert ds.query_ids == ["q1", "q2"]  # q3 has no score > 0, q4 no judgement
    assert ds.query_texts == ["cat", "dog"]
    assert ds.qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}}  # graded scores kept
    assert ds.relevant("q1") == {"d1"}
    assert ds.counts == {
        "corpus": 4,
        "queries": 2,
        "queries_in_file": 4,
        "queries_without_relevant": 2,
        "qrels_rows": 6,
        "qrels_relevant": 2,
        "qrels_unknown_document": 1,
        "qrels_unknown_query": 1,
        "qrels_duplicate": 0,
    }
    notes = " | ".join(ds.notes)
    assert "1 qrels rows naming unknown documents" in notes and "'d9'" in notes
    assert "1 qrels rows naming unknown queries" in notes and "'q9'" in notes
    assert "2 of 4 queries have no relevant document" in notes


def test_document_ids_equal_to_query_ids_are_kept(tmp_path):
    corpus = [{"_id": "1", "text": "one"}, {"_id": "2", "text": "two"}]
    queries = [{"_id": "1", "text": "uno"}, {"_id": "2", "text": "dos"}]
    ds = load_beir_folder(write_beir(tmp_path / "c", corpus, queries, [("1", "1", 1), ("2", "1", 1)]))
    assert ds.corpus_ids == ["1", "2"]
    assert ds.relevant("1") == {"1"} and ds.relevant("2") == {"1"}


def test_content_hash_changes_with_content_only(tmp_path):
    a = load_beir_folder(write_beir(tmp_path / "a", CORPUS, QUERIES, [("q1", "d1", 1)]))
    b = load_beir_folder(write_beir(tmp_path / "b", CORPUS, QUERIES, [("q1", "d1", 1)]))
    c = load_beir_folder(write_beir(tmp_path / "c", CORPUS, QUERIES, [("q1", "d2", 1)]))
    assert a.hash == b.hash and a.corpus_hash == b.corpus_hash
    assert a.hash != c.hash and a.corpus_hash == c.corpus_hash


def test_missing_files_are_all_named(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "corpus.jsonl").write_text("")
    with pytest.raises(InputError, match=r"missing queries.jsonl, qrels/test.tsv"):
        load_beir_folder(tmp_path / "half")


def test_malformed_lines_are_reported_with_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "bad", CORPUS, QUERIES, [("q1", "d1", 1)])
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines[1] = '{"_id": "d2", "text": '  # truncated JSON on line 2
    lines[2] = '{"_id": "d3"}'  # no text on line 3
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with open(folder / "qrels" / "test.tsv", "a") as f:
        f.write("q2\td2\tvery\n")  # line 3 of the qrels
    with pytest.raises(InputError) as e:
        load_beir_folder(folder)
    assert e.value.problems == [
        f"{folder / 'corpus.jsonl'} line 2: not valid JSON (Expecting value, column 23)",
        f"{folder / 'corpus.jsonl'} line 3: missing field 'text'",
        f"{folder / 'qrels' / 'test.tsv'} line 3: score 'very' is not a number",
    ]


def test_duplicate_ids_are_errors_naming_both_lines(tmp_path):
    corpus = [*CORPUS, {"_id": "d1", "text": "again"}]
    folder = write_beir(tmp_path / "dup", corpus, QUERIES, [("q1", "d1", 1)])
    with pytest.raises(InputError, match=r"corpus.jsonl line 5: duplicate document id 'd1' \(first at .*line 1\)"):
        load_beir_folder(folder)


def test_no_evaluable_query_is_an_error(tmp_path):
    folder = write_beir(tmp_path / "none", CORPUS, QUERIES, [("q1", "d9", 1), ("q2", "d2", 0)])
    with pytest.raises(InputError, match="no query has a relevant document"):
        load_beir_folder(folder)


def test_suite_file_resolves_folders_against_its_own_location(tmp_path):
    write_beir(tmp_path / "data" / "one", CORPUS, QUERIES, [("q1", "d1", 1)])
    write_beir(tmp_path / "data" / "two", CORPUS, QUERIES, [("q2", "d2", 1)])
    (tmp_path / "suites").mkdir()
    suite_file = tmp_path / "suites" / "mine.yaml"
    suite_file.write_text("# two tiny folders\ndatasets:\n  first: ../data/one\n  second: ../data/two\n")

    suite = resolve_suite(str(suite_file))
    assert suite.name == "mine"  # the file name, as no name is given
    assert [d.name for d in suite.load()] == ["first", "second"]
    assert [d.name for d in suite.select("SECOND").load()] == ["second"]
    with pytest.raises(InputError, match=r"--datasets: third not in suite 'mine' \(it has: first, second\)"):
        suite.select("third")


def test_suite_entry_can_read_another_qrels_split(tmp_path):
    folder = write_beir(tmp_path / "data", CORPUS, QUERIES, [("q1", "d1", 1)])
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\nq4\t4\t2\n")
    suite_file = tmp_path / "dev.yaml"
    suite_file.write_text("datasets:\n  dev: {path: data, qrels: train}\n  test: data\n")
    dev, test = resolve_suite(str(suite_file)).load()
    assert dev.query_ids == ["q2", "q4"] and dev.relevant("q4") == {"4"}
    assert test.query_ids == ["q1"]
    (folder / "qrels" / "train.tsv").unlink()
    with pytest.raises(InputError, match=r"datasets.dev: .*missing qrels/train.tsv"):
        resolve_suite(str(suite_file)).load()


def test_suite_file_problems_are_reported_together(tmp_path):
    suite_file = tmp_path / "bad.yaml"
    suite_file.write_text("nmae: x\ndatasets:\n  a: 3\n")
    with pytest.raises(InputError) as e:
        load_suite_file(suite_file)
    assert e.value.problems == [
        f"{suite_file}: nmae: unknown key (did you mean name?)",
        f"{suite_file}: datasets.a: expected a folder path, or a mapping with path (and optionally qrels, a split "
        "name, query_prompt and document_prompt)",
    ]


def test_suite_entry_that_is_not_a_beir_folder_names_the_entry(tmp_path):
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text("name: s\ndatasets:\n  gone: ./nowhere\n")
    with pytest.raises(InputError, match=r"s.yaml: datasets.gone: .*nowhere: not a BEIR folder: missing corpus.jsonl"):
        load_suite_file(suite_file).load()


def test_unknown_suite_path_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        resolve_suite(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a BEIR folder"):
        resolve_suite(str(tmp_path / "empty"))


def test_nanobeir_copy_loads_like_the_hub_layout(tmp_path):
    tables = {
        "corpus": [{"_id": "d1", "text": "the cat sits"}, {"_id": "d2", "text": "a dog runs"}],
        "queries": [{"_id": "q1", "text": "cat"}, {"_id": "q2", "text": "nothing"}],
        "qrels": [{"query-id": "q1", "corpus-id": "d1"}, {"query-id": "q1", "corpus-id": "d7"}],
    }
    copy = write_nanobeir_copy(tmp_path / "NanoBEIR-en", {"NanoSciFact": tables, "NanoNFCorpus": tables})
    suite = resolve_suite(str(copy))
    assert suite.name == "nanobeir" and list(suite.loaders) == ["NanoSciFact", "NanoNFCorpus"]
    [ds] = suite.select("scifact").load()  # the short name of NanoBEIREvaluator works too
    assert ds.name == "NanoSciFact"
    assert ds.corpus_texts == ["the cat sits", "a dog runs"]
    assert ds.query_ids == ["q1"] and ds.qrels == {"q1": {"d1": 1}}  # hub qrels list relevant pairs only
    assert ds.counts["qrels_unknown_document"] == 1 and ds.counts["queries_without_relevant"] == 1


def test_nanobeir_hub_unreachable_fails_fast_with_a_way_out(monkeypatch):
    from huggingface_hub import HfApi, constants

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    with pytest.raises(InputError) as e:
        check_hub_reachable(NANOBEIR_HUB_ID)
    message = str(e.value)
    assert "cannot reach the Hugging Face Hub" in message and "Name or service not known" in message
    assert f"hf download {NANOBEIR_HUB_ID} --repo-type dataset" in message and "BEIR folder" in message


def test_shipped_suite_file_names_the_shared_collections(shared_data):
    suite = load_suite_file(REPO / "configs" / "suites" / "shared-eval.yaml")
    assert suite.name == "shared-eval"
    assert list(suite.loaders) == ["scifact", "vaswani", "cranfield", "cisi", "medline", "lisa"]
    [medline] = suite.select("medline").load()
    assert medline.counts["corpus"] == 1033 and medline.counts["queries"] == 30  # shared/data/README.md
