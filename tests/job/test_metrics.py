"""The job's metrics reach the Prometheus endpoint of the Ray head (--metrics-export-port), with
the figures of its commit records: clips, failed samples by type, shards committed and given up,
encoder wait, encode and decode seconds."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.jobs import SMALL_CLIPS, run_cli


def scrape(url: str) -> dict[str, list[tuple[dict, float]]]:
    """Samples by name: [(labels, value)]."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    found: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(samples: dict, name: str, **labels: str) -> float | None:
    matching = [v for l, v in samples.get(name, []) if all(l.get(k) == w for k, w in labels.items())]
    return sum(matching) if matching else None


def test_metrics_reach_the_heads_prometheus_endpoint(ray_head, dataset, tmp_path):
    out = tmp_path / "out"
    (out / "errors" / "part-000001.parquet").mkdir(parents=True)  # part-000001 cannot be published: given up
    job = run_cli(ray_head, "--input", str(dataset.folder / "part-{000000..000001}.tar"), "--output", str(out),
                  *SMALL_CLIPS, "--max-shard-attempts", "1", check=False)
    assert job.returncode == 3, job.stdout + job.stderr
    output = str(out)
    expected = {"ray_wfvae_clips_encoded_total": len(dataset.good["part-000000"]),
                "ray_wfvae_samples_failed_total": len(dataset.broken["part-000000"]),
                "ray_wfvae_shards_committed_total": 1, "ray_wfvae_shards_given_up_total": 1}
    deadline, samples = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        samples = scrape(ray_head.metrics_url)
        if all(value(samples, name, output=output) == count for name, count in expected.items()):
            break
        time.sleep(1)
    got = {name: value(samples, name, output=output) for name in expected}
    assert got == expected, f"metrics for {output}: {got}"
    failed = [labels for labels, _ in samples["ray_wfvae_samples_failed_total"] if labels.get("output") == output]
    assert all(labels["error_type"] and labels["stage"] for labels in failed)
    assert value(samples, "ray_wfvae_encode_seconds_total", output=output) > 0
    assert value(samples, "ray_wfvae_encoder_wait_seconds_total", output=output) > 0
    assert value(samples, "ray_wfvae_decode_seconds_total") > 0
