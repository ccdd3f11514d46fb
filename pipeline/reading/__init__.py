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
"""

from .config import ReadConfig
from .decode import decode_clips, probe_clips, sample_clips
from .reader import read_shard
from .records import Clip, ClipInfo, ClipPiece, ErrorRecord, Sample, SampleError
from .samples import count_samples, iter_samples
from .shards import ShardList, list_shards

__all__ = [
    "Clip",
    "ClipInfo",
    "ClipPiece",
    "ErrorRecord",
    "ReadConfig",
    "Sample",
    "SampleError",
    "ShardList",
    "count_samples",
    "decode_clips",
    "iter_samples",
    "list_shards",
    "probe_clips",
    "read_shard",
    "sample_clips",
]
