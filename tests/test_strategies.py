"""Server strategies against the papers' update rules, recomputed independently with numpy (float64) from the
formulas quoted in each test, over three rounds of synthetic client states."""

import numpy as np
import pytest
import torch

from swift_ext.strategies import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedYogi,
    Scaffold,
    ServerConfig,
    WeightedMean,
    build_strategy,
    non_finite_tensors,
)
from swift_ext.strategies.fedprox import proximal_term
from swift_ext.strategies.scaffold import client_control_update

SHAPES = {'layer.lora_A.weight': (4, 3), 'layer.lora_B.weight': (3, 4)}
WEIGHTS = [5.0, 1.0, 14.0]
ROUNDS = 3


def tensors(rng, scale=1.0):
    return {
        name: torch.tensor(rng.standard_normal(shape) * scale, dtype=torch.float32) for name, shape in SHAPES.items()
    }


def synthetic_rounds(seed=0):
    """x_0 and, per round, three client states near the current global (so pseudo-gradients are small)."""
    rng = np.random.default_rng(seed)
    return tensors(rng), [[tensors(rng, 0.1) for _ in WEIGHTS] for _ in range(ROUNDS)]


def weighted_mean_np(clients, name, global_np):
    """mean_k = sum_k w_k x_k / sum_k w_k, where client k's state is global + its (fixed) offset."""
    return sum(w * (global_np + c[name].double().numpy()) for c, w in zip(clients, WEIGHTS)) / sum(WEIGHTS)


def run_strategy(strategy, x0, rounds, weights=WEIGHTS):
    """Drive a strategy: each round the clients return global + offset_k, averaged with ``weights`` (what the round
    loop passes: n_k, or 1 each with --fed_weighting uniform). Returns the global state per round."""
    states, x = [], x0
    for clients in rounds:
        mean = WeightedMean()
        for offset, w in zip(clients, weights, strict=True):
            mean.add({name: x[name] + offset[name] for name in x}, weight=w)
        x = strategy.aggregate(x, mean)
        states.append(x)
    return states


def assert_matches(states, expected):
    for round_states, round_expected in zip(states, expected, strict=True):
        for name in SHAPES:
            np.testing.assert_allclose(round_states[name].double().numpy(), round_expected[name], rtol=0, atol=1e-6)


def numpy_reference(x0, rounds, update):
    """Iterate x_{t+1} = update(x_t, Delta_t, name) with Delta_t = mean_t - x_t, per tensor."""
    x = {name: t.double().numpy() for name, t in x0.items()}
    expected = []
    for clients in rounds:
        x = {name: update(x[name], weighted_mean_np(clients, name, x[name]) - x[name], name) for name in x}
        expected.append(dict(x))
    return expected


def test_fedavg_is_the_weighted_mean():
    x0, rounds = synthetic_rounds()
    assert_matches(run_strategy(FedAvg(), x0, rounds), numpy_reference(x0, rounds, lambda x, d, n: x + d))


def test_fedavgm_hsu_2019():
    # v_t = beta v_{t-1} + (x_t - mean_t);  x_{t+1} = x_t - eta v_t
    beta, eta, velocity = 0.9, 0.7, {}
    x0, rounds = synthetic_rounds(1)

    def update(x, delta, name):
        velocity[name] = beta * velocity.get(name, 0.0) + (-delta)
        return x - eta * velocity[name]

    assert_matches(
        run_strategy(FedAvgM(server_lr=eta, server_momentum=beta), x0, rounds), numpy_reference(x0, rounds, update)
    )


# Reddi et al. 2021, Algorithm 2: v_t per variant.
SECOND_MOMENTS = [
    (FedAdam, lambda v, d, b2: b2 * v + (1 - b2) * d**2),
    (FedYogi, lambda v, d, b2: v - (1 - b2) * d**2 * np.sign(v - d**2)),
    (FedAdagrad, lambda v, d, b2: v + d**2),
]


@pytest.mark.parametrize('cls, second_moment', SECOND_MOMENTS)
def test_fedopt_reddi_2021_algorithm_2(cls, second_moment):
    # m_t = b1 m + (1-b1) D;  v_t per variant (v_{-1} = tau^2);  x_{t+1} = x_t + eta m_t / (sqrt(v_t) + tau)
    eta, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    m, v = {}, {}
    x0, rounds = synthetic_rounds(2)

    def update(x, delta, name):
        m[name] = b1 * m.get(name, 0.0) + (1 - b1) * delta
        v[name] = second_moment(v.get(name, np.full_like(delta, tau**2)), delta, b2)
        return x + eta * m[name] / (np.sqrt(v[name]) + tau)

    strategy = cls(server_lr=eta, beta1=b1, beta2=b2, tau=tau)
    assert_matches(run_strategy(strategy, x0, rounds), numpy_reference(x0, rounds, update))


