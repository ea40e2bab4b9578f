"""What the tests build: tiny tokenizers, models, configs, training pairs and BEIR collections, all in code.

Test modules import these from here (never from one another); fixtures that share them live in conftest.py.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bidir_cli.cli import app, invoke
from bidir_cli.experiment import executors

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

WORDS = (
    "the a cat dog bird fish tree house car road river mountain city small big red blue green fast slow "
    "runs sits flies swims grows stands drives flows rises sleeps old new happy sad bright dark warm cold "
    "apple bread water milk stone glass paper metal wood light sound music word book page story"
).split()


def random_sentence(rng: random.Random, n: int | None = None) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(3, 9)))


def make_tokenizer():
    """A word-level tokenizer over WORDS with BERT's special tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def build_tiny_bert(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-dim BERT with the word-level tokenizer as a folder SentenceTransformer can load."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = make_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_pairs(path: Path, n: int = 64, negatives: int = 0, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = {"anchor": f"query {i} {random_sentence(rng)}", "positive": f"doc {i} {random_sentence(rng)}"}
        for k in range(1, negatives + 1):
            row[f"negative_{k}"] = f"neg {i} {k} {random_sentence(rng)}"
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def tiny_config(tmp_path: Path, **sections) -> Path:
    """A config training a 16-dim StaticEmbedding (tokenizer learnt from the data) for 6 steps."""
    write_pairs(tmp_path / "pairs.jsonl")
    config = {
        "name": "tiny",
        "model": {"static": {"tokenizer": "train", "vocab_size": 200, "dim": 16}},
        "data": {"train": [{"source": "pairs.jsonl"}]},
        "loss": {"name": "mnbrl"},
        "training": {"per_device_train_batch_size": 8, "max_steps": 6, "learning_rate": 0.05, "logging_steps": 2, "save_steps": 2,
                     "save_total_limit": None},
    }  # fmt: skip
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def write_tiny_beir(folder: Path, n_queries: int = 6, n_docs: int = 20, seed: int = 0) -> Path:
    """A tiny BEIR collection: query i's relevant document is doc i."""
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"doc {i} {random_sentence(rng)}"} for i in range(n_docs)]
    queries = [{"_id": f"q{i}", "text": f"query {i} {random_sentence(rng)}"} for i in range(n_queries)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n_queries))
    )
    return folder


def run_train(*args: str):
    result = CliRunner().invoke(app, ["train", *args])
    return result


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.iterdir()}


def write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple], header: bool = True) -> Path:
    """Write a BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = ["query-id\tcorpus-id\tscore"] if header else []
    rows += ["\t".join(str(x) for x in row) for row in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


def write_nanobeir_copy(folder: Path, splits: dict[str, dict[str, list[dict]]]) -> Path:
    """A local copy in the hub layout of sentence-transformers/NanoBEIR-en: the dataset card's ``configs``
    name one parquet file per (subset, split), as ``hf download ... --repo-type dataset`` leaves them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    card = ["---", "configs:"]
    for subset in ("corpus", "queries", "qrels"):
        (folder / subset).mkdir(parents=True, exist_ok=True)
        card += [f"- config_name: {subset}", "  data_files:"]
        for split, tables in splits.items():
            pq.write_table(pa.Table.from_pylist(tables[subset]), folder / subset / f"{split}-00000-of-00001.parquet")
            card += [f"  - split: {split}", f"    path: {subset}/{split}-*"]
    (folder / "README.md").write_text("\n".join([*card, "---", "# NanoBEIR (test copy)", ""]))
    return folder


def bidir_eval(*args: str):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def make_collection(seed: int = 0, docs: int = 150, queries: int = 12) -> tuple[list, list, list]:
    """Distinct random texts; most relevant documents share words with their query, so a model finds some.

    Ids are ``d*`` and ``q*``: no document id equals a query id (that case has its own test).
    """
    rng = random.Random(seed)
    texts: set[str] = set()

    def fresh(prefix: str = "") -> str:
        while True:
            text = (prefix + " " + random_sentence(rng)).strip()
            if text not in texts:
                texts.add(text)
                return text

    query_list = [{"_id": f"q{i}", "text": fresh()} for i in range(queries)]
    corpus, qrels = [], []
    for q in query_list[:-1]:  # the last query has no judgement: counted, not evaluated
        for _ in range(rng.randint(1, 4)):
            doc_id = f"d{len(corpus)}"
            corpus.append({"_id": doc_id, "title": "", "text": fresh(q["text"] if rng.random() < 0.6 else "")})
            qrels.append((q["_id"], doc_id, rng.choice([1, 2, 0])))  # 0: judged not relevant
    while len(corpus) < docs:
        title = fresh() if len(corpus) % 3 == 0 else ""
        corpus.append({"_id": f"d{len(corpus)}", "title": title, "text": fresh()})
    rng.shuffle(corpus)
    return corpus, query_list, qrels


BIDIR = [sys.executable, "-m", "bidir_cli.cli"]


def in_process(prefix: list[str]) -> executors.Executor:
    return executors.InProcessExecutor(invoke) if prefix == executors.BIDIR else executors.SubprocessExecutor(prefix)


def bidir(*args, check: bool = False) -> subprocess.CompletedProcess:
    """``bidir ARGS`` in this process, an experiment's cells too (in-process executor)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(executors, "default_executor", in_process)
        result = CliRunner().invoke(app, list(map(str, args)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if check:
        assert result.exit_code == 0, result.stderr
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def bidir_process(*args, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """``bidir ARGS`` as its own process, with the subprocess executor for its cells (what users run)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*BIDIR, *map(str, args)], capture_output=True, text=True, env=env, **kwargs)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write_experiment(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = tiny_config(folder, training={"max_steps": 4, "save_steps": 2})
    write_tiny_beir(folder / "test-beir", n_queries=8, seed=1)
    write_tiny_beir(folder / "heldout-beir", n_queries=8, seed=2)
    spec = {
        "name": "tiny-loss",
        "base": base.name,
        "arms": {"mnrl": {"loss.name": "mnrl"}, "mnbrl": {"loss.name": "mnbrl"}},
        "baseline": "mnrl",
        "seeds": 2,
        "evaluate": ["test-beir"],
        "confirm": ["heldout-beir"],
        "threads": 1,
    } | changes
    path = folder / "tiny.experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
