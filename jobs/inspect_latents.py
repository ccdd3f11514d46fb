"""Inspect the output of jobs/encode_dataset.py before training on it.

    python jobs/inspect_latents.py OUT                     # table: shards, rows, errors, bytes, shapes, config
    python jobs/inspect_latents.py OUT --model MODEL [--input SHARDS] [--sheet sheet.png]
                                                           # + decode a few clips: contact sheet and PSNR

OUT is a local folder or an fsspec URL (s3://bucket/latents, with --storage-options). The
contact sheet shows, per clip, source frames (re-read from the input shards by key, with the
job's own clip settings) above the decoded frames at the same indices, with the clip's PSNR
in dB over all its frames on uint8 RGB (peak 255). --input defaults to the job's input.

Exit status: 0 done, 2 invalid arguments or OUT is not a readable output, 1 the decode check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspect_latents.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("output", metavar="OUT", help="the job's output folder or URL")
    add("--storage-options", default="{}", help="fsspec storage options as JSON, for OUT and the input")
    add("--input", help="input shards (brace range, glob, list file); default: the job's --input")
    add("--json", action="store_true", help="print the report as JSON instead of a table")
    add("--model", help="WF-VAE folder, checkpoint, Hugging Face repo id or fsspec URL (s3://...): decode clips "
                        "for a contact sheet")
    add("--sheet", default="contact_sheet.png", help="where the contact sheet PNG goes (default contact_sheet.png)")
    add("--clips", type=int, default=4, help="clips on the contact sheet, spread over all rows (default 4)")
    add("--frames", type=int, default=5, help="frames shown per clip, evenly spaced (default 5)")
    add("--tile-height", type=int, default=128, help="height of a frame on the sheet in pixels; 0 for the "
                                                    "frames' own size (default 128)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        storage_options = json.loads(args.storage_options)
        if not isinstance(storage_options, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        print(f"error: --storage-options: {err}", file=sys.stderr)
        return 2
    if args.clips < 1 or args.frames < 1 or args.tile_height < 0:
        print("error: --clips and --frames must be at least 1, --tile-height at least 0", file=sys.stderr)
        return 2

    from pipeline.dataset import OutputNotReadable
    from pipeline.inspect import check_decoding, describe_output, format_psnr, format_report

    try:
        report = describe_output(args.output, storage_options, args.input)
    except (OutputNotReadable, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.json:
        print(format_report(report))
    if args.model is None:
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    try:
        check = check_decoding(args.output, args.model, args.input, storage_options, clips=args.clips,
                               frames=args.frames, tile_height=args.tile_height or None)
    except (OutputNotReadable, LookupError, ValueError, FileNotFoundError) as err:
        print(f"error: decode check: {err}", file=sys.stderr)
        return 1
    check.sheet.image.save(args.sheet)
    if args.json:
        print(json.dumps({**report.to_dict(), "decode_check": {
            "sheet": args.sheet, "same_weights": check.same_weights, "clips": [vars(clip) for clip in check.clips]}},
            indent=2, default=str))
        return 0
    print()
    if not check.same_weights:
        print(f"warning: {args.model} is not the model that encoded this output (weights differ); PSNR says "
              "nothing about the latents")
    for clip in check.clips:
        print(f"PSNR {format_psnr(clip.psnr):>20}  {clip.key} clip {clip.clip} ({clip.shard}, latent "
              f"{clip.latent_shape}, {clip.frames} frames)")
    width, height = check.sheet.image.size
    print(f"contact sheet {args.sheet} ({width}x{height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
