"""Who trains in a round and on which rows.

Both choices come from generators seeded with (seed, round[, client]), never from the global RNGs, so they are
reproducible, independent of anything else the run draws, and a resumed run makes the same choices.
"""

import math
from typing import List, Optional

import numpy as np

CENTRAL_CLIENT = -1  # the pseudo-client that owns every row under fed_alg='central'


def clients_for_round(
    fed_alg: str, round_idx: int, client_num: int, client_sample: int, seed: int, local_client: Optional[int] = None
) -> List[int]:
    """Clients that train in round ``round_idx`` (0-based), sorted.

    fedavg: ``client_sample`` distinct clients drawn uniformly (all when client_sample >= client_num);
    local<k>: ``[k]``; central: ``[CENTRAL_CLIENT]``.
    """
    if fed_alg == 'central':
        return [CENTRAL_CLIENT]
    if local_client is not None:
        return [local_client]
    if client_sample >= client_num:
        return list(range(client_num))
    rng = np.random.default_rng([seed, round_idx])
    return sorted(int(client) for client in rng.choice(client_num, size=client_sample, replace=False))


def rows_for_round(positions: np.ndarray, round_idx: int, client: int, round_per_epoch: int, seed: int) -> np.ndarray:
    """FedMABench's per-round subset: ceil(n_k / round_per_epoch) of the client's rows, without replacement."""
    count = math.ceil(len(positions) / round_per_epoch)
    rng = np.random.default_rng([seed, round_idx, client + 1])  # +1 keeps CENTRAL_CLIENT non-negative
    return np.sort(rng.choice(positions, size=count, replace=False))


def client_seed_offset(round_idx: int, client_slot: int, clients_per_round: int) -> int:
    """Added to ``seed`` and ``data_seed`` for the ``client_slot``-th client of a round; 0 for round 0's first client.

    Distinct per (round, slot), so dropout masks and data order differ between clients and rounds, while a one-client
    one-round run uses exactly the seeds plain ``swift sft`` would.
    """
    return round_idx * clients_per_round + client_slot
