"""One video read with PyAV in one pass: demux once, decode only what the clips need.

The file is opened once (no separate probe). Its packets are demuxed, not
decoded, into frame times: for a first clip only until that clip's frames are
settled, so its cost does not grow with the video's length; the other modes
place clips by the video's end and read every packet (kept in memory, so
nothing is read twice). Decoding starts at the keyframe at or before each clip
and stops once the clip's frames are out. A packet whose frame no clip needs is
decoded with `skip_frame=NONREF`: if nothing refers to it, it is never decoded
(no other frame depends on it, so the output is bit-identical). Only the chosen
frames are converted, by an FFmpeg filter graph that crops the cover window and
area-scales it straight to RGB.

Frame times follow decord's index, which the clip plans were first written
against: packet pts less the stream's start time, in presentation order. A first
clip is planned on the frames read so far: the same frames as on the whole
video's times (the plan's tolerance, a tenth of the median frame interval, comes
from the frames read); its frame count and rate then come from the container's
header, marked as an estimate (`probe.header_timing`).
A file that cannot be demuxed past some point ends there, as a cut file does; a last packet cut short
is no frame (`early_end.py`), and the header's claim of the video's length is read at opening (`claim`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from .clip_sampling import TIME_TOLERANCE, typical_interval
from .config import ReadConfig
from .early_end import WholePackets, claim_of
from .probe import QUICK_OPEN, Geometry, Timing, geometry_of, header_timing, open_video, without_path
from .records import STAGE_DECODE, ErrorRecord, SampleError, describe
from .spatial import cover_window, output_size

_QUICK_OPEN = QUICK_OPEN  # the name bench/decode.py imports

# Packets demuxed past the last one a first clip needs: a frame can come this many packets
# later in decode order than in presentation order at most (H.264 and HEVC reorder up to 16).
REORDER_MARGIN = 16

# swscale's area filter, with chroma brought to full resolution before scaling: 41.4 dB
# against LANCZOS on the demo at 720p -> 256 (39.8 without full_chroma_int; lanczos 46 dB
# costs twice the time). bench/decode.py measures it.
SCALE_FLAGS = "area+full_chroma_int"

# Decoders that honour a `skip_frame` change between packets (libdav1d, for one, reads it
# only when opened, and would then drop frames a clip needs).
SKIPPING_DECODERS = frozenset({"h264", "hevc"})


class PyAVVideo:
    """A video file opened once: its packets, their times, and a decoder positioned on demand."""

    def __init__(self, path: str, config: ReadConfig):
        self._path = path
        self._config = config
        self._container, self._stream = open_video(path)
        context = self._stream.codec_context
        context.thread_count = config.decode_threads
        self.codec = context.name
        self._time_base = float(self._stream.time_base or Fraction(1, 1000))
        self._start = self._stream.start_time or 0
        self._demuxer = WholePackets(self._container.demux(self._stream))
        self.claim = claim_of(self._container, self._stream, os.path.getsize(path))
        """What the header says of the video's length (`early_end.Claim`)."""
        self._demux_failed = False
        self._packets: list[av.Packet] = []
        self._pts: list[int] = []
        self._durations: list[int] = []
        self._keyframes: list[int] = []  # decode-order positions of keyframe packets
        self.complete = False
        """Every packet has been read (the frame times are the whole video's)."""
        self.geometry: Geometry | None = None
        self._graph: av.filter.Graph | None = None
        self._graph_key: tuple[int, int, str] | None = None  # the frame size and format it was built for
        self._skipping = self.codec in SKIPPING_DECODERS
        self.frames_decoded = 0
        """Frames the decoder gave out (skipped frames give none): for tests and benchmarks."""

    @property
    def packets_read(self) -> int:
        return len(self._packets)

    @property
    def cut(self) -> bool:
        """Reading ended at a packet cut short, or at a failure to demux, rather than at the file's end."""
        return self._demuxer.cut or self._demux_failed

    # -- the packets and their times -----------------------------------------------------

    def read_all(self) -> None:
        while self._read_packet():
            pass

    def read_first_clip(self) -> None:
        """Read packets until the first clip's frames (and whether the video holds them) are settled."""
        settled = _first_clip_settled(self._config)
        while not self.complete and not settled(self.frame_times()[0]):
            self._read_packet()
        for _ in range(REORDER_MARGIN):
            self._read_packet()

    def frame_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (seconds) of every frame read so far, in presentation order."""
        pts = np.asarray(self._pts, dtype=np.int64)
        order = np.argsort(pts, kind="stable")
        starts = (pts[order] - self._start) * self._time_base
        ends = (pts[order] + np.asarray(self._durations, dtype=np.int64)[order] - self._start) * self._time_base
        return starts, ends

    def header_timing(self) -> Timing:
        """The container header's frame count and rate: for a video not read to its end."""
        return header_timing(self._container, self._stream, len(self._pts))

    def _read_packet(self) -> bool:
        if self.complete:
            return False
        try:
            packet = next(self._demuxer, None)
        except av.error.FFmpegError as exc:
            if not self._packets:
                raise SampleError(ErrorRecord(STAGE_DECODE, "UnreadableVideo", without_path(describe(exc), self._path))) from None
            packet = None  # damage after some packets: the video ends where reading stops, like a cut file
            self._demux_failed = True
        if packet is None:
            self.complete = True
            return False
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            raise SampleError(ErrorRecord(STAGE_DECODE, "BadTimestamps", "the video's packets carry no timestamps"))
        if packet.is_keyframe:
            self._keyframes.append(len(self._packets))
        self._packets.append(packet)
        self._pts.append(pts)
        self._durations.append(packet.duration or 0)
        return True

    # -- decoding ------------------------------------------------------------------------

    def plan(self, clips: list[np.ndarray]) -> None:
        """Set the clips to decode, as frame indices (presentation order) into `frame_times`."""
        self._position: dict[int, int] = {}  # decode-order position of each pts
        for position, pts in enumerate(self._pts):
            self._position.setdefault(pts, position)
        sorted_pts = np.sort(np.asarray(self._pts, dtype=np.int64))
        self._clips = []
        for indices in clips:
            wanted = sorted_pts[np.asarray(indices, dtype=np.int64)].tolist()
            positions = [self._position[p] for p in set(wanted)]
            first, last = min(positions), max(positions)
            self._clips.append((wanted, first, last, self._keyframe_before(first, min(wanted))))
        self._needed = {p for wanted, *_ in self._clips for p in wanted}
        self._ready: dict[int, np.ndarray] = {}
        self._next = 0  # the next packet to send to the decoder
        self._drained = False
        self._skip = "DEFAULT"
        self._last_needed = -1
        self._continue = False

    def decode_span(self, clip_index: int) -> tuple[int, list[int]]:
        """The pts of the keyframe a clip's decoding starts from, and of its frames (for benchmarks)."""
        wanted, _, _, keyframe = self._clips[clip_index]
        return self._pts[keyframe], list(wanted)

    def clip_frames(self, clip_index: int) -> Iterator[np.ndarray]:
        """The clip's frames in order, each (h, w, 3) uint8 RGB in stored orientation."""
        wanted, first, last, keyframe = self._clips[clip_index]
        lowest = min(wanted)
        self._ready = {p: f for p, f in self._ready.items() if p >= lowest}
        missed = any(self._position[p] < self._next and p not in self._ready for p in set(wanted))
        if self._drained or missed or keyframe > self._next:
            self._restart(keyframe)
        self._last_needed = last
        following = self._clips[clip_index + 1] if clip_index + 1 < len(self._clips) else None
        # Decoding on into the next clip saves a restart when it begins before a fresh keyframe.
        self._continue = following is not None and following[3] <= last + 1
        for j, pts in enumerate(wanted):
            while pts not in self._ready:
                self._step()
            yield self._ready[pts]
            if j + 1 == len(wanted) or wanted[j + 1] != pts:
                del self._ready[pts]  # memory stays per piece, even for a whole video

    def _restart(self, keyframe: int) -> None:
        self._stream.codec_context.flush_buffers()
        self._next = keyframe
        self._drained = False

    def _step(self) -> None:
        context = self._stream.codec_context
        more = self._next < len(self._packets) or (not self.complete and self._read_packet())
        if more and (self._next <= self._last_needed or self._continue):
            packet, pts = self._packets[self._next], self._pts[self._next]
            self._next += 1
            skip = "NONREF" if self._skipping and pts not in self._needed else "DEFAULT"
            if skip != self._skip:
                context.skip_frame = self._skip = skip
            frames = context.decode(packet)
        elif not self._drained:
            self._drained = True
            frames = context.decode(None)  # every needed packet is in: let out the frames held back
        else:
            missing = sorted(p for p in self._needed if p not in self._ready and self._position[p] < self._next)
            at = f" at {(missing[0] - self._start) * self._time_base:.3f} s" if missing else ""
            raise SampleError(ErrorRecord(STAGE_DECODE, "DecodeFailed", f"the decoder gave no frame{at}"))
        self.frames_decoded += len(frames)
        for frame in frames:
            pts = frame.pts if frame.pts is not None else frame.dts  # the packets' pts, else their dts
            if pts in self._needed and pts not in self._ready:
                self._ready[pts] = self._convert(frame)

    def _keyframe_before(self, position: int, pts: int) -> int:
        """The last keyframe at or before `position` (decode order) that is shown no later than `pts`.

        The second condition steps over an open GOP's keyframe whose leading frames (shown
        before it, decoded after it) refer to the GOP before: a clip starting on one of
        those starts decoding a GOP earlier.
        """
        index = int(np.searchsorted(self._keyframes, position, side="right")) - 1
        while index >= 0 and self._pts[self._keyframes[index]] > pts:
            index -= 1
        return self._keyframes[index] if index >= 0 else 0

    # -- converting ----------------------------------------------------------------------

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if self.geometry is None:
            self.geometry = geometry_of(frame, self._stream)
        key = (frame.width, frame.height, frame.format.name)
        if self._graph_key != key:  # built at the first frame, again if the stream changes size
            self._graph = self._build_graph(frame)
            self._graph_key = key
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()

    def _build_graph(self, frame: av.VideoFrame) -> av.filter.Graph:
        """buffer -> crop to the cover window -> area scale -> rgb24, for frames shaped like `frame`."""
        g = self.geometry
        graph = av.filter.Graph()
        graph.threads = self._config.decode_threads  # its own worker threads otherwise: a few per video, each woken per frame
        nodes = [graph.add("buffer", f"video_size={frame.width}x{frame.height}:pix_fmt={frame.format.name}:time_base=1/1")]
        if self._config.resize_at_decode:
            out_h, out_w = output_size(*g.display_size, self._config)
            x, y, w, h = cover_window(frame.height, frame.width, g.pixel_aspect, g.rotation, out_h, out_w)
            scaled_h, scaled_w = (out_w, out_h) if g.rotation in (90, 270) else (out_h, out_w)
            if (w, h) != (frame.width, frame.height):
                nodes.append(graph.add("crop", f"{w}:{h}:{x}:{y}:exact=1"))
        else:
            # Full frames, resized by torch afterwards; only the pixel aspect is applied here.
            display_h, display_w = g.display_size
            scaled_h, scaled_w = (display_w, display_h) if g.rotation in (90, 270) else (display_h, display_w)
        nodes.append(graph.add("scale", f"{scaled_w}:{scaled_h}:flags={SCALE_FLAGS}"))
        nodes.append(graph.add("format", "rgb24"))
        nodes.append(graph.add("buffersink"))
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        graph.configure()
        return graph

    def close(self) -> None:
        self._packets.clear()
        self._container.close()


def _first_clip_settled(config: ReadConfig) -> Callable[[np.ndarray], bool]:
    """Whether frame starts read so far (sorted) settle the first clip: which frames, and that it fits.

    With a target fps the clip is settled once a frame starts after its last grid time
    (plus the plan's tolerance); without, once it has its frames.
    """
    if config.fps is None:
        return lambda starts: len(starts) >= config.num_frames
    span = (config.num_frames - 1) / config.fps

    def settled(starts: np.ndarray) -> bool:
        if len(starts) < 2:
            return False
        return starts[-1] > starts[0] + span + TIME_TOLERANCE * typical_interval(starts)

    return settled
