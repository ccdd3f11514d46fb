"""Tests of pipeline.reading: shards, samples, decoding and clips."""
