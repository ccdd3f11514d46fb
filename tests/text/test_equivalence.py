"""The stored embedding is transformers' own: each caption, encoded in batches beside captions of other
lengths, equals ``model.encoder(**tokenizer(caption, truncation=True, max_length=N))`` to 1e-5 in float32."""

from __future__ import annotations

import pytest
import torch
import transformers

from pipeline.text import load_text_encoder

LIMIT = 40
CAPTIONS = [
    "A red car drives along a wet street at night.",  # Latin
    "Две собаки бегут по солнечному лугу.",  # Cyrillic
    "两只狗跑过阳光明媚的草地，镜头慢慢跟着它们。",  # CJK
    "سيارة حمراء تسير في شارع مبلل ليلا",  # Arabic
    "🚗🌧️🌃 🐕🐕☀️ 🎥",  # emoji
    "",  # the empty caption: EOS alone
    "Ein rotes Auto fährt nachts über eine nasse Straße, " * 6,  # longer than the limit
    "dogs",
]
# the transformers class whose .encoder is the reference, for each test model
REFERENCE_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel",
                     "umt5-full": "UMT5ForConditionalGeneration", "t5-full": "T5ForConditionalGeneration"}


def reference(model, tokenizer, caption: str) -> tuple[list[int], torch.Tensor]:
    tokens = tokenizer(caption, truncation=True, max_length=LIMIT, return_tensors="pt")
    with torch.no_grad():
        return tokens["input_ids"][0].tolist(), model.encoder(**tokens).last_hidden_state[0]


@pytest.mark.parametrize("name", list(REFERENCE_CLASSES))
@pytest.mark.parametrize("batch_size", [3, 64])
def test_each_caption_equals_transformers_own_encoder(text_models, name, batch_size):
    folder = text_models[name]
    encoder = load_text_encoder(folder, max_text_tokens=LIMIT, batch_size=batch_size)
    embeddings = encoder.encode(CAPTIONS)
    own = getattr(transformers, REFERENCE_CLASSES[name]).from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(embeddings) == len(CAPTIONS)
    lengths = set()
    for caption, embedding in zip(CAPTIONS, embeddings):
        ids, expected = reference(own, tokenizer, caption)
        assert embedding.shape == (len(ids), encoder.identity.hidden_size) == expected.shape, caption
        assert embedding.dtype == torch.float32 and embedding.device.type == "cpu"
        assert (embedding - expected).abs().max().item() <= 1e-5, caption
        assert ids[-1] == tokenizer.eos_token_id and tokenizer.pad_token_id not in ids
        lengths.add(len(ids))
    assert len(lengths) == 7  # batched beside captions of other lengths: padding really happened


def test_the_empty_caption_is_eos_alone_and_a_long_one_is_cut_to_the_limit_with_eos_last(text_models):
    encoder = load_text_encoder(text_models["umt5"], max_text_tokens=LIMIT)
    empty, long = encoder.token_ids(["", CAPTIONS[6]])
    assert empty == [encoder.tokenizer.eos_token_id]
    untruncated = encoder.tokenizer(CAPTIONS[6])["input_ids"]
    assert len(untruncated) > LIMIT
    assert long == untruncated[:LIMIT - 1] + [encoder.tokenizer.eos_token_id]
    embeddings = encoder.encode(["", CAPTIONS[6]])
    assert [tuple(e.shape) for e in embeddings] == [(1, 32), (LIMIT, 32)]


def test_the_comparison_can_fail_padding_without_its_mask_changes_the_result(text_models):
    """The tolerance is not loose: the same caption padded and left unmasked differs by far more than 1e-5."""
    folder = text_models["umt5"]
    own = transformers.UMT5EncoderModel.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids, expected = reference(own, tokenizer, CAPTIONS[0])
    padded = torch.tensor([ids + [tokenizer.pad_token_id] * 8])
    with torch.no_grad():
        unmasked = own.encoder(input_ids=padded).last_hidden_state[0, :len(ids)]
    assert (unmasked - expected).abs().max().item() > 1e-3


def test_embeddings_are_own_copies_in_input_order(text_models):
    encoder = load_text_encoder(text_models["mt5"], max_text_tokens=LIMIT, batch_size=4)
    forward, backward = encoder.encode(CAPTIONS), encoder.encode(CAPTIONS[::-1])
    for one, other in zip(forward, backward[::-1]):
        assert torch.allclose(one, other, atol=1e-5, rtol=0)
    for embedding in forward:  # not a view of its batch: storage holds exactly its own values
        assert embedding.untyped_storage().nbytes() == embedding.numel() * embedding.element_size()
    assert encoder.encode([]) == []