@pytest.mark.parametrize('cls, second_moment', SECOND_MOMENTS)
def test_fedopt_uniform_weighting_is_the_papers_plain_client_mean(cls, second_moment):
    # Algorithm 2: Delta_t = (1/|S|) sum_{k in S} (x_k - x_t), a plain mean over the sampled clients whatever their
    # n_k. Client k returns x_t + offset_k, so Delta_t = mean_k(offset_k).
    eta, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    x0, rounds = synthetic_rounds(9)
    m, v = {}, {}
    x = {name: t.double().numpy() for name, t in x0.items()}
    expected = []
    for clients in rounds:
        for name in x:
            delta = np.mean([offset[name].double().numpy() for offset in clients], axis=0)
            m[name] = b1 * m.get(name, 0.0) + (1 - b1) * delta
            v[name] = second_moment(v.get(name, np.full_like(delta, tau**2)), delta, b2)
            x[name] = x[name] + eta * m[name] / (np.sqrt(v[name]) + tau)
        expected.append(dict(x))

    def strategy():
        return cls(server_lr=eta, beta1=b1, beta2=b2, tau=tau)

    assert_matches(run_strategy(strategy(), x0, rounds, weights=[1.0] * len(WEIGHTS)), expected)
    # The default n_k weighting (n_k = WEIGHTS = 5, 1, 14) is not Algorithm 2.
    by_samples = run_strategy(strategy(), x0, rounds)[-1]
    gap = max(np.abs(by_samples[name].double().numpy() - expected[-1][name]).max() for name in SHAPES)
    assert gap > 1e-3


def test_fedopt_state_round_trip_continues_identically():
    x0, rounds = synthetic_rounds(3)
    uninterrupted = run_strategy(FedYogi(server_lr=0.05), x0, rounds)
    first = FedYogi(server_lr=0.05)
    after_one = run_strategy(first, x0, rounds[:1])[-1]
    resumed = FedYogi(server_lr=0.05)
    resumed.load_state_dict({k: v.clone() for k, v in first.state_dict().items()})
    assert_matches(
        run_strategy(resumed, after_one, rounds[1:]),
        [{k: t.double().numpy() for k, t in s.items()} for s in uninterrupted[1:]],
    )


def test_scaffold_server_update_karimireddy_2020():
    # x <- x + eta_g * mean_w(y_i - x);  c <- c + (1/N) sum_i delta_c_i
    client_num, eta_g = 10, 0.8
    x0, rounds = synthetic_rounds(4)
    rng = np.random.default_rng(5)
    strategy = Scaffold(client_num=client_num, server_lr=eta_g)
    x, c_np = x0, {name: np.zeros(shape) for name, shape in SHAPES.items()}
    x_np = {name: t.double().numpy() for name, t in x0.items()}
    for clients in rounds:
        deltas = [tensors(rng, 0.01) for _ in clients]
        mean = WeightedMean()
        for offset, w, delta_c in zip(clients, WEIGHTS, deltas):
            mean.add({name: x[name] + offset[name] for name in x}, weight=w)
            strategy.add_control_delta(delta_c)
        x = strategy.aggregate(x, mean)
        for name in SHAPES:
            x_np[name] = x_np[name] + eta_g * (weighted_mean_np(clients, name, x_np[name]) - x_np[name])
            c_np[name] = c_np[name] + sum(d[name].double().numpy() for d in deltas) / client_num
            np.testing.assert_allclose(x[name].double().numpy(), x_np[name], rtol=0, atol=1e-6)
            np.testing.assert_allclose(strategy.control[name].double().numpy(), c_np[name], rtol=0, atol=1e-6)


def test_scaffold_client_control_option_ii():
    # c_i+ = c_i - c + (x - y_i) / sum_k eta_k
    rng = np.random.default_rng(6)
    c_i, c, x, y = (tensors(rng) for _ in range(4))
    lr_sum = 3 * 1e-3
    new = client_control_update(c_i, c, x, y, lr_sum)
    for name in SHAPES:
        expected = (c_i[name].double() - c[name].double() + (x[name].double() - y[name].double()) / lr_sum).numpy()
        np.testing.assert_allclose(new[name].double().numpy(), expected, rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match='positive learning rate'):
        client_control_update(c_i, c, x, y, 0.0)


