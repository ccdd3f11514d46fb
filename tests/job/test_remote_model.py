"""The job with its model on object storage: the driver reads only config.json, each encoder
actor fetches the weights into its node's cache, and the output records the same weights."""

import json

import pyarrow.parquet as pq
import pytest

from tests.support.jobs import SMALL_CLIPS, TINY_MODEL, run_cli
from tests.support.outputs import read_rows
from wfvae import WFVAE


@pytest.mark.slow
def test_model_from_s3(ray_head, dataset, local_s3, tmp_path):
    local_s3.create_bucket("job-models")
    for path in TINY_MODEL.iterdir():
        local_s3.put("job-models", f"tiny/{path.name}", path.read_bytes())
    args = [*SMALL_CLIPS]
    args[args.index("--model") + 1] = "s3://job-models/tiny/"
    out = tmp_path / "out"
    run_cli(ray_head, "--input", str(dataset.folder / "part-000000.tar"), "--output", str(out), *args,
            "--model-storage-options", json.dumps(local_s3.storage_options))  # data local, model on S3
    manifest = json.loads((out / "_job.json").read_text())
    expected = WFVAE.from_pretrained(TINY_MODEL).weights_checksum()
    assert manifest["model"]["weights_sha256"] == expected
    assert manifest["model"]["source"] == "s3://job-models/tiny/"
    metadata = pq.read_schema(out / "latents" / "part-000000.parquet").metadata
    assert metadata[b"weights_sha256"].decode() == expected
    assert len(read_rows(out, shards=["part-000000"])) == len(dataset.good["part-000000"])
    assert manifest["config"]["model_storage_options"]["secret"] == "***"

    bad = run_cli(ray_head, "--input", str(dataset.folder / "part-000000.tar"), "--output", str(tmp_path / "o2"),
                  *[a if a != "s3://job-models/tiny/" else "s3://job-models/absent/" for a in args],
                  "--storage-options", json.dumps(local_s3.storage_options), check=False)  # shared options
    assert bad.returncode == 2 and "--model: s3://job-models/absent/: not found" in bad.stderr
