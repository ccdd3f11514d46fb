"""One reader of a job's output: the summary, the inspect report and the training dataset agree on
it. The output is built with the output package directly, without Ray."""

from __future__ import annotations

import torch

from pipeline.dataset.source import open_output
from pipeline.inspect.report import describe_output
from pipeline.job.rows import error_row, latent_row
from pipeline.reading import ErrorRecord
from pipeline.job.summary import build_summary
from pipeline.output.layout import OutputLayout
from pipeline.output.manifest import check_or_create
from pipeline.output.reader import read_job_output
from pipeline.output.records import RunRecord
from pipeline.output.shard_writer import publish_shard
from pipeline.output.stats import LatentStats
from pipeline.output.storage import write_json
from pipeline.reading import ClipInfo


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
    error_rows = [error_row(ErrorRecord("decode", "CorruptVideo", "broken", shard, f"{shard}-bad{i}")) for i in range(errors)]
    publish_shard(layout, shard, rows, error_rows, {"model": "m"},
                  {"stats": stats.to_dict(), "errors_by_type": {"CorruptVideo": errors} if errors else {}})


def test_summary_report_and_dataset_read_the_same_totals(tmp_path):
    layout = OutputLayout(str(tmp_path / "out"))
    check_or_create(layout, {"fingerprint": "f", "output_settings": {}, "model": {"weights_sha256": "w"},
                             "config": {"input": str(tmp_path / "none-*.tar"), "store": "mean"}})
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(4, 2, 4, 4, generator=generator) * (i + 1) for i in range(5)]
    _publish(layout, "part-000000", latents[:3], errors=1)
    _publish(layout, "part-000001", latents[3:], errors=2)
    _publish(layout, "part-000002", [], errors=0)  # an empty shard: committed with 0 rows
    write_json(layout.fs, layout.given_up("part-000003"), {"last_error": "OSError: gone"})
    (tmp_path / "out" / "latents" / "part-000004.parquet").write_bytes(b"a leftover without a marker")

    output = read_job_output(layout)
    assert sorted(output.shards) == ["part-000000", "part-000001", "part-000002"]
    assert output.given_up == ("part-000003",) and output.rows == 5 and output.errors == 3
    assert output.errors_by_type == {"CorruptVideo": 3}
    everything = torch.stack(latents).double()  # (5, 4, 2, 4, 4)
    per_channel = everything.transpose(0, 1).reshape(4, -1)
    assert torch.allclose(torch.tensor(output.stats.mean, dtype=torch.float64), per_channel.mean(1))
    assert torch.allclose(torch.tensor(output.stats.std, dtype=torch.float64), per_channel.std(1, correction=0))

    summary = build_summary(layout, [f"part-00000{i}" for i in range(5)], RunRecord("test"))
    report = describe_output(layout.url)
    dataset = open_output(layout.url)
    assert summary["clips"] == report["rows"] == dataset.num_rows == 5
    assert summary["errors"] == report["samples_failed"] == 3
    assert summary["shards"] == {"total": 5, "committed": 3, "given_up": 1, "pending": 1}
    assert summary["latent_stats"]["mean"] == report["latent_stats"]["mean"] == dataset.stats.mean
    assert summary["latent_stats"]["std"] == report["latent_stats"]["std"] == dataset.stats.std
    assert report["uncommitted_files"] == ["part-000004"]
    assert summary["bytes"] == sum(report["bytes"].values())
