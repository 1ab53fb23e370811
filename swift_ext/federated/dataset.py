"""Client membership that survives ms-swift's preprocessing.

ms-swift's loader parses, samples, shuffles and may drop rows (bad format, too long) before training, and it has no
hook to carry a row's origin through. :class:`RowTagger` wraps the raw ``datasets.load_dataset`` call inside
``swift.dataset.loader`` for the duration of loading, so every row leaves the file with its source path, its row
index in that file and its client id. Membership is then read from the rows that survived: a dropped row can never
shift another row to a different client.
"""

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from datasets import Dataset as HfDataset

from ..data_check import CheckReport, write_kept_rows
from .data_requirements import require_episodes

SOURCE_COLUMN = '_fed_source'
ROW_COLUMN = '_fed_row'
CLIENT_COLUMN = 'client_id'
LEGACY_CLIENT_COLUMN = 'client_number'  # also accepted, as FedMABench's scripts wrote it


@dataclass(frozen=True)
class FileOrigin:
    """Where the rows of a derived file (the dataset check's copy of the good rows) come from: row i of the copy is
    row ``rows[i]`` of ``path``, which has ``num_rows`` rows."""

    path: str
    rows: List[int]
    num_rows: int


@dataclass(frozen=True)
class DatasetFile:
    """A raw training file as read from disk."""

    path: str
    num_rows: int
    client_source: str  # 'column' or the partitioner name


def file_line_numbers(path: str) -> List[int]:
    """1-based line number of each row of a JSON-lines file (blank lines hold no row); row i -> list[i]."""
    if not path.endswith('.jsonl'):
        return []
    with open(path, 'rb') as f:
        return [number for number, line in enumerate(f, start=1) if line.strip()]


def describe_row(path: str, row: int, line_numbers: Optional[Sequence[int]] = None) -> str:
    """'file:line' for JSON lines (row index otherwise), the form every error and report uses."""
    if line_numbers and row < len(line_numbers):
        return f'{path}:{line_numbers[row]}'
    return f'{path} row {row}'


def read_client_column(dataset: HfDataset, origin: FileOrigin, client_num: int) -> List[int]:
    """Validated client ids from the ``client_id``/``client_number`` column of rows that come from ``origin``;
    errors name every bad line of the user's file."""
    column = CLIENT_COLUMN if CLIENT_COLUMN in dataset.column_names else LEGACY_CLIENT_COLUMN
    values = dataset[column]
    bad = [
        row
        for row, value in enumerate(values)
        if isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != int(value)
        or not 0 <= int(value) < client_num
    ]
    if bad:
        lines = file_line_numbers(origin.path)
        shown = ', '.join(
            f'{describe_row(origin.path, origin.rows[row], lines)} ({column}={values[row]!r})' for row in bad[:10]
        )
        more = f' and {len(bad) - 10} more' if len(bad) > 10 else ''
        raise ValueError(
            f'{column} must be an integer in [0, {client_num}) (--client_num {client_num}): {shown}{more}.'
        )
    return [int(value) for value in values]


Partitioner = Callable[[HfDataset, int, str, int], List[int]]


def partition_rows(
    dataset: HfDataset, path: str, client_num: int, partition: str, seed: int, partitioner: Partitioner
) -> List[int]:
    """The client of every row of ``path`` by ``partitioner``; ``ValueError`` with the numbers when the file has
    fewer episodes than clients."""
    require_episodes(dataset, path, client_num, partition)
    return partitioner(dataset, client_num, partition, seed)