def test_fedprox_term_li_2020():
    # mu/2 * sum ||w - x_t||^2 over trainable parameters; its gradient is mu (w - x_t)
    module = torch.nn.Linear(3, 2)
    module.bias.requires_grad_(False)
    anchor = {name: torch.randn_like(p) for name, p in module.named_parameters()}
    mu = 0.3
    term = proximal_term(module.named_parameters(), anchor, mu)
    w, a = module.weight.detach().double().numpy(), anchor['weight'].double().numpy()
    np.testing.assert_allclose(term.item(), mu / 2 * ((w - a) ** 2).sum(), rtol=1e-6)
    term.backward()
    np.testing.assert_allclose(module.weight.grad.numpy(), mu * (w - a), rtol=1e-5, atol=1e-7)
    assert module.bias.grad is None


def test_invariants_reduce_to_fedavg():
    x0, rounds = synthetic_rounds(7)
    fedavg = run_strategy(FedAvg(), x0, rounds)
    reference = [{k: t.double().numpy() for k, t in s.items()} for s in fedavg]
    assert_matches(run_strategy(FedAvgM(server_lr=1.0, server_momentum=0.0), x0, rounds), reference)
    # SCAFFOLD's first round with zero control variates: the server step is FedAvg's on the same client states.
    assert_matches(run_strategy(Scaffold(client_num=3), x0, rounds[:1]), reference[:1])
    assert_matches(run_strategy(FedProx(mu=0.0), x0, rounds), reference)


def test_adaptive_strategies_are_deterministic():
    x0, rounds = synthetic_rounds(8)
    for cls in (FedAdam, FedYogi, FedAdagrad):
        first, second = run_strategy(cls(), x0, rounds), run_strategy(cls(), x0, rounds)
        assert all(torch.equal(a[name], b[name]) for a, b in zip(first, second) for name in SHAPES)


def test_weighted_mean_checks_and_finiteness():
    mean = WeightedMean()
    mean.add({'w': torch.zeros(2)}, weight=1)
    with pytest.raises(ValueError, match=r'w has shape \(3,\), expected \(2,\)'):
        mean.add({'w': torch.zeros(3)}, weight=1)
    with pytest.raises(ValueError, match='missing'):
        mean.add({'v': torch.zeros(2)}, weight=1)
    with pytest.raises(ValueError, match='No update'):
        WeightedMean().mean()
    with pytest.raises(ValueError, match='positive'):
        WeightedMean().add({'w': torch.zeros(1)}, weight=0)
    assert non_finite_tensors(
        {'a': torch.ones(2), 'b': torch.tensor([1.0, float('nan')]), 'c': torch.tensor([float('inf')])}
    ) == ['b', 'c']


def test_registry_builds_each_algorithm_with_its_parameters():
    config = ServerConfig(
        client_num=7, server_lr=0.5, server_momentum=0.2, beta1=0.8, beta2=0.9, tau=1e-2, fedprox_mu=0.4
    )
    assert type(build_strategy('fedavg', config)) is FedAvg and type(build_strategy('local12', config)) is FedAvg
    assert type(build_strategy('avg-epi', config)) is FedAvg and type(build_strategy('central', config)) is FedAvg
    assert build_strategy('fedprox', config).mu == 0.4
    fedavgm = build_strategy('fedavgm', config)
    assert (fedavgm.server_lr, fedavgm.server_momentum) == (0.5, 0.2)
    scaffold = build_strategy('scaffold', config)
    assert (scaffold.client_num, scaffold.server_lr) == (7, 0.5)
    for name, cls in (('fedadam', FedAdam), ('fedyogi', FedYogi), ('fedadagrad', FedAdagrad)):
        strategy = build_strategy(name, config)
        assert type(strategy) is cls and (strategy.server_lr, strategy.beta1, strategy.beta2, strategy.tau) == (
            0.5,
            0.8,
            0.9,
            1e-2,
        )
    assert build_strategy('fedadam', ServerConfig(client_num=1)).server_lr == 1e-2
    with pytest.raises(ValueError, match='unknown'):
        build_strategy('fedsgd', config)
