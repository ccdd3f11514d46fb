"""The latent-precompute pipeline: reading shards (`pipeline.reading`), then encoding and writing."""
