"""The driver's work at 10^4-10^6 listed shards: planning, dry run, and a resume with all but 10
shards committed, on local storage and on moto's S3 server. Wall time and peak memory of each.

    python bench/scale.py                                  # 10^4, 10^5, 10^6 local; 10^4, 10^5 on S3
    python bench/scale.py --local 10000 --s3 "" --e2e 50000
    python bench/scale.py --local "" --s3 "" --killed-local "" --killed-e2e 50000 --killed-job 2000:1200
    python bench/scale.py --tiny --out scale.json            # seconds: what tests/bench/test_bench_smoke.py runs

Listings and outputs are fabricated: N empty tar files (names are all planning looks at), an
output whose first N - 10 shards are committed (empty commit markers, and the run file a finished
run leaves, with the shards' source tokens), so nothing is encoded. Timed, each in a fresh
process (peak RSS is the process's, less what it held after its imports):

    plan      driver.Plan: listing the input, the duplicate-name check, the model's config
    dry-run   dry_run.dry_run (no shard probed: they are empty)
    resume    Plan + the output sink's whole life: hold (the lease), start (identity, state from the run
              files, source tokens, what is left), begin, the 10 shards published and committed, finish
              (the run file, the summary from the run files): all of the driver's work but encoding. With
              a killed run's files (its updates, 1,000 commits each) instead of a finished run's: the same,
              and the killed run's files written down as one

S3: the same objects in moto's in-process backend, reached through s3fs over HTTP; the moto
server runs in the bench's process, so its CPU time is counted too. ``--e2e N`` also runs the real
job (jobs/encode_dataset.py, local Ray, the tiny model) on 10 real shards alone, then on the same
10 beside N - 10 committed ones; ``--killed-e2e N`` the same with N - 10 committed by a killed run.
``--killed-job COUNT:AT`` runs the real job on COUNT empty shards, kills it (SIGKILL) at AT commits and
runs it again: the commit records the second run reads are those of the kill's last 30 s or 1,000 commits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

TINY_MODEL = ROOT / "tests" / "fixtures" / "wfvae" / "tiny-4x"
LEFT = 10  # shards left to encode in a resume
SINCE_UPDATE = 500  # a killed run's commits since its last update (at most 1,000 or 30 s of them)
ARGS = ["--model", str(TINY_MODEL), "--num-frames", "5", "--resolution", "32x32", "--batch-size", "2",
        "--dtype", "float32"]


def name(i: int) -> str:
    return f"part-{i:07d}"


# -- fabricating ---------------------------------------------------------------------------

def job_args(input_spec: str, out: str, storage_options: dict | None) -> list[str]:
    extra = ["--storage-options", json.dumps(storage_options), "--model-storage-options", "{}"] if storage_options \
        else []
    return ["--input", input_spec, "--output", out, *ARGS, *extra]


def fabricate(base: str, count: int, storage_options: dict | None, put, killed: bool = False) -> str:
    """Input shards and an output with all but LEFT committed; returns the input spec. The committed shards'
    markers are empty (only listed): the run files account for them, as a finished run leaves them, or with
    ``killed`` as a run killed after its last update leaves them (its update files, 1,000 commits each)."""
    from pipeline.job.config import config_from_args
    from pipeline.job.plan import Plan
    from pipeline.output.index import UPDATE_COMMITS, RunIndex
    from pipeline.output.manifest import Manifest, ModelIdentity
    from pipeline.output.records import CommitRecord
    from pipeline.output.sink import OutputSink
    from pipeline.output.sources import source_tokens
    from pipeline.output.storage import write_json
    from wfvae import WFVAE

    names = [name(i) for i in range(count)]
    for n in names:
        put(f"{base}/in/{n}.tar", b"")
    spec = f"{base}/in/part-*.tar"
    job = config_from_args(job_args(spec, f"{base}/out", storage_options))
    plan = Plan(job)
    vae = WFVAE.from_pretrained(job.where.model)  # the model as the job's actors identify it
    identity = plan.identity(on_gpu=False).with_encoders(ModelIdentity.of(vae, job.where.model))
    layout = OutputSink(job.where.output, job.where.storage_options).layout
    write_json(layout.fs, layout.job_manifest, Manifest(identity, job.public_dict()).to_dict())
    tokens = source_tokens(plan.urls, storage_options)
    started = time.time() - 60
    runs = [RunIndex("fabricated", started, part=1 if killed else 0)]
    committed = list(zip(plan.urls[:-LEFT], names[:-LEFT]))
    unrecorded = min(SINCE_UPDATE, len(committed) // 4) if killed else 0  # committed after the last update
    for url, n in committed[:len(committed) - unrecorded]:
        put(f"{base}/out/_committed/{n}.json", b"")  # only listed: a run file accounts for it
        if killed and len(runs[-1].shards) == UPDATE_COMMITS:
            runs.append(RunIndex("fabricated", started, part=len(runs) + 1))
        runs[-1].add(CommitRecord(n, url=url, rows=100, bytes={"latents": 10**6, "errors": 1000}), tokens[url])
    for url, n in committed[len(committed) - unrecorded:]:
        record = CommitRecord(n, url=url, rows=100, bytes={"latents": 10**6, "errors": 1000}, source=tokens[url])
        put(f"{base}/out/_committed/{n}.json", json.dumps(record.to_dict()).encode())
    for run in runs:
        write_json(layout.fs, layout.run_index(run.file_name), run.to_dict())
    return spec


def local_put(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


# -- one measurement (in its own process) --------------------------------------------------

def measure(stage: str, spec: str, out: str, storage_options: dict | None) -> dict:
    from pipeline.job.config import config_from_args
    from pipeline.job.dry_run import dry_run
    from pipeline.job.plan import Plan
    from pipeline.output.records import CommitRecord
    from pipeline.output.sink import OutputSink

    job = config_from_args(job_args(spec, out, storage_options))
    baseline = reset_peak_memory()
    started = time.perf_counter()
    if stage == "plan":
        shards = len(Plan(job).urls)
    elif stage == "dry-run":
        shards = dry_run(job, probe_shards=0).shards
    else:  # all of the driver's work but encoding: the output's whole life, the 10 shards committed by "actors"
        plan = Plan(job)
        sink = OutputSink(job.where.output, job.where.storage_options)
        with sink.hold(plan.run_id, 60, log=lambda line: None):
            left = sink.start(plan.urls, plan.names, plan.identity(on_gpu=False))
            assert len(left.todo) == LEFT, len(left.todo)
            sink.begin(sink.manifest())
            for url in left.todo:
                sink.committed(sink.publish(CommitRecord(url.rsplit("/", 1)[-1][:-4], url=url), [], [], {}))
            summary = sink.finish(seconds=1.0)
        assert summary.shards.committed == summary.shards.total, summary.shards
        shards, read = summary.shards.total, summary.this_run.records_read
    seconds = time.perf_counter() - started
    return {"stage": stage, "shards": shards, "seconds": round(seconds, 2), "peak_mib": round(memory("VmHWM")),
            "baseline_mib": round(baseline), **({"records_read": read} if stage == "resume" else {})}


def memory(field: str) -> float:
    """MiB of /proc/self/status's VmRSS (now) or VmHWM (peak since the last reset)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak_memory() -> float:
    """Resets the peak to what the process holds now (Linux: clear_refs 5); returns that."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return memory("VmRSS")


def in_subprocess(stage: str, spec: str, out: str, storage_options: dict | None) -> dict:
    result = subprocess.run([sys.executable, __file__, "--one", stage, spec, out, json.dumps(storage_options)],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- the runs ------------------------------------------------------------------------------

def local_rows(count: int, killed: bool = False) -> list[dict]:
    base = tempfile.mkdtemp(prefix=f"scale-{count}-")
    storage = "local, a run killed" if killed else "local"
    try:
        began = time.perf_counter()
        spec = fabricate(base, count, None, local_put, killed)
        print(f"  {storage} {count}: fabricated in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        stages = ("resume",) if killed else ("plan", "dry-run", "resume")
        return [{"storage": storage, **in_subprocess(stage, spec, f"{base}/out", None)} for stage in stages]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def s3_rows(count: int) -> list[dict]:
    """moto's server in this process; stages run here too (the server cannot be shared with a child)."""
    from moto.backends import get_backend

    from tests.support.s3 import LocalS3

    import logging

    class Count(logging.Handler):
        """moto's server logs one line per request: counted, not printed."""

        def __init__(self) -> None:
            super().__init__()
            self.requests: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.requests.append(record.getMessage().split('"')[1] if '"' in record.getMessage() else "")

    counter = Count()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.handlers[:] = [counter]
    werkzeug.propagate = False
    werkzeug.setLevel(logging.INFO)
    rows = []
    with LocalS3() as s3:
        bucket = f"scale{count}"
        s3.create_bucket(bucket)
        backend = get_backend("s3")["123456789012"]["global"]

        def put(path: str, data: bytes) -> None:
            backend.put_object(bucket, path.split("/", 3)[3], data)

        began = time.perf_counter()
        spec = fabricate(f"s3://{bucket}", count, s3.storage_options, put)
        print(f"  s3 {count}: fabricated in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        for stage in ("plan", "dry-run", "resume"):
            counter.requests.clear()
            row = measure(stage, spec, f"s3://{bucket}/out", s3.storage_options)
            kinds = {}
            for request in counter.requests:
                method, path = (request.split(" ") + ["", ""])[:2]
                kind = f"{method} {'list ' + path.split('prefix=')[1].split('&')[0] if 'list-type' in path else ''}"
                kinds[kind] = kinds.get(kind, 0) + 1
            rows.append({"storage": "s3 (moto)", **row, "requests": len(counter.requests)})
            print(f"  s3 {count} {stage}: {len(counter.requests)} requests: {kinds}", file=sys.stderr)
    return rows


def run_job(spec: str, out: Path, timeout: float = 1200) -> tuple[float, dict]:
    """The real job (its own local Ray runtime) to its end: (seconds, its _summary.json)."""
    began = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "jobs" / "encode_dataset.py"), *job_args(spec, str(out), None),
                             "--ray-address", "local"], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - began
    if result.returncode:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return seconds, json.loads((out / "_summary.json").read_text())


