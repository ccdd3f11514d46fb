"""The driver and the decode workers start without torch (importing it costs each process ~1-2 s)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.jobs import REPO


def test_the_driver_and_the_decode_workers_do_not_import_torch():
    code = ("import sys, pipeline.job.driver, pipeline.job.dataflow, pipeline.job.decode_workers, pipeline.reading; "
            "print(sorted(name for name in ('torch', 'webdataset') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_torch_free_precision_table_agrees_with_torch():
    import torch

    from pipeline.dtypes import DTYPES, ITEMSIZES

    assert {name: (DTYPES[name], ITEMSIZES[name]) for name in DTYPES} == \
        {name: (getattr(torch, name), getattr(torch, name).itemsize) for name in ("float32", "float16", "bfloat16")}
