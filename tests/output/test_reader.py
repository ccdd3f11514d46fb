"""One reader of a job's output: the summary, the inspect report and the training dataset agree on
it. The output is built with the output package directly, without Ray."""

from __future__ import annotations

import torch

from pipeline.dataset.source import open_output
from pipeline.inspect.report import describe_output
from pipeline.encode.rows import error_row, latent_row
from pipeline.output.layout import OutputLayout
from pipeline.output.manifest import Manifest, ModelIdentity, OutputIdentity
from pipeline.output.reader import read_job_output
from pipeline.output.records import CommitRecord, GivenUp
from pipeline.output.shard_writer import publish_shard
from pipeline.output.stats import LatentStats
from pipeline.output.storage import write_json
from pipeline.reading import ClipInfo, ErrorRecord


def _info(key: str) -> ClipInfo:
    return ClipInfo(shard="s", key=key, media_type="video", clip_index=0, frame_indices=[0, 1, 2, 3, 4],
                    timestamps=[0.0] * 5,
                    source_fps=25.0, source_height=48, source_width=64, source_num_frames=12, height=32, width=32,
                    num_frames=5, fps=25.0, caption=f"caption {key}", meta=None)


def _publish(layout: OutputLayout, shard: str, latents: list[torch.Tensor], errors: int) -> None:
    stats = LatentStats()
    rows = []
    for i, latent in enumerate(latents):
        stats.add(latent)
        rows.append(latent_row(_info(f"{shard}-{i}"), shard, latent, None, "float32"))
    error_rows = [error_row(ErrorRecord("decode", "CorruptVideo", "broken", shard, f"{shard}-bad{i}"))
                  for i in range(errors)]
    publish_shard(layout, CommitRecord(shard, stats=stats, errors_by_type={"CorruptVideo": errors} if errors else {}),
                  rows, error_rows, {"model": "m"})


def test_summary_report_and_dataset_read_the_same_totals(tmp_path):
    layout = OutputLayout(str(tmp_path / "out"))
    manifest = Manifest(OutputIdentity({}, ModelIdentity(weights_sha256="w")),
                        {"input": str(tmp_path / "none-*.tar"), "store": "mean"})
    write_json(layout.fs, layout.job_manifest, manifest.to_dict())
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(4, 2, 4, 4, generator=generator) * (i + 1) for i in range(5)]
    _publish(layout, "part-000000", latents[:3], errors=1)
    _publish(layout, "part-000001", latents[3:], errors=2)
    _publish(layout, "part-000002", [], errors=0)  # an empty shard: committed with 0 rows
    write_json(layout.fs, layout.given_up("part-000003"), GivenUp("part-000003.tar", 3, "OSError: gone", 0).to_dict())
    (tmp_path / "out" / "latents" / "part-000004.parquet").write_bytes(b"a leftover without a marker")

    output = read_job_output(layout)
    assert sorted(output.shards) == ["part-000000", "part-000001", "part-000002"]
    summary = output.summary([f"part-00000{i}" for i in range(5)])
    assert output.given_up == ("part-000003",) and summary.clips == 5 and summary.samples_failed == 3
    assert summary.errors_by_type == {"CorruptVideo": 3}
    everything = torch.stack(latents).double()  # (5, 4, 2, 4, 4)
    per_channel = everything.transpose(0, 1).reshape(4, -1)
    assert torch.allclose(torch.tensor(output.stats.mean, dtype=torch.float64), per_channel.mean(1))
    assert torch.allclose(torch.tensor(output.stats.std, dtype=torch.float64), per_channel.std(1, correction=0))

    report = describe_output(layout.url, input_spec=str(tmp_path / "none-*.tar"))
    dataset = open_output(layout.url)
    assert summary.clips == report.summary.clips == dataset.num_rows == 5
    assert summary.samples_failed == report.summary.samples_failed == 3
    assert (summary.shards.total, summary.shards.committed, summary.shards.given_up, summary.shards.pending) == \
        (5, 3, 1, 1)
    assert summary.latent_stats.mean == report.summary.latent_stats.mean == dataset.stats.mean
    assert summary.latent_stats.std == report.summary.latent_stats.std == dataset.stats.std
    assert report.uncommitted_files == ["part-000004"] and report.given_up == {"part-000003": "OSError: gone"}
    assert summary.bytes == report.summary.bytes and summary.bytes["latents"] > 0
