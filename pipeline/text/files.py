"""Which files of a text model's folder are read: its config, its tokenizer and its safetensors weights.

One list for a local folder, a Hugging Face snapshot and a folder on object storage, so that what is
fetched, what is loaded and what is hashed into the identity are the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

CONFIG = "config.json"
# The tokenizer files transformers reads for T5-family tokenizers (fast, and sentencepiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "spiece.model")
SINGLE_WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")

EXPECTED = (f"a folder with {CONFIG}, a tokenizer (tokenizer.json or spiece.model, with tokenizer_config.json) "
            f"and safetensors weights ({SINGLE_WEIGHTS}, or {WEIGHTS_INDEX} with its shards), as save_pretrained "
            "writes it")


def model_files(folder: str, names: Iterable[str], read_text: Callable[[str], str]) -> dict[str, list[str]]:
    """``{"config": [...], "tokenizer": [...], "weights": [...]}`` among ``names`` (the folder's files);
    ``read_text(name)`` reads a file of the folder (the weights index, to learn its shards).
    Raises FileNotFoundError saying what is missing."""
    present = set(names)
    if CONFIG not in present:
        raise FileNotFoundError(f"{folder}: no {CONFIG} (expected {EXPECTED})")
    tokenizer = [name for name in TOKENIZER_FILES if name in present]
    if "tokenizer.json" not in present and "spiece.model" not in present:
        raise FileNotFoundError(f"{folder}: no tokenizer, neither tokenizer.json nor spiece.model "
                                f"(expected {EXPECTED})")
    return {"config": [CONFIG], "tokenizer": tokenizer, "weights": _weights(folder, present, read_text)}


def _weights(folder: str, present: set[str], read_text: Callable[[str], str]) -> list[str]:
    if WEIGHTS_INDEX in present:
        try:
            shards = sorted(set(json.loads(read_text(WEIGHTS_INDEX))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise FileNotFoundError(f"{folder}/{WEIGHTS_INDEX}: not a weights index ({type(err).__name__}: "
                                    f"{err}); expected {{'weight_map': {{tensor name: shard file}}}}") from None
        missing = [shard for shard in shards if shard not in present]
        if missing:
            raise FileNotFoundError(f"{folder}: {WEIGHTS_INDEX} names shards that are not there: "
                                    f"{', '.join(missing)}")
        return [WEIGHTS_INDEX, *shards]
    if SINGLE_WEIGHTS in present:
        return [SINGLE_WEIGHTS]
    if any(name in present for name in PICKLED_WEIGHTS):
        raise FileNotFoundError(
            f"{folder}: only pickled weights (pytorch_model.bin); safetensors are required, so that a full "
            "encoder-decoder checkpoint is read tensor by tensor, its decoder never read, and nothing is "
            "unpickled. Convert once: from_pretrained(folder).save_pretrained(new_folder) writes safetensors")
    raise FileNotFoundError(f"{folder}: no weights (expected {EXPECTED})")
