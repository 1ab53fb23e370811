"""FedAvg and the aggregation helpers, against numbers computed independently with numpy."""

import numpy as np
import pytest
import torch

from swift_ext.strategies import FedAvg, WeightedMean, strategy_for


def synthetic_states(rng, shapes, count):
    return [
        {name: torch.tensor(rng.standard_normal(shape), dtype=torch.float32) for name, shape in shapes.items()}
        for _ in range(count)
    ]


def test_fedavg_is_the_sample_weighted_mean_over_rounds():
    rng = np.random.default_rng(0)
    shapes = {'a.lora_A.weight': (4, 3), 'a.lora_B.weight': (3, 4)}
    global_state = synthetic_states(rng, shapes, 1)[0]
    for _round in range(3):
        clients = synthetic_states(rng, shapes, 3)
        samples = [5, 1, 14]
        mean = WeightedMean()
        for state, n in zip(clients, samples):
            mean.add(state, weight=n)
        global_state = FedAvg().aggregate(global_state, mean)
        for name in shapes:
            expected = sum(n * c[name].numpy().astype(np.float64) for c, n in zip(clients, samples)) / sum(samples)
            np.testing.assert_allclose(global_state[name].numpy(), expected, rtol=0, atol=1e-6)


def test_single_client_round_returns_its_state():
    state = {'w': torch.tensor([1.5, -2.0])}
    mean = WeightedMean()
    mean.add(state, weight=7)
    assert torch.equal(FedAvg().aggregate({'w': torch.zeros(2)}, mean), state)


@pytest.mark.parametrize(
    'bad, message',
    [
        ({'w': torch.zeros(3)}, r'w has shape \(3,\), expected \(2,\)'),
        ({'v': torch.zeros(2)}, 'missing'),
    ],
)
def test_mismatched_updates_are_named(bad, message):
    mean = WeightedMean()
    mean.add({'w': torch.zeros(2)}, weight=1)
    with pytest.raises(ValueError, match=message):
        mean.add(bad, weight=1)


def test_empty_mean_and_bad_weight_raise():
    with pytest.raises(ValueError, match='No update'):
        WeightedMean().mean()
    with pytest.raises(ValueError, match='positive'):
        WeightedMean().add({'w': torch.zeros(1)}, weight=0)


def test_registry():
    assert all(isinstance(strategy_for(name), FedAvg) for name in ('fedavg', 'local', 'local7', 'central'))
