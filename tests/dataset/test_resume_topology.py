"""Resuming with another number of ranks or DataLoader workers: every reader's state of one checkpoint,
combined, gives the new readers the epoch's rows that no reader had delivered, in the epoch's order,
split anew into contiguous shares: each row once."""

from __future__ import annotations

import itertools

import pytest

from pipeline.dataset import LatentDataset
from tests.dataset.loading import flat, stateful_loader, take
from tests.support.encoded_outputs import published_output
from tests.support.outputs import ids, read_rows


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """4 shards x (6 videos of 2 clips + 3 images) = 60 rows."""
    return published_output(tmp_path_factory.mktemp("topology") / "out", shards=4, rows=9, uncommitted=(),
                            clips=2, media_types=("video", "video", "image"))


def _dataset(output, rank=0, world_size=1, **options):
    return LatentDataset(str(output.out), shuffle=True, seed=7, block_rows=4, shuffle_blocks=2, rank=rank,
                         world_size=world_size, fields=["key", "clip"], **options)


def _epoch_order(output):
    """What a single reader delivers is the epoch's order itself."""
    return flat(list(_dataset(output)))


def _run(output, world_size, workers, stops, state=None, **options):
    """Each rank's loader, stopped after stops[rank] items (None: to the end): what each delivered, and its state."""
    delivered, states = [], []
    for rank, stop in zip(range(world_size), stops):
        dataset = _dataset(output, rank, world_size, **options)
        if state is not None:
            dataset.load_state_dict(state)
        loader = stateful_loader(dataset, workers)
        items, saved = (list(loader), loader.state_dict()) if stop is None else take(loader, stop)
        delivered.append(flat(items))
        states.append(saved)
    return delivered, states


def _split(rows, parts):
    return [rows[len(rows) * part // parts:len(rows) * (part + 1) // parts] for part in range(parts)]


def test_fewer_or_more_readers_take_the_rest_of_the_same_order(output):
    order = _epoch_order(output)
    assert sorted(order) == sorted(ids(read_rows(output.out, shards=output.committed))) and len(order) == 60
    delivered, states = _run(output, world_size=2, workers=2, stops=(5, 8))
    seen = {row for rank in delivered for row in rank}
    assert len(seen) == 13
    combined = LatentDataset.combine_states(states)  # the loaders' state_dicts, as checkpointed
    rest = [row for row in order if row not in seen]

    # 3 ranks of one worker: rank r takes the r-th third of what is left, in the epoch's order
    after, _ = _run(output, world_size=3, workers=1, stops=(None,) * 3, state=combined)
    assert after == _split(rest, 3)

    # one rank of two workers: the workers' halves, as the loader alternates between them
    after, _ = _run(output, world_size=1, workers=2, stops=(None,), state=combined)
    halves = _split(rest, 2)
    assert after[0] == [row for pair in itertools.zip_longest(*halves) for row in pair if row is not None]


def test_a_loader_without_workers_resumed_by_two_ranks(output):
    order = _epoch_order(output)
    delivered, states = _run(output, world_size=1, workers=0, stops=(7,))
    assert delivered[0] == order[:7]
    after, _ = _run(output, world_size=2, workers=1, stops=(None, None), state=LatentDataset.combine_states(states))
    assert after == _split(order[7:], 2)


def test_rows_held_in_buckets_go_back_to_the_plan_and_a_change_can_follow_a_change(output):
    order = _epoch_order(output)
    first, states = _run(output, world_size=2, workers=2, stops=(3, 2), batch_size=3)
    seen = [row for rank in first for row in rank]
    combined = LatentDataset.combine_states(states)
    # without batches and alone, the reader delivers exactly what had not been delivered, bucketed rows included
    alone, _ = _run(output, world_size=1, workers=1, stops=(None,), state=combined)
    assert alone[0] == [row for row in order if row not in set(seen)]

    second, states = _run(output, world_size=3, workers=1, stops=(2, 0, 1), state=combined, batch_size=2)
    third, _ = _run(output, world_size=1, workers=2, stops=(None,), state=LatentDataset.combine_states(states),
                    batch_size=4, drop_last=False)
    everything = seen + [row for rank in second + third for row in rank]
    assert sorted(everything) == sorted(order) and len(everything) == 60


def test_a_readers_own_state_resumes_that_reader_only(output):
    _, states = _run(output, world_size=2, workers=2, stops=(3, 3))
    worker_state = states[0]["_snapshot"]["_worker_snapshots"]["worker_1"]["dataset_state"]
    dataset = _dataset(output, rank=0, world_size=3)
    dataset.load_state_dict(worker_state)
    with pytest.raises(ValueError, match=r"rank 0 of 2, DataLoader worker 1 of 2, but it is being resumed by rank 0 "
                                         r"of 3, DataLoader worker 0 of 1.*LatentDataset.combine_states"):
        next(iter(dataset))


def test_combining_needs_every_readers_state_of_one_checkpoint(output):
    _, states = _run(output, world_size=2, workers=2, stops=(3, 3))
    with pytest.raises(ValueError, match=r"the states of 2 of 4 readers are missing \(slots \[2, 3\]"):
        LatentDataset.combine_states(states[:1])
    with pytest.raises(ValueError, match="two states of rank 0 of 2, DataLoader worker 0 of 2"):
        LatentDataset.combine_states([states[0], states[0], states[1]])
    dataset = _dataset(output)
    dataset.set_epoch(1)
    other_epoch = dataset.state_dict()
    with pytest.raises(ValueError, match="the states disagree on their epoch"):
        LatentDataset.combine_states([*states, other_epoch])


@pytest.mark.parametrize("change,message", [
    ({"seed": 8}, r"ordered with other settings \({'seed': \(7, 8\)}"),
    ({"block_rows": 8}, r"ordered with other settings \({'block_rows': \(4, 8\)}"),
])
def test_a_state_needs_the_order_it_was_saved_in(output, change, message):
    state = _dataset(output).state_dict()
    options = {"shuffle": True, "seed": 7, "block_rows": 4, "shuffle_blocks": 2, **change}
    with pytest.raises(ValueError, match=message):
        LatentDataset(str(output.out), **options).load_state_dict(state)


@pytest.mark.parametrize("state,message", [
    ({"epoch": 1}, "not a LatentDataset state"),
    ({"format": "LatentDataset/1", "epoch": 0}, "a LatentDataset state with a missing or malformed entry"),
])
def test_what_is_not_a_state_is_refused(output, state, message):
    with pytest.raises(ValueError, match=message):
        _dataset(output).load_state_dict(state)


def test_a_state_of_an_epoch_is_refused_after_set_epoch_chose_another(output):
    dataset = _dataset(output)
    iterator = iter(dataset)
    next(iterator)
    state = dataset.state_dict()
    resumed = _dataset(output)
    resumed.set_epoch(1)
    with pytest.raises(ValueError, match=r"this state resumes epoch 0, but set_epoch\(1\) was called"):
        resumed.load_state_dict(state)
