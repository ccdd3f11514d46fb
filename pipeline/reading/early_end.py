"""A video whose frames stop before its header says (a cut file): how it is told, and the one rule for it.

What a cut file does (PyAV 18 / FFmpeg 7 and decord 0.6 / FFmpeg 4.1, files cut at many points):
- mp4 and mov with the index (moov) first, and avi: the header counts the frames (250, say). The demuxer
  gives every whole packet, then one cut short and flagged corrupt. Decoding that one fails (h264, hevc:
  InvalidData, and the frames the decoder held back are lost with it) or gives a damaged frame (mpeg4).
  The mp4 index also places every frame's data, so a frame past the file's end is known at opening.
- Matroska and WebM: the header states a duration (FFmpeg writes a DURATION tag per stream), no count;
  the demuxer stops at the last whole block, unflagged.
- An mp4 with its index last loses the index to the cut: unreadable, as any such file.
- decord cannot open a cut mp4 at all (building its index fails at the cut packet).
Frames shown before the last whole one but stored after it (B-frames) are missing too: the frame times
keep that gap.

The rule, for every clip policy and both decoders: a video is the frames it holds. A last packet cut
short is not a frame. Clips are planned on the whole frames, so `uniform:N` places its clips within them,
`all` takes those that fit and `whole` the longest clip they make; `source_num_frames` counts them; every
ClipInfo says `source_ended_early`; the sample gives one warning, `EndedEarly`, with the frames held
against the header's claim, before its clips (a video then too short for a clip is refused as any short
one is, after the warning). A first clip reads the video only as far as it needs: it knows of an early
end by the mp4 index, or when the cut falls within what it read; otherwise it is not known (None).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from .clip_sampling import typical_interval
from .probe import Timing, open_video
from .records import LEVEL_WARNING, STAGE_DECODE, ErrorRecord

ENDED_EARLY = "EndedEarly"

# FFmpeg's demuxer of mp4, mov, m4a, 3gp...: it indexes every frame from the header (moov) at opening.
MOV_DEMUXER = "mov"

# A header that states a duration, not a count, claims no frame exactly: the frames must fall short of it
# by more than this many frame intervals to end early (a frame's rounding, either way, is no cut).
DURATION_SLACK_FRAMES = 2


@dataclass(frozen=True)
class Claim:
    """What a container's header says of its video stream's length, known before any packet is read."""

    frames: int | None
    """The frame count it states (mp4, mov, avi; for mp4 and mov the frames its index keeps once its edit
    list is applied), or None."""
    seconds: float | None
    """Where it states no count: the stream's duration (FFmpeg's DURATION tag in Matroska and WebM; the
    container's duration when the video is its only stream), or None."""
    frames_in_file: int | None
    """How many of the counted frames have their data within the file, by the container's per-frame
    index (mp4, mov); None without one."""

    @property
    def cut(self) -> bool:
        """The index places frames past the file's end."""
        return self.frames_in_file is not None and self.frames is not None and self.frames_in_file < self.frames


@dataclass(frozen=True)
class EndCheck:
    """Whether a video holds the frames its header claims."""

    early: bool | None
    """True: it ends before its header says; None: not known."""
    held: int | None = None
    """The whole frames it holds, when it ends early."""
    message: str = ""

    @property
    def warning(self) -> ErrorRecord | None:
        """The sample's EndedEarly record (its shard and key unset), or None."""
        return ErrorRecord(STAGE_DECODE, ENDED_EARLY, self.message, level=LEVEL_WARNING) if self.early else None


def claim_of(container: av.container.InputContainer, stream: av.video.stream.VideoStream, file_size: int) -> Claim:
    """The header's claim, read from an opened file (no packet is read)."""
    entries = stream.index_entries
    frames = stream.frames or None
    if frames and MOV_DEMUXER in container.format.name.split(","):
        frames = len(entries) or frames  # its index of every frame, the edit list applied (a trim drops frames)
    seconds = None
    if frames is None:
        tag = _tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
        if tag is not None:
            seconds = tag
        elif len(container.streams) == 1 and container.duration:
            seconds = container.duration / av.time_base
    in_file = None
    if frames is not None and len(entries) == frames:  # an index of every counted frame, in file order
        in_file = bisect.bisect_right(range(frames), file_size, key=lambda i: entries[i].pos + entries[i].size)
    return Claim(frames, seconds, in_file)


def claim_of_file(path: str) -> Claim:
    """The header's claim of a video file (for decord, which reads no header's count)."""
    container, stream = open_video(path)
    with container:
        return claim_of(container, stream, os.path.getsize(path))


def end_of_read(claim: Claim, starts: np.ndarray, end: float, cut: bool) -> EndCheck:
    """For a video whose every packet was read: `starts` the whole frames' start times (sorted), `end` when
    the last stops being shown, `cut` whether a packet was cut short (or demuxing failed) after them."""
    held = len(starts)
    if claim.frames is not None:
        if held < claim.frames:
            return _early(held, f"{held} whole frames of the {claim.frames} its header claims")
        return EndCheck(False)
    if claim.seconds is not None and claim.seconds - end > DURATION_SLACK_FRAMES * typical_interval(starts):
        seconds = f"{end:.2f} s of the {claim.seconds:.2f} s its header claims"
        return _early(held, f"{held} whole frames, ending at {seconds}")
    if cut:
        return _early(held, f"the file is cut after {held} whole frames (its header claims no length)")
    return EndCheck(False if claim.seconds is not None else None)


def end_by_index(claim: Claim) -> EndCheck:
    """For a video read only part of the way: what its per-frame index says, if it has one."""
    if claim.frames_in_file is None:
        return EndCheck(None)
    if claim.cut:
        held = claim.frames_in_file
        return _early(held, f"{held} whole frames of the {claim.frames} its header claims")
    return EndCheck(False)


def held_timing(timing: Timing, check: EndCheck) -> Timing:
    """The header's timing of a video not read to its end, counting only the frames it holds."""
    if not check.early or not timing.fps:
        return timing
    return Timing(check.held, timing.fps, check.held / timing.fps, estimated=True)


def _early(held: int, what: str) -> EndCheck:
    return EndCheck(True, held, f"the video ends early: {what}; clips are taken from those")


def _tag_seconds(text: str | None) -> float | None:
    """'00:00:10.000000000' -> 10.0; None for anything else."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None
    return value if value > 0 else None


class WholePackets:
    """The packets of a demuxed stream that hold data, in decode order, without a last one cut short.

    `cut` is set when the stream's last packet was flagged corrupt and left out. A corrupt packet
    followed by others is kept (not a cut; the decoder says what it makes of it).
    """

    def __init__(self, packets: Iterator[av.Packet]):
        self._packets = packets
        self._held: av.Packet | None = None
        self.cut = False

    def __iter__(self) -> WholePackets:
        return self

    def __next__(self) -> av.Packet:
        packet = self._held if self._held is not None else self._with_data()
        self._held = None
        if packet.is_corrupt:
            try:
                self._held = self._with_data()
            except StopIteration:
                self.cut = True
                raise
        return packet

    def _with_data(self) -> av.Packet:
        packet = next(self._packets)
        while packet.size == 0:  # the demuxer's flush packet
            packet = next(self._packets)
        return packet
