"""Video decoding as Ray tasks, so a crashing decoder costs one sample, not an encoder.

Each sample is decoded by its own task in a CPU worker process and streamed back clip
by clip (or piece by piece for whole-video clips). A segfault in the decoder kills
only that worker; the encoder sees a ``WorkerCrashedError`` for that sample's task.
"""

from __future__ import annotations

from collections.abc import Iterator

import ray
from ray.exceptions import RayTaskError, WorkerCrashedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..reading import ClipPiece, ReadConfig, Sample, SampleError, decode_clips
from ..reading.records import STAGE_DECODE, describe
from .metrics import timed_decode

# Pieces a decode task may produce ahead of the encoder: bounds memory for long videos.
PIECES_AHEAD = 2


def _decode(sample: Sample, config: ReadConfig, piece_frames: int | None) -> Iterator[ClipPiece]:
    yield from timed_decode(decode_clips(sample, config, piece_frames))


# No retries: a decoder crash is deterministic for a given file, and a retry would crash again.
decode_task = ray.remote(num_cpus=1, max_retries=0)(_decode)


def submit(sample: Sample, config: ReadConfig, piece_frames: int | None):
    """Start decoding ``sample``, preferably on the caller's node (decoded frames then never
    cross the network); returns a generator of ObjectRefs of ClipPieces."""
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    return decode_task.options(num_returns="streaming", scheduling_strategy=here,
                               _generator_backpressure_num_objects=PIECES_AHEAD).remote(sample, config, piece_frames)


def failure(err: BaseException) -> tuple[str, str, str]:
    """(stage, error_type, message) for an error raised while fetching a decoded piece."""
    cause = err.cause if isinstance(err, RayTaskError) and getattr(err, "cause", None) is not None else err
    if isinstance(cause, SampleError):
        return cause.stage, cause.error_type, cause.message
    if isinstance(cause, WorkerCrashedError):
        return (STAGE_DECODE, "DecoderCrashed",
                "the worker process decoding this sample died (a crash inside the video decoder, or it was killed)")
    return STAGE_DECODE, type(cause).__name__, describe(cause)
