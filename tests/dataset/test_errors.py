"""Bad input gets a clear error, before any reading."""

from __future__ import annotations

import shutil

import pytest

from pipeline.dataset import LatentDataset, OutputNotReadable


def test_a_folder_without_job_manifest(tmp_path):
    with pytest.raises(OutputNotReadable, match="has no _job.json: it is not an output folder"):
        LatentDataset(str(tmp_path))


def test_an_output_with_nothing_committed(moments, tmp_path):
    shutil.copy(moments.out / "_job.json", tmp_path / "_job.json")
    shutil.copytree(moments.out / "latents", tmp_path / "latents")  # files without markers do not count
    with pytest.raises(OutputNotReadable, match="no committed shards yet"):
        LatentDataset(str(tmp_path))


def test_a_commit_marker_that_disagrees_with_its_file(moments, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(moments.out, copy)
    first, second = moments.committed
    shutil.copy(copy / "latents" / f"{second}.parquet", copy / "latents" / f"{first}.parquet")
    (copy / "_committed" / f"{first}.json").write_text(
        (copy / "_committed" / f"{first}.json").read_text().replace('"rows": 14', '"rows": 13'))
    shutil.rmtree(copy / "_runs")  # no run file accounts for the shards: their commit records are read
    with pytest.raises(RuntimeError, match="holds 14 rows but its commit marker says 13"):
        list(LatentDataset(str(copy)))


@pytest.mark.parametrize("options,message", [
    ({"normalize": "zscore"}, r"normalize must be one of \('raw', 'model', 'measured'\)"),
    ({"dtype": "int8"}, "dtype must be None"),
    ({"fields": ["key", "latnt"]}, r"unknown fields \['latnt'\]"),
    ({"fields": "key"}, "fields must be a list"),
    ({"drop_last": True}, "drop_last=True needs batch_size"),
    ({"mix_media": True}, "mix_media=True needs batch_size"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"rank": 2, "world_size": 2}, "rank must be below world_size"),
    ({"rank": 0}, "give both rank and world_size"),
    ({"shuffle_blocks": 0}, "shuffle_blocks must be an integer >= 1"),
])
def test_invalid_options(moments, options, message):
    with pytest.raises(ValueError, match=message):
        LatentDataset(str(moments.out), **options)


def test_unknown_options(moments):
    with pytest.raises(TypeError, match="shufle"):
        LatentDataset(str(moments.out), shufle=True)


def test_len_with_batches_is_refused(moments):
    with pytest.raises(TypeError, match="number of batches depends"):
        len(LatentDataset(str(moments.out), batch_size=2))
