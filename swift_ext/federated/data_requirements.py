"""What a federated run needs from its data, checked at start: each failure says what was found, with the numbers,
and what to do, instead of an exception from deep inside ``datasets`` or flwr-datasets."""

from typing import Dict, Optional

from datasets import Dataset as HfDataset
from swift.utils import get_logger

from ..data_check import CheckReport

logger = get_logger()


def require_kept_rows(report: CheckReport, strategy: str, report_path: Optional[str]) -> None:
    """``ValueError`` when the dataset check leaves no row of ``report.path`` to train on (an empty file included)."""
    if report.rows_kept:
        return
    if not report.rows_read:
        raise ValueError(f'{report.path} has no rows (the file is empty or blank): nothing to train on.')
    listed = f'listed in {report_path}' if strategy == 'discard' and report_path else 'listed above'
    raise ValueError(
        f'Dataset check: {report.summary()}: every row was dropped under --dataset_check_strategy {strategy}, '
        f'nothing is left to train on. Fix the rows ({listed}), or check that --dataset names the right file.'
    )


def count_episodes(dataset: HfDataset) -> int:
    """The units a partitioner deals to clients (``data_tools.partition``): distinct ``episode_id`` values, a row
    without one counting as an episode of its own."""
    if 'episode_id' not in dataset.column_names:
        return len(dataset)
    episode_ids = list(dataset['episode_id'])
    return len({episode for episode in episode_ids if episode is not None}) + episode_ids.count(None)


def require_episodes(dataset: HfDataset, path: str, client_num: int, partition: str) -> None:
    """``ValueError`` when ``path`` has fewer episodes than clients: a partition gives every client at least one whole
    episode."""
    episodes = count_episodes(dataset)
    if episodes < client_num:
        raise ValueError(
            f'{path}: {len(dataset)} rows in {episodes} episodes (a row without `episode_id` is an episode of its '
            f'own), fewer than --client_num {client_num}: the {partition} partition gives every client at least one '
            f'whole episode. Lower --client_num to at most {episodes}, or give every row a `client_id` column '
            '(clients without rows are then skipped when sampled).'
        )


def warn_clients_without_rows(rows_per_client: Dict[int, int]) -> None:
    """Warn once, at start, about clients that have no training rows (they are skipped whenever sampled)."""
    empty = [client for client, rows in rows_per_client.items() if rows == 0]
    if empty:
        logger.warning(
            f'[swift_ext] {len(empty)} of {len(rows_per_client)} clients have no training rows: {empty}. A round '
            'skips them when they are sampled; give them rows (`client_id` column) or lower --client_num.'
        )
