"""Models: the one to train (a hub id, a local folder, or a StaticEmbedding built from a tokenizer), the one
to evaluate (a run directory, a folder or a hub id), and a model's identity (a fingerprint of its files)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..config.schema import ModelConfig
from ..errors import InputError
from .load import load_model, looks_like_path


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A lower-cased WordPiece tokenizer whose vocabulary is learnt from ``texts``, deterministically.

    The vocabulary is every character seen (alone and as a ``##`` continuation, so no word is unknown)
    plus the most frequent words, ties broken alphabetically. The tokenizers library's own WordPiece
    trainer breaks ties in hash order, which differs between processes: a resumed run would then map
    tokens to other rows of the checkpoint's embedding matrix, and two runs of one config would differ.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = sorted({c for word in counts for c in word})
    vocab = specials + characters + [f"##{c}" for c in characters]
    known = set(vocab)
    words = sorted((w for w in counts if w not in known), key=lambda w: (-counts[w], w))
    vocab += words[: max(0, vocab_size - len(vocab))]

    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip


def load_tokenizer(name: str, revision: str | None):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(Path(name).expanduser()) if looks_like_path(name) else name,
                                                  revision=revision)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - offline, missing or malformed: one message
        raise InputError(
            f"model.static.tokenizer: could not load tokenizer {name!r}: {type(e).__name__}: {e}"
        ) from None
    if not tokenizer.is_fast:
        raise InputError(f"model.static.tokenizer: {name!r} is not a fast tokenizer, which StaticEmbedding needs")
    return tokenizer


def build_model(cfg: ModelConfig, train_texts: Iterable[str] | None = None, device: str | None = None):
    """The SentenceTransformer to train, with the config's sequence length and prompts."""
    from sentence_transformers import SentenceTransformer

    if cfg.static is not None:
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding

        if cfg.static.tokenizer == "train":
            if train_texts is None:
                raise InputError("model.static.tokenizer: 'train' needs the training texts")
            tokenizer = train_tokenizer(train_texts, cfg.static.vocab_size)
        else:
            tokenizer = load_tokenizer(cfg.static.tokenizer, cfg.revision)
        model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=cfg.static.dim)], device=device)
    else:
        model = load_model(cfg.name_or_path, revision=cfg.revision, device=device, where="model.name_or_path")
    if cfg.max_seq_length is not None and cfg.static is None:
        model.max_seq_length = cfg.max_seq_length
    prompts = {k: v for k, v in (("query", cfg.query_prompt), ("document", cfg.document_prompt)) if v}
    if prompts:
        model.prompts = {**model.prompts, **prompts}
    return model
