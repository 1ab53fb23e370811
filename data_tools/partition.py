"""Client partitions via flwr-datasets (placeholder-free minimal IID version; extended by the data pipeline work)."""

from typing import List

from datasets import Dataset
from flwr_datasets.partitioner import IidPartitioner


def assign_client_ids(dataset: Dataset, num_clients: int, method: str = 'iid', seed: int = 42, **options) -> List[int]:
    """Client id of every row, in row order. 'iid': shuffle with ``seed``, then flwr-datasets' IidPartitioner."""
    if method != 'iid':
        raise ValueError(f'Unknown partition method {method!r}.')
    indexed = Dataset.from_dict({'row': list(range(len(dataset)))}).shuffle(seed=seed)
    partitioner = IidPartitioner(num_partitions=num_clients)
    partitioner.dataset = indexed
    client_ids = [0] * len(dataset)
    for client in range(num_clients):
        for row in partitioner.load_partition(client)['row']:
            client_ids[row] = client
    return client_ids
