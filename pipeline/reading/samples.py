"""From a shard's tar members to samples: media bytes (a video or an image), caption and metadata.

Grouping follows webdataset (`group_by_keys`, `base_plus_ext`): a sample is the
run of consecutive files that share a key. When a shard is damaged, every sample
read whole before the damage is still yielded; the sample the damage cut into is
dropped and named in the shard's error record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from .config import ReadConfig
from .records import MEDIA_IMAGE, MEDIA_VIDEO, STAGE_SAMPLE, STAGE_SHARD, ErrorRecord, Sample, SampleError, describe
from .shards import key_of, open_shard, tar_members


def iter_samples(
    shard_url: str, config: ReadConfig, storage_options: dict | None = None
) -> Iterator[Sample | ErrorRecord]:
    """Stream the samples of one shard. Never raises: problems come out as ErrorRecords.

    A damaged or unreadable shard ends with one record of stage "shard" whose
    `samples_read` counts the samples read before the damage.
    """
    return _samples(shard_url, config, storage_options, _GroupingState(), read_data=True)


def count_samples(shard_url: str, config: ReadConfig, storage_options: dict | None = None) -> tuple[int, ErrorRecord | None]:
    """How many samples `iter_samples` would give (read whole before any damage), and the shard's
    error record if it is damaged or unreadable: from the tar headers alone (the members' data are
    skipped by seeking; on object stores, ranged reads). For the dry run."""
    state = _GroupingState()
    problem = None
    for item in _samples(shard_url, config, storage_options, state, read_data=False):
        if isinstance(item, ErrorRecord) and item.stage == STAGE_SHARD:
            problem = item
    return state.samples_read, problem


def _samples(shard_url: str, config: ReadConfig, storage_options: dict | None, state: _GroupingState,
             read_data: bool) -> Iterator[Sample | ErrorRecord]:
    # imported here, by the process that reads shards: importing webdataset imports torch (~1 s), which
    # the driver and the decode workers otherwise do without
    from webdataset.tariterators import group_by_keys

    try:
        with open_shard(shard_url, storage_options, config.shard_block_size) as stream:
            members = _member_dicts(tar_members(stream, read_data), shard_url, state)
            for raw in group_by_keys(members, handler=state.note_grouping_problem):
                state.samples_read += 1
                yield from state.take_problems(shard_url)
                yield make_sample(raw, shard_url, config)
            yield from state.take_problems(shard_url)
        damage = state.damage
    except SampleError as exc:  # the tar is damaged
        damage = exc.record
    except Exception as exc:  # noqa: BLE001 - opening failed or the stream broke: report, go on
        yield from state.take_problems(shard_url)
        message = f"{describe(exc)}; {state.samples_read} samples read before it"
        yield ErrorRecord(STAGE_SHARD, type(exc).__name__, message, shard=shard_url, key=state.dropped_key,
                          samples_read=state.samples_read)
        return
    if damage is not None:
        yield from state.take_problems(shard_url)
        message = f"{damage.message}; {state.samples_read} samples read before it"
        if state.dropped_key is not None:
            message += f"; sample {state.dropped_key!r} was cut and dropped"
        yield ErrorRecord(STAGE_SHARD, damage.error_type, message, shard=shard_url, key=state.dropped_key,
                          samples_read=state.samples_read)


@dataclass
class _GroupingState:
    samples_read: int = 0
    current_member: str | None = None
    dropped_key: str | None = None
    damage: ErrorRecord | None = None
    """A damage that ended the tar after a complete sample (see `_member_dicts`)."""
    problems: list[tuple[str | None, BaseException]] = field(default_factory=list)

    def note_grouping_problem(self, exc: BaseException) -> bool:
        """webdataset's handler: a duplicate file in a sample is noted and skipped."""
        self.problems.append((self.current_member, exc))
        return True

    def take_problems(self, shard: str) -> Iterator[ErrorRecord]:
        while self.problems:
            member, exc = self.problems.pop(0)
            key = key_of(member) if member else None
            message = str(exc.args[0]) if exc.args else str(exc)
            yield ErrorRecord(STAGE_SAMPLE, "DuplicatePart", f"{message}; the first one is kept", shard=shard, key=key)


def _member_dicts(members: Iterator[tuple[str, bytes]], shard_url: str, state: _GroupingState):
    """Feed members to webdataset's grouping and decide what damage costs.

    If the damaged member starts a new key, the sample before it is complete: end
    normally so group_by_keys yields it. Otherwise the sample in progress may be
    incomplete: re-raise so group_by_keys drops it.
    """
    last_key = None
    try:
        for name, data in members:
            state.current_member = name
            last_key = key_of(name)
            yield {"fname": name, "data": data, "__url__": shard_url}
    except SampleError as damage:
        damaged_key = damage.record.key
        if damaged_key is not None and damaged_key != last_key:
            state.dropped_key = damaged_key
            state.damage = damage.record
            return
        state.dropped_key = last_key
        raise


def make_sample(raw: dict, shard_url: str, config: ReadConfig) -> Sample | ErrorRecord:
    """Pick the media part, the caption and the metadata out of a grouped sample.

    The media part is the video if the sample has one, else the image (see `ReadConfig`).
    """
    key = raw["__key__"]
    parts = {k: v for k, v in raw.items() if not k.startswith("__")}
    media_type, media_part = MEDIA_VIDEO, _media_part(parts, config.video_extensions)
    if media_part is None:
        media_type, media_part = MEDIA_IMAGE, _media_part(parts, config.image_extensions)
    if media_part is None:
        return ErrorRecord(
            STAGE_SAMPLE, "NoMediaPart",
            f"parts {sorted(parts)} hold no video (one of {list(config.video_extensions)}) and no image "
            f"(one of {list(config.image_extensions)})",
            shard=shard_url, key=key,
        )
    meta_bytes = parts.get(config.meta_key)
    meta = _text(meta_bytes) if meta_bytes is not None else None
    return Sample(
        shard=shard_url,
        key=key,
        media=bytes(parts[media_part]),
        media_ext=media_part.rsplit(".", 1)[-1],
        caption=_caption(parts, config.caption_key),
        meta=meta,
        media_type=media_type,
        parts=tuple(sorted(parts)),
    )


def _media_part(parts: dict, extensions: tuple[str, ...]) -> str | None:
    """The part of the first extension the sample has (of several with it, the first by name)."""
    for ext in extensions:
        names = sorted(name for name in parts if name == ext or name.endswith("." + ext))
        if names:
            return names[0]
    return None


def _caption(parts: dict, caption_key: str | None) -> str | None:
    if caption_key is None:
        return None
    part, _, path = caption_key.partition(":")
    data = parts.get(part)
    if data is None:
        return None
    if not path:
        return _text(data).strip()
    try:
        value = json.loads(data)
    except ValueError:
        return None  # unreadable json: the media is still good, it just has no caption
    for name in path.split("."):
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _text(data: bytes) -> str:
    return bytes(data).decode("utf-8", errors="replace")
