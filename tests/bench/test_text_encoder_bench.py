"""bench/text_encoder.py --tiny: every section runs, and its figures are the ones the report quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_tiny_run_measures_every_section():
    result = subprocess.run([sys.executable, "bench/text_encoder.py", "--tiny"], cwd=REPO, capture_output=True,
                            text=True, timeout=240, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["tiny"] is True and set(report["seconds"]) == {"cpu", "load", "h100", "digest", "total"}

    for model in ("tiny", "t5_small_shape"):
        cpu = report["cpu"][model]
        assert 110 <= cpu["tokens_mean"] <= 140 and cpu["padded_tokens_mean"] >= cpu["tokens_mean"]  # ~120 tokens
        assert cpu["gflop"] > 0 and cpu["threads_1"]["ms_per_caption"] > cpu["threads_1"]["tokenize_ms"] > 0
        assert cpu["threads_1"]["gflops"] > 0
    assert report["cpu"]["t5_small_shape"]["gflop"] > 10 * report["cpu"]["tiny"]["gflop"]

    load = report["load"]
    full, alone = load["full_checkpoint_bfloat16"], load["encoder_only_bfloat16"]
    decoder_mib = load["full_checkpoint_file_mib"] - load["encoder_only_file_mib"]
    assert decoder_mib > 3 * load["encoder_only_file_mib"]  # the decoder would show if it were read
    assert full["params_on_device"] == alone["params_on_device"] and full["decoder_params_on_device"] == 0
    assert abs(full["resident_mib"] - alone["resident_mib"]) < decoder_mib / 8
    assert abs(full["peak_mib"] - alone["peak_mib"]) < decoder_mib / 8
    assert 0 < full["anonymous_mib"] < load["encoder_only_file_mib"]  # bfloat16 copies of the encoder alone

    h100 = report["h100"]
    assert 5.6e9 < h100["encoder_params"] < 5.8e9 and h100["wfvae_l_gflop_per_clip"] == 139 * 33
    for tokens, low, high in ((120, 1050, 1200), (512, 4600, 5100)):
        point = h100[f"tokens_{tokens}"]
        assert low < point["gflop_per_caption"] < high  # ~2 x 4.6e9 matmul parameters x tokens, + attention
        assert abs(point["of_a_clip"] - point["gflop_per_caption"] / h100["wfvae_l_gflop_per_clip"]) < 1e-3
        assert abs(point["ms_per_caption"] - point["gflop_per_caption"] / (989 * 0.5)) < 0.01

    digest = report["digest"]
    assert digest["sha256_mb_per_s"] > 50 and digest["remembered_ms"] < 50
    assert digest["umt5_xxl_encoder_bf16_s"] * digest["sha256_mb_per_s"] > 11_000  # 11.4 GB at that rate
