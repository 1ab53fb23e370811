"""Round checkpoints: complete-or-absent, RNG restored, no pickle; client control variates versioned per round."""

import os
import random

import numpy as np
import pytest
import torch

from swift_ext.federated.checkpoint import CheckpointStore
from swift_ext.federated.client_controls import ControlStore


def state(value):
    return {'a.lora_A.weight': torch.full((2, 3), float(value)), 'a.lora_B.weight': torch.full((3, 2), float(value))}


def test_save_and_load_latest_with_strategy_state_and_rng(tmp_path):
    store = CheckpointStore(str(tmp_path))
    assert store.load_latest() is None
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    store.save(1, state(1), {'m.x': torch.ones(2, dtype=torch.float64)}, {'fed_alg': 'fedadam'})
    expected = (torch.rand(2), random.random(), np.random.rand())
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    checkpoint = store.load_latest()
    assert (torch.rand(2).tolist(), random.random(), np.random.rand()) == (expected[0].tolist(), *expected[1:])
    assert checkpoint.round_number == 1 and checkpoint.meta == {'fed_alg': 'fedadam', 'round': 1}
    assert torch.equal(checkpoint.global_state['a.lora_A.weight'], state(1)['a.lora_A.weight'])
    assert checkpoint.strategy_state['m.x'].dtype == torch.float64
    names = {name for _, _, files in os.walk(tmp_path) for name in files}
    assert not any(name.endswith(('.bin', '.pt', '.pkl')) for name in names)


def test_a_half_written_round_is_ignored_and_the_previous_round_dropped_only_after(tmp_path):
    store = CheckpointStore(str(tmp_path))
    store.save(1, state(1), {}, {})
    os.makedirs(os.path.join(store.root, 'round_2.tmp'))  # a run killed while writing round 2
    assert store.load_latest().round_number == 1
    store.save(2, state(2), {}, {})
    assert sorted(os.listdir(store.root)) == ['latest', 'round_2']
    assert torch.equal(store.load_latest().global_state['a.lora_B.weight'], state(2)['a.lora_B.weight'])


def test_client_controls_keep_only_the_version_the_server_counts(tmp_path):
    store = ControlStore(str(tmp_path))
    zeros = store.load(0, None, like=state(5))
    assert all(torch.equal(t, torch.zeros_like(t)) for t in zeros.values())
    store.save(0, 1, state(10))
    store.save(0, 2, state(20))  # round 2's update was excluded: the server still counts round 1
    assert torch.equal(store.load(0, 1, like=state(0))['a.lora_A.weight'], state(10)['a.lora_A.weight'])
    assert os.listdir(tmp_path / 'client_0') == ['round_1.safetensors']
    store.save(0, 3, state(30))
    assert torch.equal(store.load(0, 3, like=state(0))['a.lora_B.weight'], state(30)['a.lora_B.weight'])
    assert os.listdir(tmp_path / 'client_0') == ['round_3.safetensors']
    with pytest.raises(FileNotFoundError, match=r'client 1 from round 4.*client_1/round_4.safetensors is missing'):
        store.load(1, 4, like=state(0))