@dataclass
class RowTagger:
    """Tags each raw row with (source, row index, client id) as ms-swift loads a local file.

    Use as ``with tagger.patched(): train, val = args.load_dataset()``.
    """

    client_num: int
    partition: str
    seed: int
    partitioner: Partitioner
    files: List[DatasetFile] = field(default_factory=list)
    origins: Dict[str, FileOrigin] = field(default_factory=dict)  # derived file path -> its source rows

    def tag(self, dataset: HfDataset, path: str) -> HfDataset:
        """Rows of a derived file are tagged with their source file and row, so reports name the user's file."""
        has_column = CLIENT_COLUMN in dataset.column_names or LEGACY_CLIENT_COLUMN in dataset.column_names
        origin = self.origins.get(path, FileOrigin(path, list(range(len(dataset))), len(dataset)))
        if has_column:
            client_ids = read_client_column(dataset, origin, self.client_num)
            dataset = dataset.remove_columns(
                [c for c in (CLIENT_COLUMN, LEGACY_CLIENT_COLUMN) if c in dataset.column_names]
            )
        else:
            client_ids = partition_rows(
                dataset, origin.path, self.client_num, self.partition, self.seed, self.partitioner
            )
        self.files.append(DatasetFile(origin.path, origin.num_rows, 'column' if has_column else self.partition))
        dataset = dataset.add_column(SOURCE_COLUMN, [origin.path] * len(dataset))
        dataset = dataset.add_column(ROW_COLUMN, origin.rows)
        return dataset.add_column(CLIENT_COLUMN, client_ids)

    @contextlib.contextmanager
    def patched(self) -> Iterator['RowTagger']:
        from swift.dataset import loader  # the module whose name `hf_load_dataset` reads raw files

        original = loader.hf_load_dataset

        def load_and_tag(file_type: str, *args, data_files=None, **kwargs):
            dataset = original(file_type, *args, data_files=data_files, **kwargs)
            if not isinstance(dataset, HfDataset) or not isinstance(data_files, str):
                raise ValueError(f'Federated training reads local dataset files without streaming; got {data_files!r}.')
            return self.tag(dataset, os.path.abspath(data_files))

        loader.hf_load_dataset = load_and_tag
        try:
            yield self
        finally:
            loader.hf_load_dataset = original


def original_row_clients(
    path: str, client_num: int, partition: str, seed: int, partitioner: Partitioner
) -> Optional[List[int]]:
    """The client of every row of a JSON-lines file as if ms-swift had loaded it whole, or None when its rows carry
    a client column. A line that is not valid JSON counts as a row without an episode, so dropping it later moves
    no other row: the partition depends only on the row count and the ``episode_id`` values."""
    episodes = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and (CLIENT_COLUMN in row or LEGACY_CLIENT_COLUMN in row):
                return None
            episodes.append(row.get('episode_id') if isinstance(row, dict) else None)
    return partition_rows(HfDataset.from_dict({'episode_id': episodes}), path, client_num, partition, seed, partitioner)


def write_checked_copy(report: CheckReport, checked_path: str, tagger: RowTagger) -> str:
    """Write the good rows of ``report.path`` to ``checked_path`` with every row's client, and register the copy's
    origin with ``tagger``; return ``checked_path``.

    Rows without a client column get the client the partition gives them in the whole file (bad rows included), so
    a row the check drops moves no other row to another client.
    """
    kept = write_kept_rows(report, checked_path)
    clients = original_row_clients(report.path, tagger.client_num, tagger.partition, tagger.seed, tagger.partitioner)
    if clients is not None:
        with open(checked_path, encoding='utf-8') as f:
            rows = [json.loads(line) for line in f if line.strip()]
        with open(checked_path, 'w', encoding='utf-8') as f:
            f.writelines(
                json.dumps({**row, CLIENT_COLUMN: clients[source_row]}, ensure_ascii=False) + '\n'
                for row, source_row in zip(rows, kept)
            )
    tagger.origins[os.path.abspath(checked_path)] = FileOrigin(os.path.abspath(report.path), kept, report.rows_read)
    return checked_path


@dataclass(frozen=True)
class ClientMembership:
    """Positions (in the training dataset) of each client's rows, and each client's row count n_k."""

    positions: Dict[int, np.ndarray]

    @classmethod
    def from_dataset(cls, dataset: HfDataset, client_num: int) -> 'ClientMembership':
        client_ids = np.asarray(dataset[CLIENT_COLUMN], dtype=np.int64)
        return cls({client: np.flatnonzero(client_ids == client) for client in range(client_num)})

    def num_rows(self, client: int) -> int:
        return len(self.positions[client])

    def pooled(self) -> np.ndarray:
        """Every row of every client, for fed_alg='central'."""
        return np.sort(np.concatenate(list(self.positions.values())))


def dropped_rows(files: Sequence[DatasetFile], kept: Sequence[HfDataset]) -> List[Tuple[str, int]]:
    """(path, row) of every raw row that is in none of the ``kept`` datasets, in file order."""
    present = set()
    for dataset in kept:
        if dataset is not None:
            present.update(zip(dataset[SOURCE_COLUMN], dataset[ROW_COLUMN]))
    return [(file.path, row) for file in files for row in range(file.num_rows) if (file.path, row) not in present]
