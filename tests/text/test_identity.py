"""The identity record: what defines the embeddings, compared by content, not by how the source is spelled."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from pipeline.text import TextEncoderIdentity, load_text_encoder
from pipeline.text.digests import file_sha256, files_digest


def test_it_round_trips_through_a_dict_and_json(text_models):
    identity = load_text_encoder(text_models["umt5-full"], max_text_tokens=77).identity
    data = json.loads(json.dumps(identity.to_dict()))
    assert TextEncoderIdentity.from_dict(data) == identity
    assert data["max_text_tokens"] == 77 and data["dtype"] == "float32" and data["hidden_size"] == 32
    assert data["model_type"] == "umt5" and data["source"] == str(text_models["umt5-full"])


def test_a_record_with_missing_or_unknown_fields_is_refused(text_models):
    data = load_text_encoder(text_models["t5"]).identity.to_dict()
    with pytest.raises(ValueError, match=r"missing \['dtype'\], unknown \['precision'\]"):
        TextEncoderIdentity.from_dict({**{k: v for k, v in data.items() if k != "dtype"}, "precision": "float32"})


def test_its_digests_are_of_the_files_it_read(text_models):
    folder = text_models["umt5-full"]
    identity = load_text_encoder(folder).identity
    sha = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    weights = [name for name in sha if name.endswith(".safetensors") or name.endswith(".index.json")]
    assert len(weights) > 3
    assert identity.config_sha256 == sha["config.json"]
    assert identity.weights_sha256 == files_digest({name: sha[name] for name in weights})
    assert identity.tokenizer_sha256 == files_digest({name: sha[name] for name in
                                                      ("tokenizer.json", "tokenizer_config.json")})


def test_the_same_files_elsewhere_are_the_same_embeddings_other_settings_are_not(text_models, tmp_path):
    folder = text_models["mt5"]
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    one, same = load_text_encoder(folder).identity, load_text_encoder(moved).identity
    assert one.source != same.source and one.differences(same) == []
    other = load_text_encoder(folder, max_text_tokens=226, dtype="bfloat16").identity
    assert one.differences(other) == ["max_text_tokens: 512 != 226", "dtype: 'float32' != 'bfloat16'"]
    another_model = load_text_encoder(text_models["umt5"]).identity
    assert [line.split(":")[0] for line in one.differences(another_model)] == \
        ["model_type", "config_sha256", "weights_sha256", "tokenizer_sha256"]


def test_a_files_digest_is_computed_once_per_version_of_the_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"first version")
    cache = tmp_path / "cache"
    assert file_sha256(path, cache) == hashlib.sha256(b"first version").hexdigest()
    (memo,) = (cache / "digests").iterdir()
    memo.write_text(memo.read_text().replace(hashlib.sha256(b"first version").hexdigest(), "remembered"))
    assert file_sha256(path, cache) == "remembered"  # read from the memo, not hashed again
    path.write_bytes(b"second version")  # a new size and mtime: a new version
    os.utime(path, ns=(1, 1))
    assert file_sha256(path, cache) == hashlib.sha256(b"second version").hexdigest()
