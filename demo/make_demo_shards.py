"""Builds the bundled demo input: demo/shards/demo-00000{0,1}.tar from bigbuckbunny.mp4.

Four 1.3 s segments of the clip (re-encoded at 640x360 to keep the repo light), each a
WebDataset sample with a caption (txt) and metadata (json), plus one deliberately
truncated video so the demo shows how a broken sample is recorded and skipped.

    python demo/make_demo_shards.py

Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0.
"""

from __future__ import annotations

import io
import json
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "bigbuckbunny.mp4"
SEGMENT_FRAMES = 33
CAPTIONS = [
    "A big grey rabbit crawls out of its burrow on a grassy hillside.",
    "The rabbit climbs out and stretches its arms in the morning light.",
    "A chubby cartoon rabbit stands by a mossy rock with its arms stretched out.",
    "The rabbit yawns and rubs its ear in front of a mossy rock.",
]
ATTRIBUTION = "Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0"


def read_frames(height: int = 360) -> tuple[list[np.ndarray], float]:
    """The source's frames as RGB, scaled to ``height`` (16:9, even width)."""
    width = round(height * 16 / 9 / 2) * 2
    with av.open(str(SOURCE)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24", width=width, height=height) for f in container.decode(stream)]
    return frames, fps


def encode_mp4(frames: list[np.ndarray], fps: float) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "30", "preset": "veryslow"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # reproducible archives
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    frames, fps = read_frames()
    samples = []
    for index, caption in enumerate(CAPTIONS):
        segment = frames[index * SEGMENT_FRAMES:(index + 1) * SEGMENT_FRAMES]
        meta = {"source": "bigbuckbunny.mp4", "start_frame": index * SEGMENT_FRAMES, "fps": fps,
                "license": ATTRIBUTION}
        samples.append((f"bbb-{index:03d}", encode_mp4(segment, fps), caption, meta))
    broken = samples[-1][1][: len(samples[-1][1]) // 3]  # a download cut short
    samples.append(("bbb-broken", broken, "A video that was cut short while downloading.",
                    {"source": "bigbuckbunny.mp4", "note": "truncated on purpose", "license": ATTRIBUTION}))
    out = HERE / "shards"
    out.mkdir(exist_ok=True)
    for shard, chunk in enumerate([samples[:2], samples[2:]]):
        with tarfile.open(out / f"demo-{shard:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for key, video, caption, meta in chunk:
                add(tar, f"{key}.mp4", video)
                add(tar, f"{key}.txt", caption.encode())
                add(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
        print(f"wrote {out / f'demo-{shard:06d}.tar'}")


if __name__ == "__main__":
    main()
