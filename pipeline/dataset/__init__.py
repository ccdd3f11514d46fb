"""Training-side reading of a job's output: ``LatentDataset``.

    from pipeline.dataset import LatentDataset
    data = LatentDataset("s3://bucket/latents", storage_options, dtype="bfloat16", normalize="model",
                         shuffle=True, seed=0, batch_size=32)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=8)
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for batch in loader:   # batch["latent"]: (32, C, t, h, w), one shape per batch
            ...

Only committed shards are read. Latents come raw (as stored) unless ``normalize`` says
otherwise; see ``LatentDataset`` for every option.
"""

from .batching import collate
from .latent_dataset import ROW_FIELDS, LatentDataset
from .samples import TEXT_FIELDS
from .source import OutputNotReadable
from .transform import NORMALIZATIONS

__all__ = ["NORMALIZATIONS", "ROW_FIELDS", "TEXT_FIELDS", "LatentDataset", "OutputNotReadable", "collate"]
