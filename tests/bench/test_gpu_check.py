"""bench/gpu_check.py at tiny sizes on CPU, under a Python that refuses what the GPU machine lacks.

The GPU machine has only PyTorch, numpy, safetensors, pyarrow and fsspec, and a GPU is lent for
minutes: the check must work the first time it meets one. These runs keep it from rotting.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.py"
NOT_ON_THE_GPU_MACHINE = ["ray", "av", "webdataset", "decord", "huggingface_hub", "yaml", "PIL", "s3fs", "boto3",
                          "braceexpand", "tqdm"]
ALLOWED_BEYOND_TORCH = {"numpy", "safetensors", "pyarrow", "fsspec"}
NO_CUDA = "skipped: no CUDA device"

# Loaded through PYTHONPATH as sitecustomize: makes the modules above absent (a None in sys.modules:
# importing one raises ModuleNotFoundError, importlib.util.find_spec answers None, as for a module
# not installed), and at exit lists the third-party top-level modules the process imported.
GUARD = textwrap.dedent(f"""
    import atexit, os, sys, sysconfig

    for name in {NOT_ON_THE_GPU_MACHINE!r}:
        sys.modules[name] = None

    def list_imported():
        site = sysconfig.get_paths()["purelib"]
        names = sorted({{name.partition(".")[0] for name, module in list(sys.modules.items())
                        if (getattr(module, "__file__", None) or "").startswith(site)
                        and not name.startswith("__editable__")}})
        with open(os.environ["IMPORTED_LIST"], "w") as listing:
            listing.write("\\n".join(names))

    atexit.register(list_imported)
""")


def _guarded_run(tmp_path: Path, args: list[str], listing: str, timeout: float = 120):
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    # only the guard on the path: the script must find the repository by itself, as on the GPU machine
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(guard), "IMPORTED_LIST": str(tmp_path / listing),
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _imported(tmp_path: Path, listing: str) -> set[str]:
    return set((tmp_path / listing).read_text().split())


def _modules_torch_brings() -> set[str]:
    """Top-level modules of torch and of what it requires (transitively, extras left out): wherever
    torch is installed, these are."""
    wanted, seen = ["torch"], set()
    while wanted:
        name = re.split(r"[<>=!~;\[ ]", wanted.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        wanted += [r for r in requires if "extra ==" not in r]
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if any(d.lower().replace("_", "-") in seen for d in dists)}


def test_tiny_check_on_cpu_without_ray_or_pyav(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = _guarded_run(tmp_path, [str(SCRIPT), "--tiny", "--threads", "1", "--out", str(out)], "check.txt")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert report["machine"]["device"] == "cpu" and report["model"] == "tiny-4x"
    assert report["elapsed_seconds"] < report["budget_seconds"]

    assert sections["matmul"]["n"] == 256 and sections["matmul"]["tflops"] > 0

    throughput = sections["throughput"]
    assert throughput["variants"] == {"fp32": None, "bf16": None, "bf16+channels_last": None,
                                      "bf16+compile": NO_CUDA}
    measured = {(p["variant"], p["frames"], p["size"], p["batch"]) for p in throughput["points"]}
    shapes = {(9, 32, 1), (9, 32, 2), (9, 64, 1)}  # --tiny: 9x32x32 at batch 1 and 2, 9x64x64 at batch 1
    assert measured == {(v, *shape) for v in ("fp32", "bf16", "bf16+channels_last") for shape in shapes}
    for point in throughput["points"]:
        assert point["clips_per_s"] > 0 and point["tflops"] > 0 and point["fraction_of_ceiling"] > 0, point
    assert set(throughput["gflop_per_clip"]) == {"9x32x32", "9x64x64"}
    assert throughput["gflop_per_clip"]["9x64x64"] > throughput["gflop_per_clip"]["9x32x32"] > 0

    memory = sections["memory"]
    assert memory["peak"] == NO_CUDA
    assert [(p["mode"], p["frames"], p["chunk_frames"]) for p in memory["points"]] == \
        [("whole", 9, None), ("whole", 17, None), ("chunked", 17, 4)]
    assert all(p["seconds"] > 0 and "peak_mib" not in p for p in memory["points"])

    fidelity = sections["fidelity"]
    assert fidelity["chunked_vs_whole_fp32_max_abs"] < 1e-5  # the Causal Cache is exact
    assert fidelity["chunked_vs_whole_bf16_rel_error"] < 2e-2
    assert 0 < fidelity["bf16_vs_fp32_rel_error"] < 5e-2  # random tiny weights: worse than the 1e-2 target
    assert fidelity["cuda_vs_cpu"] == NO_CUDA

    loop = sections["job_loop"]
    assert loop["batch"] == 2 and loop["rows_per_round"] == loop["clips_per_round"] == 8
    assert len(loop["loop_clips_per_s"]) == len(loop["bare_clips_per_s"]) == 3
    assert loop["loop_over_bare"] > 0

    canary = sections["canary"]
    assert canary["every"] == 8 and canary["clips"] == 9 and canary["checked"] == 2  # the first and the 9th
    assert canary["check_s"] > 0 and canary["share_of_encoder_time"] > 0

    for name in ("matmul", "throughput", "memory", "fidelity", "job_loop", "canary"):
        assert sections[name]["seconds"] >= 0
        assert not any(key in sections[name] for key in ("cut", "failed")), sections[name]

    table = {line.split()[0] for line in run.stdout.splitlines()[2:] if line.strip()}
    assert {"matmul", "encoder", "memory", "fidelity", "job", "canary"} <= table

    beyond_torch = _imported(tmp_path, "check.txt") - _modules_torch_brings()
    assert beyond_torch <= ALLOWED_BEYOND_TORCH, beyond_torch


@pytest.mark.slow
def test_a_section_past_its_time_is_cut_and_the_run_still_reports(tmp_path):
    """Each throughput point asks for 10^6 timed encodes: the alarm must cut the section at its deadline."""
    out = tmp_path / "cut.json"
    run = _guarded_run(tmp_path, [str(SCRIPT), "--tiny", "--threads", "1", "--sections", "throughput", "fidelity",
                                  "--min-iterations", "1000000", "--budget-seconds", "5", "--out", str(out)],
                       "cut.txt")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    throughput, fidelity = report["sections"]["throughput"], report["sections"]["fidelity"]
    assert throughput["cut"].startswith("cut: time budget")
    assert fidelity["chunked_vs_whole_fp32_max_abs"] < 1e-5  # kept its share of the budget
    assert report["sections"]["matmul"]["skipped"].startswith("skipped: not asked for")
    assert report["elapsed_seconds"] < 5 + 3
