"""Batches: longest captions first, at most batch_size captions and batch_tokens padded tokens each."""

from __future__ import annotations

import random

from pipeline.text.batching import padded_tokens, plan_batches


def test_every_caption_once_within_both_limits_longest_first():
    lengths = [random.Random(seed).randint(1, 200) for seed in range(300)]
    batches = plan_batches(lengths, batch_size=32, batch_tokens=2048)
    assert sorted(index for batch in batches for index in batch) == list(range(300))
    for batch in batches:
        assert len(batch) <= 32 and len(batch) * max(lengths[index] for index in batch) <= 2048
        assert lengths[batch[0]] == max(lengths[index] for index in batch)
    flat = [lengths[index] for batch in batches for index in batch]
    assert flat == sorted(lengths, reverse=True)


def test_sorting_wastes_little_padding():
    lengths = [random.Random(seed).choice([8, 30, 120, 400]) for seed in range(256)]
    sorted_plan = padded_tokens(lengths, plan_batches(lengths, 32, 10**9))
    in_input_order = padded_tokens(lengths, [list(range(start, start + 32)) for start in range(0, 256, 32)])
    assert sum(lengths) <= sorted_plan < in_input_order / 2


def test_a_caption_longer_than_the_token_budget_goes_alone_and_ties_keep_input_order():
    assert plan_batches([5, 100, 5, 5], batch_size=8, batch_tokens=50) == [[1], [0, 2, 3]]
    assert plan_batches([3, 3, 3], batch_size=2, batch_tokens=100) == [[0, 1], [2]]
    assert plan_batches([], 4, 100) == []
