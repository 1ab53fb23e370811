"""The rule that ties ``--client_num`` to a data file's client column: every id an integer in [0, client_num), and
the column naming client client_num - 1 (else the clients past its last would never train).

Standard library only: the command line applies it to local JSON-lines files before anything heavy is imported,
and :class:`~swift_ext.federated.dataset.RowTagger` applies it again to every file ms-swift loads. (Enough episodes
for the clients, when rows are partitioned anew, is checked as the data loads: ``data_requirements``.)
"""

from typing import Callable, List, Optional, Sequence

from ..arguments.errors import UsageError

CLIENT_COLUMN = 'client_id'
LEGACY_CLIENT_COLUMN = 'client_number'  # also accepted, as FedMABench's scripts wrote it
SHOWN = 10  # rows named in an error, then a count


def client_column_in(column_names: Sequence[str]) -> Optional[str]:
    """The column that holds client ids (``client_id`` before FedMABench's ``client_number``), or None."""
    return next((name for name in (CLIENT_COLUMN, LEGACY_CLIENT_COLUMN) if name in column_names), None)


def is_client_id(value: object, client_num: int) -> bool:
    """An integer (an integral float too, as JSON readers may give) in [0, client_num); never a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return float(value).is_integer() and 0 <= value < client_num


def check_client_ids(
    values: Sequence[object], column: str, client_num: int, path: str, where: Callable[[int], str]
) -> List[int]:
    """The ids of ``values`` (row order) as ints; :class:`UsageError` naming the rows (``where(row)``: 'file:line')
    whose id is not in [0, client_num), or when no row names a client at or past the column's highest id + 1 <
    client_num (those clients would never train)."""
    bad = [row for row, value in enumerate(values) if not is_client_id(value, client_num)]
    if bad:
        shown = ', '.join(f'{where(row)} ({column}={values[row]!r})' for row in bad[:SHOWN])
        more = f' and {len(bad) - SHOWN} more' if len(bad) > SHOWN else ''
        if all(is_client_id(values[row], float('inf')) for row in bad):  # valid ids, only too many clients
            fix = f'pass --client_num {max(int(values[row]) for row in bad) + 1}'
        else:
            fix = 'fix those rows'
        raise UsageError(
            f'{column} must be an integer in [0, {client_num}) (--client_num {client_num}): {shown}{more}. To train on '
            f'it, {fix}, or pass --client_column none to ignore the column and deal the rows anew.'
        )
    ids = [int(value) for value in values]
    column_clients = max(ids, default=-1) + 1
    if column_clients < client_num:
        raise UsageError(
            f'{path}: the {column} column names {column_clients} clients (0..{column_clients - 1}) but --client_num '
            f'is {client_num}, so clients {column_clients}..{client_num - 1} would never train. Pass --client_num '
            f'{column_clients}, or --client_column none to deal the rows anew into {client_num} clients.'
        )
    return ids
