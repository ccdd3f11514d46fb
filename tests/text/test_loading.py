"""Which models load (T5, mT5, umT5; encoder-only or full checkpoints) and which are refused, with a
message naming what is allowed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from pipeline.settings import ConfigError
from pipeline.text import TextModelError, load_text_encoder, read_text_config
from pipeline.text.files import EXPECTED
from tests.support.text_models import TextModelShape, make_bert_model, make_text_model


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("name, encoder_class", [("t5", "T5EncoderModel"), ("mt5", "MT5EncoderModel"),
                                                 ("umt5", "UMT5EncoderModel"), ("umt5-full", "UMT5EncoderModel"),
                                                 ("t5-full", "T5EncoderModel")])
def test_the_encoder_class_follows_model_type(text_models, name, encoder_class):
    encoder = load_text_encoder(text_models[name])
    assert type(encoder.model).__name__ == encoder_class
    assert encoder.identity.model_type == name.removesuffix("-full")
    assert read_text_config(text_models[name])["model_type"] == encoder.identity.model_type


def test_a_full_checkpoint_puts_only_its_encoder_on_the_device(text_models):
    folder = text_models["umt5-full"]
    full = transformers.UMT5ForConditionalGeneration.from_pretrained(folder)
    encoder = load_text_encoder(folder, device="cpu")
    on_device = dict(encoder.model.named_parameters())
    assert not [name for name in encoder.model.state_dict() if name.startswith(("decoder.", "lm_head."))]
    assert count(encoder.model) == count(full.encoder) == count(full) - count(full.decoder) + count(full.shared)
    assert all(parameter.device == torch.device("cpu") for parameter in on_device.values())
    for name, value in full.encoder.state_dict().items():  # the checkpoint's encoder, not random weights
        assert torch.equal(encoder.model.encoder.state_dict()[name], value), name


def test_a_sharded_full_checkpoint_is_read_through_its_index(text_models):
    folder = text_models["t5-full"]
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    assert any(key.startswith("decoder.") for key in index["weight_map"])
    assert load_text_encoder(folder).encode(["a dog"])[0].shape[1] == 32


@pytest.mark.parametrize("source, message", [
    ("/nonexistent/umt5-xxl", "no such folder"),
    ("nobody-here/no-such-model", "could not be fetched from the Hugging Face Hub"),
])
def test_a_wrong_path_names_what_is_allowed(source, message):
    with pytest.raises(FileNotFoundError, match=message) as error:
        load_text_encoder(source)
    assert "config.json" in str(error.value)


def test_a_non_t5_model_is_refused_naming_the_allowed_ones(tmp_path):
    folder = make_bert_model(tmp_path / "bert")
    for call in (load_text_encoder, read_text_config):
        with pytest.raises(TextModelError, match=r"model_type 'bert' is not a T5-family text encoder; "
                                                 r"allowed: t5, mt5, umt5"):
            call(folder)


def copy_of(folder: Path, tmp_path: Path, **config_changes) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **config_changes}))
    return copy


def test_weights_that_leave_encoder_layers_unset_are_refused(text_models, tmp_path):
    with pytest.raises(TextModelError, match=r"do not match its config.json .*9 missing: encoder\.block\.2\."):
        load_text_encoder(copy_of(text_models["t5"], tmp_path, num_layers=3))


def test_weights_of_another_shape_are_refused(text_models, tmp_path):
    with pytest.raises(TextModelError, match=r"wrongly shaped: encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0"
                                             r"\.weight: file \(64, 32\), model \(96, 32\)"):
        load_text_encoder(copy_of(text_models["umt5"], tmp_path, d_ff=96))


def test_a_tokenizer_larger_than_the_embedding_table_is_refused(text_models, tmp_path):
    with pytest.raises(TextModelError, match=r"tokenizer has \d+ tokens but the model embeds only 16"):
        load_text_encoder(copy_of(text_models["mt5"], tmp_path, vocab_size=16))


@pytest.mark.parametrize("remove, message", [
    (["config.json"], "no config.json"),
    (["tokenizer.json"], "no tokenizer"),
    (["model.safetensors"], "no weights"),
])
def test_a_folder_missing_a_part_says_which(text_models, tmp_path, remove, message):
    folder = copy_of(text_models["umt5"], tmp_path)
    for name in remove:
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=message) as error:
        load_text_encoder(folder)
    assert EXPECTED in str(error.value)


def test_an_index_naming_a_missing_shard_is_refused(text_models, tmp_path):
    folder = copy_of(text_models["umt5-full"], tmp_path)
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=f"names shards that are not there: {shard.name}"):
        load_text_encoder(folder)


def test_pickled_weights_are_refused_with_the_way_to_convert(text_models, tmp_path):
    folder = copy_of(text_models["t5"], tmp_path)
    model = transformers.T5EncoderModel.from_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"only pickled weights .*safetensors are required.*save_pretrained"):
        load_text_encoder(folder)


@pytest.mark.parametrize("settings, message", [
    ({"max_text_tokens": 0}, r"max_text_tokens must be a whole number of tokens >= 1 \(512: Wan 2.1"),
    ({"max_text_tokens": True}, "max_text_tokens must be a whole number"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_tokens": 2.5}, "batch_tokens must be an integer >= 1"),
])
def test_bad_settings_are_refused_before_anything_loads(settings, message):
    with pytest.raises(ConfigError, match=message):
        load_text_encoder("/nonexistent", **settings)


def test_captions_must_be_a_list_of_text(text_models):
    encoder = load_text_encoder(text_models["t5"])
    with pytest.raises(TypeError, match="captions must be a list of str, got str"):
        encoder.encode("a dog")
    with pytest.raises(TypeError, match=r"not these \(index, type\): \[\(1, 'NoneType'\), \(2, 'bytes'\)\]"):
        encoder.encode(["a dog", None, b"a cat"])


def test_the_encoder_takes_its_shape_from_the_config(tmp_path):
    """A full checkpoint whose encoder and decoder differ in depth: the encoder's depth is the config's."""
    shape = TextModelShape(num_layers=3, num_decoder_layers=1, d_model=48, d_kv=12)
    encoder = load_text_encoder(make_text_model(tmp_path / "umt5-3", "umt5", full=True, shape=shape))
    assert len(encoder.model.encoder.block) == 3
    assert encoder.identity.hidden_size == 48 and encoder.encode(["a dog"])[0].shape[1] == 48
