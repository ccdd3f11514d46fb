"""The encoder's device work: decoded clips to latents, rows and commit records (``shard_loop.py``), the
batching that keeps a GPU busy, the rows' layout and the quality canary.

Neither Ray nor PyAV is needed here: the job's encoder actor, in-process encoders (tests, tools) and
bench/gpu_check.py (on a GPU machine with PyTorch alone) all run this code.
"""
