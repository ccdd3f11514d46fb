"""Which captions share a forward pass: sorted by token count, so a batch pads little.

Every caption in a batch is padded to the batch's longest; sorting longest first and cutting the
sorted list into runs keeps the captions of one batch close in length. A batch holds at most
``batch_size`` captions and at most ``batch_tokens`` padded tokens (captions x the longest one's
tokens), so a batch of long captions is smaller than one of short captions and the memory of a
forward pass stays bounded; a caption longer than ``batch_tokens`` goes alone.
"""

from __future__ import annotations


def plan_batches(lengths: list[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Indices into ``lengths``, grouped into batches, longest captions first; ties keep input order."""
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        # sorted longest first: a batch's first caption is its longest, so its padded size is
        # (captions + 1) x that length once this one joins
        if batch is None or len(batch) >= batch_size or (len(batch) + 1) * lengths[batch[0]] > batch_tokens:
            batches.append([index])
        else:
            batch.append(index)
    return batches


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    """Tokens a plan computes, padding included (for measuring how much padding it wastes)."""
    return sum(len(batch) * max(lengths[index] for index in batch) for batch in batches)
