"""What defines a text encoder's embeddings: two encoders with equal identities (its source aside)
give the same embedding of every caption, so an output's identity check compares these.

The digests are of files, not of loaded tensors (``digests.py`` says why): the same encoder published as a
full encoder-decoder checkpoint and as its encoder alone, or sharded differently, counts as another encoder,
so such a change is refused rather than mixed into one output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class TextEncoderIdentity:
    source: str  # as given (a Hugging Face id, a folder, a URL): for people; not compared
    model_type: str  # t5, mt5 or umt5: which encoder class ran
    config_sha256: str  # of config.json's bytes
    weights_sha256: str  # of the safetensors files' names and SHA-256 (files_digest), index included
    tokenizer_sha256: str  # of the tokenizer files' names and SHA-256
    max_text_tokens: int
    dtype: str  # the precision the encoder ran and the embeddings are in
    hidden_size: int  # D of each [L, D] embedding (config.d_model)

    NOT_COMPARED: ClassVar[tuple[str, ...]] = ("source",)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextEncoderIdentity:
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(f"not a text encoder identity: missing {missing}, unknown {unknown} "
                             f"(expected exactly {names})")
        return cls(**{name: data[name] for name in names})

    def differences(self, other: TextEncoderIdentity) -> list[str]:
        """``"name: mine != theirs"`` for each compared field that differs; empty: the same embeddings."""
        return [f"{field.name}: {getattr(self, field.name)!r} != {getattr(other, field.name)!r}"
                for field in dataclasses.fields(self)
                if field.name not in self.NOT_COMPARED and getattr(self, field.name) != getattr(other, field.name)]
