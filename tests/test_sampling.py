"""Per-round client and row selection: reproducible, and independent of the global RNGs."""

import math
import random

import numpy as np
import torch

from swift_ext.federated.sampling import CENTRAL_CLIENT, client_seed_offset, clients_for_round, rows_for_round


def test_client_sampling_is_seeded_per_round_and_leaves_global_rngs_alone():
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    expected_torch, expected_random, expected_np = torch.rand(1), random.random(), np.random.rand()
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    rounds = [clients_for_round('fedavg', r, 30, 5, seed=42) for r in range(20)]
    assert (torch.rand(1), random.random(), np.random.rand()) == (expected_torch, expected_random, expected_np)
    assert rounds == [clients_for_round('fedavg', r, 30, 5, seed=42) for r in range(20)]
    assert all(len(set(c)) == 5 and c == sorted(c) and all(0 <= x < 30 for x in c) for c in rounds)
    assert len({tuple(c) for c in rounds}) > 10, 'rounds should draw different clients'
    assert rounds != [clients_for_round('fedavg', r, 30, 5, seed=43) for r in range(20)]


def test_special_algorithms():
    assert clients_for_round('fedavg', 0, 3, 5, seed=1) == [0, 1, 2]
    assert clients_for_round('local2', 7, 10, 5, seed=1, local_client=2) == [2]
    assert clients_for_round('central', 7, 10, 5, seed=1) == [CENTRAL_CLIENT]


def test_rows_for_round_takes_ceil_share_without_replacement():
    positions = np.arange(100, 123)  # 23 rows
    rows = rows_for_round(positions, round_idx=4, client=3, round_per_epoch=10, seed=0)
    assert len(rows) == math.ceil(23 / 10) and len(set(rows)) == len(rows) and set(rows) <= set(positions)
    assert np.array_equal(rows, rows_for_round(positions, 4, 3, 10, 0))
    assert not all(np.array_equal(rows, rows_for_round(positions, r, 3, 10, 0)) for r in range(5, 10))
    assert len(rows_for_round(positions, 0, CENTRAL_CLIENT, 1, 0)) == 23


def test_seed_offsets_are_distinct_and_zero_for_the_first_client():
    offsets = {client_seed_offset(r, slot, 5) for r in range(10) for slot in range(5)}
    assert len(offsets) == 50 and client_seed_offset(0, 0, 5) == 0
