"""Tiny random T5, mT5 and umT5 models in the released layouts, each with its own tokenizer, built offline.

A tokenizer is a Unigram model (the kind T5's sentencepiece vocabularies are) trained here on a few
sentences in several scripts with the ``tokenizers`` library, with </s> appended to every caption as
T5's is, wrapped in transformers' T5 tokenizer and saved with ``save_pretrained``; the model is a
random encoder (``T5EncoderModel`` & co.) or a full encoder-decoder (``...ForConditionalGeneration``,
as google/umt5-xxl is published), saved with ``save_pretrained`` (optionally in shards with an index).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

CORPUS = [
    "A red car drives along a wet street at night, its lights reflected in the puddles.",
    "Two dogs run across a sunny meadow; the camera follows them slowly.",
    "Красная машина едет по мокрой улице ночью, огни отражаются в лужах.",
    "Две собаки бегут по солнечному лугу, камера медленно следует за ними.",
    "一辆红色的汽车在夜晚潮湿的街道上行驶，灯光倒映在水坑里。",
    "两只狗跑过阳光明媚的草地，镜头慢慢跟着它们。",
    "سيارة حمراء تسير في شارع مبلل ليلا وأضواؤها تنعكس في البرك.",
    "كلبان يركضان عبر مرج مشمس والكاميرا تتبعهما ببطء.",
    "🚗🌧️🌃 a car in the rain 🐕🐕☀️ dogs in the sun 🎥",
    "Ein rotes Auto fährt nachts über eine nasse Straße. Zwei Hunde laufen über eine Wiese.",
]
SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2, as in T5's vocabularies
MODEL_TYPES = ("t5", "mt5", "umt5")


@dataclass(frozen=True)
class TextModelShape:
    d_model: int = 32
    d_kv: int = 8
    d_ff: int = 64
    num_layers: int = 2
    num_decoder_layers: int = 2
    num_heads: int = 4
    relative_attention_num_buckets: int = 8
    relative_attention_max_distance: int = 20
    feed_forward_proj: str = "gated-gelu"  # T5 v1.1, mT5 and umT5 (the video models' encoders)
    vocab_size: int | None = None  # None: the tokenizer's size, rounded up to a multiple of 8


TINY = TextModelShape()
# t5-small's shape (its original ReLU feed-forward and 32128-token vocabulary), random weights
T5_SMALL = TextModelShape(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
                          relative_attention_num_buckets=32, relative_attention_max_distance=128,
                          feed_forward_proj="relu", vocab_size=32128)


def make_tokenizer(folder: Path, vocab_size: int = 400, corpus: list[str] = CORPUS):
    """A T5-style fast tokenizer trained on ``corpus``, saved into ``folder``; returns it."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                                                unk_token="<unk>"))
    eos = backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", eos)])
    tokenizer = T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                extra_ids=0)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_text_model(folder: Path, model_type: str = "umt5", *, full: bool = False,
                    shape: TextModelShape = TINY, seed: int = 0, max_shard_size: str | None = None,
                    tokenizer_vocab: int = 400) -> Path:
    """A random ``model_type`` model with its own tokenizer in ``folder`` (created); returns ``folder``.
    ``full``: the encoder-decoder checkpoint, else the encoder alone; ``max_shard_size`` (e.g. "40KB"):
    sharded safetensors with ``model.safetensors.index.json``."""
    import transformers

    tokenizer = make_tokenizer(folder, tokenizer_vocab)
    vocab = shape.vocab_size or -(-len(tokenizer) // 8) * 8
    prefix = {"t5": "T5", "mt5": "MT5", "umt5": "UMT5"}[model_type]
    settings = {field.name: getattr(shape, field.name) for field in dataclasses.fields(shape)}
    config = getattr(transformers, f"{prefix}Config")(
        **{**settings, "vocab_size": vocab}, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    model_class = getattr(transformers, f"{prefix}ForConditionalGeneration" if full else f"{prefix}EncoderModel")
    torch.manual_seed(seed)
    model = model_class(config).eval()
    options = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(folder, **options)
    return folder


def make_bert_model(folder: Path) -> Path:
    """A tiny BERT: a text model that is not a T5-family encoder."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    make_tokenizer(folder)
    return folder
