"""bench/dataset.py --tiny in a process of its own: it writes its output, reads every configuration, and
its figures say what was read. The rates of 64 rows on a shared machine are only checked to be rates; the
bytes per sample are exact: what the stored columns hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LATENT = 16 * 9 * 32 * 32 * 2  # bytes of a 16x9x32x32 bfloat16 latent, stored raw
TEXT = 120 * 4096 * 2  # of a 120 x 4096 bfloat16 caption embedding, stored raw
SMALL_FIELDS = 2_000  # everything else a row stores, zstd-compressed, is well below this


def test_the_tiny_run_reads_every_configuration_and_counts_the_bytes(tmp_path):
    figures_path = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, "bench/dataset.py", "--tiny", "--folder", str(tmp_path / "out"),
                          "--json", str(figures_path)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(figures_path.read_text())
    configs = {config["label"]: config for config in figures["configs"]}
    assert len(configs) == 7 and figures["rows"] == 64 and figures["pyarrow_alone"] > 0
    assert all(config["samples"] == 64 and config["samples_per_second"] > 0 for config in configs.values())
    assert "| defaults: bf16 latent, every field, text embedding |" in run.stdout

    defaults = configs["defaults: bf16 latent, every field, text embedding"]["bytes_per_sample"]
    assert LATENT + TEXT < defaults < LATENT + TEXT + SMALL_FIELDS
    assert LATENT < configs["fields=[key, caption]: no text read"]["bytes_per_sample"] < LATENT + SMALL_FIELDS
    for label in ("shuffle=True (4-block windows)", "batch_size=32 (bucketed, text padded)",
                  "float32, normalize='model'"):
        assert configs[label]["bytes_per_sample"] == defaults
    assert configs["bf16, sample_posterior=True"]["bytes_per_sample"] > defaults + LATENT / 4  # + logvar (zstd)
