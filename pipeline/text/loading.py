"""Loading a T5-family text encoder (T5, mT5, umT5) and its tokenizer, strictly.

Accepted sources, as for ``--model``:
  1. a local folder as ``save_pretrained`` writes it (``files.py`` says which files are read);
  2. a Hugging Face repo id (``google/umt5-xxl``), through huggingface_hub's cache (offline: pre-fill it);
  3. an fsspec URL of such a folder (``s3://bucket/models/umt5-xxl/``), fetched once per machine (``fetch.py``).

The encoder class follows ``config.model_type``. A full encoder-decoder checkpoint (as google/umt5-xxl
and google/t5-v1_1-xxl are published) loads into the encoder class: safetensors are read tensor by
tensor, so the decoder's tensors are never read, let alone put on the device. A checkpoint that leaves
an encoder weight unset, or holds one of another shape, is refused: a partly random encoder gives
plausible but wrong embeddings.

This module imports neither torch nor transformers until a model is loaded: the job's driver and its
decode workers import it (for the checks) and start without them.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from wfvae.remote import is_remote, local_path

from .digests import file_sha256, files_digest
from .fetch import fetch_text_model
from .files import CONFIG, EXPECTED, model_files
from .identity import TextEncoderIdentity
from .settings import (DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, DEFAULT_MAX_TEXT_TOKENS, TEXT_DTYPE_CHOICES,
                       check_batching, check_max_text_tokens)

if TYPE_CHECKING:
    from .encoder import TextEncoder

# config.model_type -> the transformers class of its encoder alone
ENCODER_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
# What a full encoder-decoder checkpoint holds beyond the encoder: left unread.
NOT_ENCODER = ("decoder.", "lm_head.")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LISTED = 8  # keys shown per category in an error message


class TextModelError(ValueError):
    """A text model that cannot be used: not a T5-family encoder, or weights that do not match its config."""


def load_text_encoder(source: str | Path, *, max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS,
                      dtype: str = "float32", device: Any = "cpu", batch_size: int = DEFAULT_BATCH_SIZE,
                      batch_tokens: int = DEFAULT_BATCH_TOKENS, storage_options: dict[str, Any] | None = None,
                      cache_dir: str | Path | None = None) -> TextEncoder:
    """The encoder of a T5, mT5 or umT5 model, in ``dtype`` on ``device``, with its tokenizer.

    ``dtype``: float32, bfloat16 or float16 (``settings.resolve_text_dtype`` turns the job's "auto" into
    one of them). ``batch_size``/``batch_tokens``: see ``batching.py``. ``cache_dir``: where remote
    models and local files' digests are kept (default: WF-VAE's cache, ``$WFVAE_CACHE``).

    The encoder loads on the host, then moves to ``device``: in the file's dtype its weights are views of the
    memory-mapped file (page cache, shared by a node's actors); in another dtype they are converted copies
    (umT5-XXL's encoder: 11.4 GB in bfloat16) until the move frees them. transformers' ``device_map`` would
    load straight onto the GPU but needs ``accelerate``, which is not a dependency."""
    check_max_text_tokens(max_text_tokens)
    check_batching(batch_size, batch_tokens)
    if dtype not in TEXT_DTYPE_CHOICES[1:]:
        raise ValueError(f"dtype must be one of {TEXT_DTYPE_CHOICES[1:]}, got {dtype!r} (resolve 'auto' first with "
                         "pipeline.text.settings.resolve_text_dtype)")
    folder, known = _local_folder(source, storage_options, cache_dir)
    config = _read_config(folder / CONFIG, str(source))
    model_type = check_model_type(config, str(source))
    files = model_files(str(folder), [path.name for path in folder.iterdir()],
                        lambda name: (folder / name).read_text())
    digests = {name: known.get(name) or file_sha256(folder / name, cache_dir)
               for group in files.values() for name in group}

    import torch

    from .encoder import TextEncoder

    tokenizer = _load_tokenizer(folder, config, str(source))
    model = _load_encoder(folder, model_type, getattr(torch, dtype), str(source)).to(device).eval()
    identity = TextEncoderIdentity(
        source=str(source), model_type=model_type, config_sha256=digests[CONFIG],
        weights_sha256=files_digest({name: digests[name] for name in files["weights"]}),
        tokenizer_sha256=files_digest({name: digests[name] for name in files["tokenizer"]}),
        max_text_tokens=max_text_tokens, dtype=dtype, hidden_size=int(config["d_model"]))
    return TextEncoder(model, tokenizer, identity, batch_size=batch_size, batch_tokens=batch_tokens)


def check_model_type(config: dict[str, Any], source: str) -> str:
    """The config's model_type, if it is a T5-family one; else TextModelError naming the allowed ones."""
    model_type = config.get("model_type")
    if model_type not in ENCODER_CLASSES:
        raise TextModelError(
            f"{source}: model_type {model_type!r} is not a T5-family text encoder; allowed: "
            f"{', '.join(ENCODER_CLASSES)} (T5 and T5 v1.1 as CogVideoX and LTX-Video use, mT5 as Open-Sora-Plan, "
            "umT5 as Wan)")
    for field in ("d_model", "vocab_size"):
        if not isinstance(config.get(field), int):
            raise TextModelError(f"{source}: {CONFIG} has no integer {field!r}; not a {model_type} config")
    return model_type


def read_text_config(source: str | Path, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A text model's config.json alone, checked to be a T5-family one: for the driver's checks before
    anything downloads weights."""
    if is_remote(source):
        import fsspec

        url = str(source).rstrip("/") + "/" + CONFIG
        try:
            with fsspec.open(url, "rb", **(storage_options or {})) as handle:
                payload = handle.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{source}: no {CONFIG} (expected {EXPECTED})") from None
        except (OSError, ValueError, ImportError) as err:
            raise FileNotFoundError(f"{source}: could not be read ({type(err).__name__}: {err}); check the URL "
                                    "and the storage options (credentials, endpoint)") from None
        config = _parse_config(payload, url)
    elif _is_repo_id(source) and not Path(str(source)).expanduser().exists():
        config = _read_config(_from_hub(str(source), [CONFIG]) / CONFIG, str(source))
    else:
        config = _read_config(_existing_folder(source) / CONFIG, str(source))
    check_model_type(config, str(source))
    return config


# -- where the files are -----------------------------------------------------------------

def _local_folder(source: str | Path, storage_options: dict[str, Any] | None,
                  cache_dir: str | Path | None) -> tuple[Path, dict[str, str]]:
    """(local folder, {file name: SHA-256 already known}) for any accepted source."""
    if is_remote(source):
        fetched = fetch_text_model(str(source), storage_options, cache_dir)
        return fetched.folder, fetched.sha256
    if _is_repo_id(source) and not Path(str(source)).expanduser().exists():
        return _from_hub(str(source), None), {}
    return _existing_folder(source), {}


def _existing_folder(source: str | Path) -> Path:
    path = Path(local_path(source) if isinstance(source, str) else source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such folder (expected {EXPECTED}; or a Hugging Face repo id like "
                                "'google/umt5-xxl', or an fsspec URL of a folder like 's3://bucket/models/umt5-xxl/')")
    if not path.is_dir():
        raise FileNotFoundError(f"{source}: a file, not a folder (expected {EXPECTED})")
    return path


def _is_repo_id(source: str | Path) -> bool:
    return isinstance(source, str) and bool(_REPO_ID.match(source)) and not source.startswith((".", "/"))


def _from_hub(repo_id: str, patterns: list[str] | None) -> Path:
    from huggingface_hub import snapshot_download

    from .files import TOKENIZER_FILES, WEIGHTS_INDEX

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns or [
            CONFIG, *TOKENIZER_FILES, WEIGHTS_INDEX, "*.safetensors"]))
    except Exception as err:  # offline, unknown repo, no access: all end the same way for the user
        raise FileNotFoundError(
            f"{repo_id}: not a local folder, and it could not be fetched from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). If this machine is offline, download the model elsewhere and pass "
            f"its folder ({EXPECTED}), or pre-fill the Hub cache (HF_HOME) and set HF_HUB_OFFLINE=1.") from None


def _read_config(path: Path, source: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no {CONFIG} (expected {EXPECTED})")
    return _parse_config(path.read_bytes(), str(path))


def _parse_config(payload: bytes, where: str) -> dict[str, Any]:
    try:
        config = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TextModelError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise TextModelError(f"{where}: expected a JSON object of model settings")
    return config


# -- loading -----------------------------------------------------------------------------

def _load_tokenizer(folder: Path, config: dict[str, Any], source: str) -> Any:
    from transformers import AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise TextModelError(f"{source}: its tokenizer has no EOS or no padding token (T5-family tokenizers have "
                             f"</s> and <pad>; found eos {tokenizer.eos_token!r}, pad {tokenizer.pad_token!r})")
    if tokenizer("")["input_ids"] != [tokenizer.eos_token_id]:
        raise TextModelError(f"{source}: its tokenizer does not end a caption with EOS ({tokenizer.eos_token!r}): "
                             f"the empty caption gives {tokenizer('')['input_ids']}, a T5-family tokenizer gives "
                             f"[{tokenizer.eos_token_id}]")
    if len(tokenizer) > config["vocab_size"]:
        raise TextModelError(f"{source}: its tokenizer has {len(tokenizer)} tokens but the model embeds only "
                             f"{config['vocab_size']} (config vocab_size): tokenizer and model do not belong together")
    return tokenizer


def _load_encoder(folder: Path, model_type: str, dtype: Any, source: str) -> Any:
    import transformers

    model_class = getattr(transformers, ENCODER_CLASSES[model_type])
    try:
        with _quiet_transformers():
            model, info = model_class.from_pretrained(folder, dtype=dtype, use_safetensors=True,
                                                      ignore_mismatched_sizes=True, output_loading_info=True)
    except (RuntimeError, OSError, ValueError) as err:  # an unreadable file
        raise TextModelError(f"{source}: its weights do not load into {model_class.__name__} "
                             f"({type(err).__name__}: {err})") from None
    problems = []
    unexpected = [key for key in info.get("unexpected_keys", ()) if not key.startswith(NOT_ENCODER)]
    mismatched = [f"{key}: file {tuple(file)}, model {tuple(model_shape)}"
                  for key, file, model_shape in info.get("mismatched_keys", ())]
    for label, keys in (("missing", info.get("missing_keys", ())), ("unexpected", unexpected),
                        ("wrongly shaped", mismatched)):
        if keys:
            keys = sorted(keys)
            more = f" ... and {len(keys) - _LISTED} more" if len(keys) > _LISTED else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:_LISTED])}{more}")
    if problems:
        shape = f"{model_class.__name__}, {model.config.num_layers} layers, d_model {model.config.d_model}"
        raise TextModelError(f"{source}: its weights do not match its {CONFIG} ({shape}): " + "; ".join(problems))
    return model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars and no load report (a full checkpoint's decoder keys are listed as unused):
    problems are raised by ``_load_encoder`` instead. Transformers' own settings are restored after."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