def e2e(count: int, killed: bool = False) -> list[dict]:
    """The real job on 10 real shards alone, and beside count - 10 committed ones (by a finished run, or by a run
    killed after its last update)."""
    from tests.support.shards import write_shards

    base = Path(tempfile.mkdtemp(prefix="scale-e2e-"))
    try:
        real = write_shards(base / "real", 3, shards=LEFT)
        rows = []
        for listed in (LEFT, count):
            folder, out = base / f"in-{listed}", base / f"out-{listed}"
            if listed > LEFT:
                fabricate(str(base / f"fab-{listed}"), listed, None, local_put, killed)
                shutil.move(str(base / f"fab-{listed}" / "in"), folder)
                shutil.move(str(base / f"fab-{listed}" / "out"), out)
            folder.mkdir(exist_ok=True)
            for s in range(LEFT):  # the real shards take the last names (the ones left to encode)
                shutil.copy(real.folder / f"part-{s:06d}.tar", folder / f"{name(listed - LEFT + s)}.tar")
            seconds, summary = run_job(str(folder / "part-*.tar"), out)
            assert summary["this_run"]["shards_encoded"] == LEFT, summary["this_run"]
            rows.append({"storage": "local" + (", a run killed" if killed and listed > LEFT else ""),
                         "stage": f"job, {LEFT} to encode", "shards": listed, "seconds": round(seconds, 1),
                         "peak_mib": None, "records_read": summary["this_run"]["records_read"]})
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def killed_job(count: int, at: int) -> list[dict]:
    """The real job on ``count`` empty shards, killed (SIGKILL, with its process group) once ``at`` are committed;
    then run again: the commit records it reads are those committed since the killed run's last update."""
    import tarfile

    base = Path(tempfile.mkdtemp(prefix="scale-killed-"))
    try:
        (base / "in").mkdir()
        for i in range(count):
            tarfile.open(base / "in" / f"{name(i)}.tar", "w").close()
        spec, out = str(base / "in" / "part-*.tar"), base / "out"
        job = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "encode_dataset.py"),
                                *job_args(spec, str(out), None),
                                "--ray-address", "local"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        began = time.perf_counter()
        while job.poll() is None and time.perf_counter() - began < 1200:
            committed = len(os.listdir(out / "_committed")) if (out / "_committed").exists() else 0
            if committed >= at:
                break
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        committed = len(os.listdir(out / "_committed"))
        time.sleep(2)  # the killed driver's actors finish publishing what they were publishing, or die
        seconds, summary = run_job(spec, out)
        run = summary["this_run"]
        return [{"storage": "local, the job killed", "stage": f"re-run after a kill at {committed}", "shards": count,
                 "seconds": round(seconds, 1), "peak_mib": None, "records_read": run["records_read"],
                 "committed_before": run["shards_skipped"]}]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", default="10000,100000,1000000")
    parser.add_argument("--s3", default="10000,100000")
    parser.add_argument("--killed-local", default="1000000", help="the resume after a run killed after its last "
                                                                 "update, at these fabricated sizes")
    parser.add_argument("--e2e", type=int, default=0, help="also run the real job with this many listed shards")
    parser.add_argument("--killed-e2e", type=int, default=0, help="also run the real job with this many listed "
                                                                  "shards committed by a killed run")
    parser.add_argument("--killed-job", default="", help="COUNT:AT: the real job on COUNT empty shards killed at AT "
                                                         "commits, then run again (e.g. 2000:1200)")
    parser.add_argument("--tiny", action="store_true", help="the smallest run, seconds: what a test runs")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        stage, spec, out, options = args.one
        print(json.dumps(measure(stage, spec, out, json.loads(options))))
        return
    if args.tiny:
        args.local, args.s3, args.killed_local = "100", "20", "100"
    rows = []
    for count in (int(c) for c in args.local.split(",") if c):
        rows += local_rows(count)
        print(json.dumps(rows[-3:]), file=sys.stderr)
    for count in (int(c) for c in args.killed_local.split(",") if c):
        rows += local_rows(count, killed=True)
        print(json.dumps(rows[-1:]), file=sys.stderr)
    for count in (int(c) for c in args.s3.split(",") if c):
        rows += s3_rows(count)
        print(json.dumps(rows[-3:]), file=sys.stderr)
    if args.e2e:
        rows += e2e(args.e2e)
    if args.killed_e2e:
        rows += e2e(args.killed_e2e, killed=True)
    if args.killed_job:
        count, at = (int(n) for n in args.killed_job.split(":"))
        rows += killed_job(count, at)
    print("| storage | stage | listed shards | wall s | peak RSS MiB (held before) | S3 requests | records read |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['storage']} | {row['stage']} | {row['shards']:,} | {row['seconds']} | {row['peak_mib']} "
              f"({row.get('baseline_mib')}) | {row.get('requests', '')} | {row.get('records_read', '')} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
