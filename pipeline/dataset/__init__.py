"""Training-side reading of a job's output: ``LatentDataset``.

    from torchdata.stateful_dataloader import StatefulDataLoader
    from pipeline.dataset import LatentDataset

    data = LatentDataset("s3://bucket/latents", storage_options, dtype="bfloat16", normalize="model",
                         shuffle=True, seed=0, batch_size=32)
    loader = StatefulDataLoader(data, batch_size=None, num_workers=8)
    loader.load_state_dict(checkpoint["loader"])      # when resuming: the exact sample of that epoch
    for epoch in range(checkpoint["epoch"], epochs):
        data.set_epoch(epoch)
        for batch in loader:   # batch["latent"]: (32, C, t, h, w), one shape and media type per batch
            ...                # batch["text_embedding"]: (32, Lmax, D), batch["text_mask"]: (32, Lmax)
            checkpoint = {"loader": loader.state_dict(), "epoch": epoch, ...}

Only committed shards are read. Latents come raw (as stored) unless ``normalize`` says
otherwise; see ``LatentDataset`` for every option, and examples/train_latent_diffusion.py for a
training loop that checkpoints and resumes.
"""

from .batching import collate
from .latent_dataset import ROW_FIELDS, LatentDataset
from .samples import TEXT_FIELDS
from .source import OutputNotReadable
from .transform import NORMALIZATIONS

__all__ = ["NORMALIZATIONS", "ROW_FIELDS", "TEXT_FIELDS", "LatentDataset", "OutputNotReadable", "collate"]
