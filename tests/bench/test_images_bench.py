"""bench/images.py --tiny: the image benchmark still runs and measures something (a few seconds)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_image_benchmark_tiny_run_gives_positive_figures(tmp_path):
    figures_file = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "images.py"), "--tiny", "--json", str(figures_file)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    figures = json.loads(figures_file.read_text())
    rates = figures["images_per_second"]
    assert {"jpeg", "png", "jpeg, EXIF orientation 6", "png, RGBA", "png, 16-bit gray"} <= set(rates)
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in rates.values()), rates
    quality = figures["quality"]
    assert {row["source"] for row in quality} == {"jpeg", "png"}
    assert all(math.isfinite(row["psnr_db"]) and row["psnr_db"] > 30 for row in quality), quality
    assert "| jpeg | " in run.stdout and "images/s per core" in run.stdout
