"""Reading WebDataset video shards into clips for the WF-VAE encoder.

    shards  = list_shards("s3://bucket/shards/{000000..000999}.tar", storage_options).urls  # each checked to exist
    samples = iter_samples(shard, config, storage_options)   # Sample | ErrorRecord
    pieces  = decode_clips(sample, config, piece_frames=16)  # ClipPiece, raises SampleError(ErrorRecord)
    clips   = read_shard(shard, config, storage_options)     # Clip | ErrorRecord, all in one

and, for a pre-flight check, the same answers without the work:

    count, damage = count_samples(shard, config, storage_options)  # from the tar headers alone
    probe   = probe_clips(sample, config)                    # the video's facts and its clips' ClipInfo

Nothing here raises out of a reader: bad shards, samples and videos become
ErrorRecords and reading goes on. An ErrorRecord is the one shape of a problem, from
the reader to the job's error table.

Names are imported when first used: the records (``records.py``) need neither PyAV nor decord, so code
that only handles them (the encode loop, bench/gpu_check.py) imports without the decoders.
"""

from importlib import import_module

_WHERE = {
    "ReadConfig": ".config",
    "decode_clips": ".decode", "probe_clips": ".decode", "sample_clips": ".decode",
    "decoded_samples": ".reader", "read_shard": ".reader",
    "Clip": ".records", "ClipInfo": ".records", "ClipPiece": ".records", "ErrorRecord": ".records",
    "Sample": ".records", "SampleError": ".records",
    "count_samples": ".samples", "iter_samples": ".samples",
    "ShardList": ".shards", "list_shards": ".shards",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)
