"""The job's driver and decode workers import pipeline.text for its settings and checks: that must not
import torch, transformers or tokenizers (each costs a process seconds at start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_package_and_reading_a_config_loads_no_model_library(text_models):
    code = ("import sys, pipeline, pipeline.text, pipeline.text.settings, pipeline.text.identity; "
            "from pipeline.text import read_text_config, resolve_text_dtype; "
            f"assert read_text_config({str(text_models['umt5-full'])!r})['model_type'] == 'umt5'; "
            "assert resolve_text_dtype('auto', on_gpu=True) == 'bfloat16'; "
            "print(sorted(name for name in ('torch', 'transformers', 'tokenizers') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
