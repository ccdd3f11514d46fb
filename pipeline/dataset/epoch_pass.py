"""One reader's pass over its share of an epoch, which knows at every sample how to resume it.

The pass walks its positions of the epoch's order window by window, reading only the rows it
still has to deliver. It counts what it has taken before handing a sample (or a batch) out, so a
``state()`` taken between two items says exactly where the next one starts. A pass made from a
saved state starts at that position and first reads again the rows its buckets held (read but not
delivered), into the same buckets: nothing delivered is read again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from .batching import Bucketer
from .plan import EpochOrder, Interval, intervals_of
from .resume_state import Buckets, Reader, ReaderState
from .samples import Item, SampleReader
from .shard_files import ShardFiles
from .source import CommittedOutput


class EpochPass:
    def __init__(self, output: CommittedOutput, order: EpochOrder, samples: SampleReader, start: ReaderState,
                 reader: Reader, bucketer: Bucketer | None) -> None:
        self.output, self.order, self.samples, self.start = output, order, samples, start
        self.todo = start.share(reader)
        self.taken = start.taken
        self.bucketer = bucketer

    def state(self) -> ReaderState:
        buckets = None if self.bucketer is None else Buckets(self.bucketer.batch_size, self.bucketer.mix_media,
                                                             self.bucketer.pending())
        return replace(self.start, taken=self.taken, buckets=buckets)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        files = ShardFiles(self.output)
        try:
            if self.bucketer is not None:
                self._refill(files)
            for item in self._items(files, self.todo):
                self.taken += 1
                if self.bucketer is None:
                    yield item.sample
                else:
                    batch = self.bucketer.add(self.bucketer.key(item.media_type, item.sample), item.position,
                                              item.sample)
                    if batch is not None:
                        yield batch
            if self.bucketer is not None:
                yield from self.bucketer.rest()
        finally:
            files.close()

    def _refill(self, files: ShardFiles) -> None:
        """The buckets as they were when the state was saved: made in the same order, holding the same rows."""
        saved = self.start.buckets.pending if self.start.buckets is not None else []
        wanted = [position for _, positions in saved for position in positions]
        items = {item.position: item for item in self._items(files, intervals_of(wanted))}
        for key, positions in saved:
            self.bucketer.make(key)
            for position in positions:
                self.bucketer.add(key, position, items[position].sample)

    def _items(self, files: ShardFiles, intervals: list[Interval]) -> Iterator[Item]:
        """The samples at ``intervals`` of the epoch's order, in order; a window's rows read together."""
        pieces = list(self.order.pieces(intervals))
        at = 0
        while at < len(pieces):
            window = pieces[at][0]
            local = []
            while at < len(pieces) and pieces[at][0] == window:
                local.append(np.arange(pieces[at][1], pieces[at][2], dtype=np.int64))
                at += 1
            local = np.concatenate(local)
            rows = self.order.window_order(window)[local]
            positions = int(self.order.starts[window]) + local
            yield from self.samples.window(files, self.order.windows[window], rows, positions, self.order.epoch)
