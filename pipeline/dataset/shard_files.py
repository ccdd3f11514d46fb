"""Reading rows of a committed shard's files (``latents`` or ``text``): only the row groups that hold
them, only the columns asked for, a few files kept open so consecutive reads skip the footer."""

from __future__ import annotations

from collections import OrderedDict
from itertools import accumulate

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .source import CommittedOutput, open_parquet, text_path

KINDS = ("latents", "text")


class ShardFiles:
    """Per process (never pickled): holds its own filesystem and open files. Close it when done."""

    def __init__(self, output: CommittedOutput, keep_open: int = 8) -> None:
        self.output = output
        self.layout = output.layout()
        self.keep_open = keep_open
        self._open: OrderedDict[tuple[str, int], tuple[pq.ParquetFile, np.ndarray, frozenset[str]]] = OrderedDict()

    def columns(self, kind: str, shard: int) -> frozenset[str]:
        """The columns the file has (older outputs lack some)."""
        return self._file(kind, shard)[2]

    def read(self, kind: str, shard: int, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """``rows`` (sorted row numbers of the file), in that order: a slice of what was read when they are
        consecutive (no copy; a chunk per row group), else a gather of them."""
        file, starts, _ = self._file(kind, shard)
        if len(rows) and (rows[0] < 0 or rows[-1] >= starts[-1]):
            raise RuntimeError(f"{self._url(kind, shard)} has {starts[-1]} rows; row {int(rows[-1])} was asked for "
                               "(the folder changed after it was committed? open the dataset again)")
        group_of = np.searchsorted(starts, rows, side="right") - 1
        groups = np.unique(group_of)
        # a row group a call: a read of several at once is one fresh allocation for all of them, which
        # pyarrow's allocator does not reuse (8 groups of 1 MB text embeddings: 2.5x slower than 8 reads)
        table = pa.concat_tables([file.read_row_groups([group], columns=columns, use_threads=False)
                                  for group in groups.tolist()])
        sizes = starts[groups + 1] - starts[groups]
        begins = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # where each group's rows begin in the table
        local = rows - starts[group_of] + begins[np.searchsorted(groups, group_of)]
        if len(local) and local[-1] - local[0] == len(local) - 1:
            return table.slice(int(local[0]), len(local))
        return table.take(pa.array(local))

    def _url(self, kind: str, shard: int) -> str:
        return self.layout.url_of(self._path(kind, shard))

    def _path(self, kind: str, shard: int) -> str:
        name = self.output.shards[shard].name
        return self.layout.latents(name) if kind == "latents" else text_path(self.layout, name)

    def _file(self, kind: str, index: int) -> tuple[pq.ParquetFile, np.ndarray, frozenset[str]]:
        key = (kind, index)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        shard = self.output.shards[index]
        try:
            file = open_parquet(self.layout, self._path(kind, index))
        except FileNotFoundError:
            raise RuntimeError(f"{self._url(kind, index)} is missing, though shard {shard.name} is committed and its "
                               f"rows point into it") from None
        metadata = file.metadata
        if kind == "latents" and metadata.num_rows != shard.rows:
            file.close(force=True)
            raise RuntimeError(f"{self._url(kind, index)} holds {metadata.num_rows} rows "
                               f"but its commit marker says {shard.rows}: the folder changed after it was committed "
                               "(re-encoded or overwritten?); open the dataset again")
        starts = np.fromiter(accumulate((metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)),
                                        initial=0), dtype=np.int64)
        self._open[key] = (file, starts, frozenset(file.schema_arrow.names))
        while len(self._open) > self.keep_open:
            _, (old, _, _) = self._open.popitem(last=False)
            old.close(force=True)
        return self._open[key]

    def close(self) -> None:
        while self._open:
            _, (file, _, _) = self._open.popitem()
            file.close(force=True)
