"""The same output read from S3 (the session's moto S3 server on 127.0.0.1) gives the same samples."""

from __future__ import annotations

import torch

from pipeline.dataset import LatentDataset


def test_reading_from_s3_matches_local(moments, local_s3):
    local_s3.create_bucket("dataset-latents")
    for path in moments.out.rglob("*"):
        if path.is_file():
            local_s3.put("dataset-latents", f"job/{path.relative_to(moments.out).as_posix()}", path.read_bytes())
    remote = LatentDataset("s3://dataset-latents/job", local_s3.storage_options, shuffle=True, seed=2, block_rows=4)
    local = LatentDataset(str(moments.out), shuffle=True, seed=2, block_rows=4)
    pairs = list(zip(remote, local, strict=True))
    assert len(pairs) == 28 and not {s["shard"] for s, _ in pairs} & set(moments.given_up)
    for a, b in pairs:
        assert (a["key"], a["clip"], a["caption"]) == (b["key"], b["clip"], b["caption"])
        assert torch.equal(a["latent"], b["latent"])
