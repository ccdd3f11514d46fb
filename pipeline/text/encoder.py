"""Captions in, each caption's T5 embedding out: the encoder's last hidden state over its real tokens."""

from __future__ import annotations

from typing import Any

import torch

from .batching import plan_batches
from .identity import TextEncoderIdentity


class TextEncoder:
    """A T5-family encoder and its tokenizer (made by ``loading.load_text_encoder``).

    ``encode`` equals, caption by caption, transformers' own
    ``model.encoder(**tokenizer(caption, truncation=True, max_length=max_text_tokens))`` last hidden state,
    while computing captions in batches: padded on the right to the batch's longest, with an attention
    mask (T5's relative positions depend on distances only, and a masked key gets zero attention weight,
    so a caption's rows do not depend on its neighbours' padding).
    """

    def __init__(self, model: Any, tokenizer: Any, identity: TextEncoderIdentity, *, batch_size: int,
                 batch_tokens: int):
        self.model = model
        self.tokenizer = tokenizer
        self.identity = identity
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def max_text_tokens(self) -> int:
        return self.identity.max_text_tokens

    def token_ids(self, captions: list[str]) -> list[list[int]]:
        """Each caption's token ids as the tokenizer makes them: truncated to ``max_text_tokens``, EOS last
        (the empty caption is EOS alone)."""
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
            raise TypeError(f"captions must be a list of str, got {type(captions).__name__}")
        wrong = [(index, type(caption).__name__) for index, caption in enumerate(captions)
                 if not isinstance(caption, str)]
        if wrong:
            raise TypeError(f"captions must be str; not these (index, type): {wrong[:8]}")
        if not captions:
            return []
        return self.tokenizer(list(captions), truncation=True, max_length=self.max_text_tokens)["input_ids"]

    @torch.inference_mode()
    def encode(self, captions: list[str]) -> list[torch.Tensor]:
        """For each caption a [L, D] tensor on the CPU in the encoder's dtype: L its token count (EOS
        included, never padding), D the model's hidden size. Each is its own copy, not a view of its
        batch (a view would keep, and pickle, the whole batch)."""
        ids = self.token_ids(captions)
        lengths = [len(caption_ids) for caption_ids in ids]
        embeddings: list[torch.Tensor | None] = [None] * len(ids)
        for batch in plan_batches(lengths, self.batch_size, self.batch_tokens):
            longest = lengths[batch[0]]  # plan_batches puts a batch's longest first
            input_ids = torch.full((len(batch), longest), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, index in enumerate(batch):
                input_ids[row, :lengths[index]] = torch.tensor(ids[index], dtype=torch.long)
                mask[row, :lengths[index]] = 1
            hidden = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device))
            hidden = hidden.last_hidden_state.to("cpu")
            for row, index in enumerate(batch):
                embeddings[index] = hidden[row, :lengths[index]].clone()
        return embeddings  # type: ignore[return-value]
