"""Reading a block of rows from a committed latents file: only the row groups it spans,
only the columns asked for, a few files kept open so consecutive blocks skip the footer."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from itertools import accumulate

import pyarrow as pa
import pyarrow.parquet as pq

from .plan import Block
from .source import CommittedOutput, open_parquet


class ShardFiles:
    """Per process (never pickled): holds its own filesystem and open files. Close it when done."""

    def __init__(self, output: CommittedOutput, keep_open: int = 4) -> None:
        self.output = output
        self.layout = output.layout()
        self.keep_open = keep_open
        self._open: OrderedDict[int, tuple[pq.ParquetFile, list[int]]] = OrderedDict()

    def read(self, block: Block, columns: list[str]) -> pa.Table:
        file, starts = self._file(block.shard)
        first = bisect.bisect_right(starts, block.start) - 1
        last = bisect.bisect_right(starts, block.stop - 1) - 1
        table = file.read_row_groups(list(range(first, last + 1)), columns=columns, use_threads=False)
        return table.slice(block.start - starts[first], block.rows)

    def _file(self, index: int) -> tuple[pq.ParquetFile, list[int]]:
        if index in self._open:
            self._open.move_to_end(index)
            return self._open[index]
        shard = self.output.shards[index]
        file = open_parquet(self.layout, self.layout.latents(shard.name))
        metadata = file.metadata
        if metadata.num_rows != shard.rows:
            file.close(force=True)
            raise RuntimeError(f"{self.layout.url_of(self.layout.latents(shard.name))} holds {metadata.num_rows} rows "
                               f"but its commit marker says {shard.rows}: the folder changed after it was committed "
                               "(re-encoded or overwritten?); open the dataset again")
        starts = [0, *accumulate(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))]
        self._open[index] = (file, starts)
        while len(self._open) > self.keep_open:
            _, (old, _) = self._open.popitem(last=False)
            old.close(force=True)
        return file, starts

    def close(self) -> None:
        while self._open:
            _, (file, _) = self._open.popitem()
            file.close(force=True)
