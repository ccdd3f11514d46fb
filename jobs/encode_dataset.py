"""Encode WebDataset video shards to WF-VAE latents in Parquet.

    ray job submit --working-dir . -- python jobs/encode_dataset.py \\
        --input 's3://bucket/shards/{000000..000999}.tar' --output s3://bucket/latents \\
        --model chestnutlzj/WF-VAE-L-16Chn --num-frames 33 --resolution 256

Without a running cluster this starts a local Ray runtime; with no arguments it encodes
the bundled demo shards with the bundled demo model into out/demo. Re-running the same
command resumes: committed shards are skipped.

Exit status: 0 all shards committed, 3 some shards given up (re-run to retry them),
2 invalid settings, 1 the job could not run (e.g. another job holds the output),
143 / 130 stopped by SIGTERM / SIGINT (committed shards are kept; re-run to resume).
``--dry-run`` prints what a run would do and exits as the run would before it starts encoding: 0, or
2 with the run's message for settings or an output the run would refuse.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.job.config import ConfigError, build_parser, config_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if build_parser().parse_args(argv).dry_run:
        from pipeline.job.dry_run import dry_run, format_dry_run
        from pipeline.job.errors import JobError

        try:
            print(format_dry_run(dry_run(config)))
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except JobError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    import ray

    from pipeline.job.driver import JobError, run_job
    from pipeline.job.stopping import StopRequest

    stop = StopRequest()
    stop.install()  # kept until Ray is left: a signal during the shutdown changes nothing of the run
    joined = not ray.is_initialized()  # this run joins (or starts) Ray, unless its caller already had
    try:
        summary = run_job(config, stop=stop)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except JobError as err:
        print(f"error: {err}", file=sys.stderr)
        return stop.exit_code or 1
    finally:
        if joined and ray.is_initialized():
            # Leave Ray now rather than in its exit hook, which first waits 0.5 s for workers' log lines:
            # the job's actors are gone and its summary (or error) is printed.
            ray.shutdown()
        stop.restore()
    if summary.this_run.stopped_by:
        return stop.exit_code
    status = 0 if summary.shards.committed == summary.shards.total else 3
    if stop.signum is not None:  # it came after the run had ended: its outcome stands
        print(f"{stop.name} received after the run ended; exit status {status}, as the run left the output",
              file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
