"""Client-level DP without a model: clipping, the fixed-denominator noisy mean (central and distributed), the noise's
statistics, adaptive clipping, the noise split, the accountant against dp-accounting's own events and Opacus, the
budget, resume state, and argument validation. Expected numbers are recomputed here with numpy/scipy from the formulas
quoted in each test (McMahan et al. 2018; Andrew et al. 2021), or by a second accountant."""

import math

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting.rdp import RdpAccountant
from scipy import stats

from swift_ext.arguments.federated import FederatedArguments
from swift_ext.privacy import FIXED_SIZE, POISSON, ClientLevelAccountant, ClientLevelDp, DpConfig
from swift_ext.strategies import ServerConfig, WeightedMean, build_strategy
from swift_ext.strategies.dp import (
    ClientDp,
    DpMean,
    NoisySum,
    SeededNoise,
    SystemNoise,
    clip_update,
    update_noise_multiplier,
)

SHAPES = {'a.lora_A.weight': (4, 3), 'a.lora_B.weight': (3, 4), 'b.lora_A.weight': (2, 5)}
DELTA = 1e-5


def random_state(rng, scale=1.0, shapes=SHAPES):
    return {
        name: torch.tensor(rng.standard_normal(shape) * scale, dtype=torch.float32) for name, shape in shapes.items()
    }


def flat(state):
    return np.concatenate([t.double().numpy().ravel() for t in state.values()])


def np_clip(delta, clip_norm):
    """McMahan et al.: Delta * min(1, C / ||Delta||), the norm over the concatenation of every tensor."""
    return delta * min(1.0, clip_norm / np.linalg.norm(delta))


def variance_interval(n, confidence=0.999):
    """Two-sided interval for s^2 / sigma^2 with n normal samples: (n - 1) s^2 / sigma^2 ~ chi^2_{n-1}."""
    tail = (1 - confidence) / 2
    return stats.chi2.ppf(tail, n - 1) / (n - 1), stats.chi2.ppf(1 - tail, n - 1) / (n - 1)


# ----------------------------------------------------------------------------------------------------- clipping


def test_clipping_bounds_the_norm_over_all_tensors_together():
    rng = np.random.default_rng(0)
    delta = random_state(rng, scale=3.0)
    clipped, norm = clip_update(delta, clip_norm=1.5)
    assert norm == pytest.approx(np.linalg.norm(flat(delta)), rel=1e-12)
    assert np.linalg.norm(flat(clipped)) == pytest.approx(1.5, rel=1e-12)
    np.testing.assert_allclose(flat(clipped), np_clip(flat(delta), 1.5), rtol=1e-12)
    # one factor for every tensor: each tensor's direction and relative size are kept
    for name in delta:
        ratio = clipped[name].numpy() / delta[name].double().numpy()
        np.testing.assert_allclose(ratio, 1.5 / norm, rtol=1e-6)


def test_clipping_leaves_an_update_within_the_norm_unchanged():
    rng = np.random.default_rng(1)
    delta = random_state(rng, scale=0.01)
    clipped, norm = clip_update(delta, clip_norm=10.0)
    assert norm < 10.0
    assert all(torch.equal(clipped[name], delta[name].double()) for name in delta)


# ------------------------------------------------------------------------------------- the fixed-denominator mean


def client_states(global_state, scales):
    """y_k = x + scale_k * standard normal noise (torch's global RNG, seeded by the test)."""
    return [{name: x + scale * torch.randn_like(x) for name, x in global_state.items()} for scale in scales]


def central_mean(global_state, states, expected, clip_norm, noise_stddev=0.0, seed=0):
    aggregator = DpMean(global_state, expected, clip_norm, noise_stddev, SeededNoise(seed, 1), SeededNoise(seed, 2))
    for state in states:
        aggregator.add(state, weight=1.0)
    return aggregator


def test_noiseless_central_mean_is_the_fixed_denominator_mean_of_clipped_deltas():
    """x + sum_k clip(y_k - x, C) / m with m the sampled clients, also when one of them did not reply."""
    rng = np.random.default_rng(2)
    torch.manual_seed(2)
    x = random_state(rng)
    states = client_states(x, [0.1, 0.5, 1.0])
    expected_clients = 4  # one sampled client did not reply: the denominator stays 4
    mean = central_mean(x, states, expected_clients, clip_norm=1.0).mean()
    deltas = [flat(s) - flat(x) for s in states]
    expected = flat(x) + sum(np_clip(d, 1.0) for d in deltas) / expected_clients
    assert any(np.linalg.norm(d) > 1.0 for d in deltas) and any(np.linalg.norm(d) < 1.0 for d in deltas)
    np.testing.assert_allclose(flat(mean), expected.astype(np.float32), rtol=0, atol=1e-7)


@pytest.mark.parametrize('fed_alg', ['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'])
def test_without_noise_and_clipping_every_strategy_sees_the_uniform_mean(fed_alg):
    """z = 0, C = inf: each strategy's next state from the DP aggregator equals the one from the uniform weighted mean
    (the DP step sits before the strategy, which only calls ``mean()``)."""
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    x = random_state(rng)
    states = client_states(x, [0.5, 0.5, 0.5])
    uniform = WeightedMean()
    for state in states:
        uniform.add(state, weight=1.0)
    dp = central_mean(x, states, 3, clip_norm=math.inf)
    config = ServerConfig(client_num=3)
    expected = build_strategy(fed_alg, config).aggregate(x, uniform)
    got = build_strategy(fed_alg, config).aggregate(x, dp)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6)


def test_dp_aggregators_refuse_non_uniform_weights():
    rng = np.random.default_rng(4)
    x = random_state(rng)
    with pytest.raises(ValueError, match='--fed_weighting uniform'):
        central_mean(x, [], 2, 1.0).add(x, weight=3.0)
    with pytest.raises(ValueError, match='--fed_weighting uniform'):
        NoisySum(x, 2).add(x, weight=0.5)


NOISE_SHAPES = {'big.lora_A.weight': (200, 300), 'big.lora_B.weight': (300, 100)}  # 90,000 coordinates


@pytest.mark.parametrize('secure', [False, True])
def test_central_noise_has_std_zC_over_m(secure):
    """All clients return x, so mean - x is pure noise: N(0, (zC)^2) / m per coordinate. Its sample variance over
    n = 90,000 coordinates must lie in the chi-square 99.9% interval of (zC/m)^2 (about +-1.6%), and its mean within
    3.3 standard errors of 0."""
    z, clip_norm, m = 1.3, 0.7, 4
    x = {name: torch.zeros(shape) for name, shape in NOISE_SHAPES.items()}
    noise = SystemNoise() if secure else SeededNoise(11, 1)
    aggregator = DpMean(x, m, clip_norm, z * clip_norm, noise, noise)
    for _ in range(m):
        aggregator.add(x, weight=1.0)
    sample = flat(aggregator.mean())
    sigma = z * clip_norm / m
    low, high = variance_interval(sample.size)
    assert low < sample.var(ddof=1) / sigma**2 < high
    assert abs(sample.mean()) < 3.3 * sigma / math.sqrt(sample.size)


def test_seeded_noise_is_reproducible_and_distinct_per_seed():
    shape = (1000,)
    assert torch.equal(SeededNoise(1, 2, 3).standard_normal(shape), SeededNoise(1, 2, 3).standard_normal(shape))
    assert not torch.equal(SeededNoise(1, 2, 3).standard_normal(shape), SeededNoise(1, 2, 4).standard_normal(shape))
    assert not torch.equal(SystemNoise().standard_normal(shape), SystemNoise().standard_normal(shape))


@pytest.mark.parametrize('secure', [False, True])
def test_distributed_shares_add_up_to_the_central_noise(secure):
    """m clients each add N(0, (zC)^2 / m) to their clipped delta; the server's sum / m then has std zC / m, as in
    central mode. Identical shares (a seeding bug) would give std zC / sqrt(m) instead, far outside the interval."""
    z, clip_norm, m = 0.9, 2.0, 5
    x = {name: torch.zeros(shape) for name, shape in NOISE_SHAPES.items()}
    share = ClientDp(clip_norm=clip_norm, noise_stddev=z * clip_norm / math.sqrt(m), secure_rng=secure)
    server = NoisySum(x, m)
    for client in range(m):
        noised, bit = share.apply(x, x, seed=5, round_number=2, client=client)
        assert bit is None
        server.add(noised, weight=1.0)
    sample = flat(server.mean())
    sigma = z * clip_norm / m
    low, high = variance_interval(sample.size)
    assert low < sample.var(ddof=1) / sigma**2 < high


def test_distributed_client_clips_its_own_update_and_the_server_does_not_clip_again():
    rng = np.random.default_rng(6)
    torch.manual_seed(6)
    x = random_state(rng)
    states = client_states(x, [0.1, 1.0, 1.0])
    share = ClientDp(clip_norm=0.8, noise_stddev=0.0)
    server = NoisySum(x, 3)
    for client, state in enumerate(states):
        noised, _ = share.apply(x, state, seed=0, round_number=1, client=client)
        assert np.linalg.norm(flat(noised)) <= 0.8 * (1 + 1e-6)
        server.add(noised, weight=1.0)
    expected = flat(x) + sum(np_clip(flat(s) - flat(x), 0.8) for s in states) / 3
    np.testing.assert_allclose(flat(server.mean()), expected, rtol=0, atol=1e-6)


def test_distributed_client_noise_is_seeded_per_round_and_client_not_by_the_global_rng():
    x = {name: torch.zeros(shape) for name, shape in SHAPES.items()}
    share = ClientDp(clip_norm=1.0, noise_stddev=1.0, clip_bit_stddev=1.0)
    torch.manual_seed(0)
    first = share.apply(x, x, seed=3, round_number=1, client=0)
    torch.manual_seed(123)  # the global RNG does not matter
    again = share.apply(x, x, seed=3, round_number=1, client=0)
    assert all(torch.equal(first[0][n], again[0][n]) for n in x) and first[1] == again[1]
    for other in (
        share.apply(x, x, seed=3, round_number=2, client=0),
        share.apply(x, x, seed=3, round_number=1, client=1),
    ):
        assert not torch.equal(flat_tensor(first[0]), flat_tensor(other[0])) and first[1] != other[1]
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    share.apply(x, x, seed=3, round_number=1, client=0)
    assert torch.equal(torch.rand(1), before), 'the client noise consumed the global torch RNG'


def flat_tensor(state):
    return torch.cat([t.flatten() for t in state.values()])


# ----------------------------------------------------------------------------------------------- adaptive clipping


def test_noise_split_gives_the_paper_formula_and_the_same_epsilon_as_one_gaussian():
    """z_Delta = (z^-2 - (2 sigma_b)^-2)^-1/2, and the pair (update sum with noise z_Delta C, bit sum with noise
    sigma_b) is as private as one Gaussian with multiplier z: under replace-one the update sum moves by 2C and the
    shifted bit sum by 1, so dp-accounting's composed event Gaussian(z_Delta / 2) + Gaussian(sigma_b) must give the
    epsilon of Gaussian(z / 2)."""
    z, sigma_b = 1.2, 2.5
    z_delta = update_noise_multiplier(z, sigma_b)
    assert z_delta == pytest.approx((z**-2 - (2 * sigma_b) ** -2) ** -0.5, rel=1e-12)
    composed = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    gaussians = dp_accounting.ComposedDpEvent(
        [dp_accounting.GaussianDpEvent(z_delta / 2), dp_accounting.GaussianDpEvent(sigma_b)]
    )
    composed.compose(dp_accounting.SampledWithoutReplacementDpEvent(50, 5, gaussians), 20)
    single = ClientLevelAccountant(50, 5, DELTA)
    single.charge(z, 20)
    assert composed.get_epsilon(DELTA) == pytest.approx(single.epsilon(), rel=1e-9)
    assert update_noise_multiplier(z, None) == z
    with pytest.raises(ValueError, match='2 sigma_b > z'):
        update_noise_multiplier(3.0, 1.5)


def adaptive_dp(mode='central', clipped_count_stddev=0.0, clip_norm=1.0, **kwargs):
    config = DpConfig(
        mode=mode, clip_norm=clip_norm, delta=DELTA, client_num=20, clients_per_round=5, rounds=10, seed=0,
        noise_multiplier=0.0, adaptive_clip=True, target_quantile=0.3, clip_lr=0.2,
        clipped_count_stddev=clipped_count_stddev, **kwargs,
    )  # fmt: skip
    return ClientLevelDp(config)


def updates_with_norms(x, norms):
    """Client states y_k = x + Delta_k with ||Delta_k|| = the given norms."""
    unit = torch.ones(sum(math.prod(s) for s in SHAPES.values()), dtype=torch.float64)
    unit /= unit.norm()
    states = []
    for norm in norms:
        values, start = {}, 0
        for name, shape in SHAPES.items():
            size = math.prod(shape)
            values[name] = (x[name].double() + norm * unit[start : start + size].reshape(shape)).float()
            start += size
        states.append(values)
    return states


@pytest.mark.parametrize('mode', ['central', 'distributed'])
def test_adaptive_clip_norm_follows_the_geometric_update_on_synthetic_norms(mode):
    """Andrew et al.: b_t = fraction of updates with ||Delta|| <= C_t, C_{t+1} = C_t exp(-eta_C (b_t - gamma)),
    here without noise on the count (sigma_b = 0) so b_t is exact; both modes give the same sequence."""
    rng = np.random.default_rng(7)
    x = random_state(rng)
    norms_per_round = [rng.uniform(0.2, 3.0, size=5) for _ in range(6)]
    dp = adaptive_dp(mode)
    clip_norm, expected = 1.0, []
    for norms in norms_per_round:
        fraction = float(np.mean(norms <= clip_norm))
        clip_norm = clip_norm * math.exp(-0.2 * (fraction - 0.3))
        expected.append(clip_norm)
    got, used = [], []
    for round_number, norms in enumerate(norms_per_round, start=1):
        aggregator = dp.aggregator(round_number, x)
        for client, state in enumerate(updates_with_norms(x, norms)):
            share = dp.client_dp()
            if share is None:
                aggregator.add(state, weight=1.0)
            else:
                noised, bit = share.apply(x, state, seed=0, round_number=round_number, client=client)
                aggregator.add(noised, weight=1.0)
                aggregator.add_clip_bit(bit)
        used.append(dp.finish_round(round_number, aggregator)['clip_norm'])
        got.append(dp.clip_norm)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(used, [1.0, *expected[:-1]], rtol=1e-12)
    assert len(set(np.round(got, 9))) > 3, 'the synthetic norms should move C in both directions'


def test_noisy_clip_count_has_std_sigma_b_over_m_and_is_clamped():
    """b~ = clamp((sum (b_k - 1/2) + N(0, sigma_b^2)) / m + 1/2, 0, 1). Over 4,000 seeded rounds of m = 5 clients of
    which 3 are unclipped (b = 0.6) and sigma_b small enough that the clamp never acts, b~ - 0.6 has std sigma_b / m
    (chi-square 99.9% interval); with a large sigma_b every estimate stays in [0, 1], both ends reached."""
    m, sigma_b, rounds = 5, 0.4, 4000
    x = {'w': torch.zeros(3)}
    norms = [0.0, 2.0, 0.0, 2.0, 0.0]  # C = 1: three unclipped clients

    def estimate(round_number, stddev):
        aggregator = DpMean(x, m, 1.0, 0.0, SeededNoise(0, round_number, 0), SeededNoise(0, round_number, 1), stddev)
        for norm in norms:
            aggregator.add({'w': torch.tensor([norm, 0.0, 0.0])}, weight=1.0)
        return aggregator.unclipped_fraction()

    sample = np.array([estimate(r, sigma_b) for r in range(rounds)]) - 0.6
    low, high = variance_interval(rounds)
    assert low < sample.var(ddof=1) / (sigma_b / m) ** 2 < high
    assert abs(sample.mean()) < 3.3 * (sigma_b / m) / math.sqrt(rounds)
    wide = [estimate(r, 50.0) for r in range(200)]
    assert min(wide) == 0.0 and max(wide) == 1.0 and all(0.0 <= value <= 1.0 for value in wide)


# -------------------------------------------------------------------------------------------------- accounting


def test_fixed_size_epsilon_is_dp_accountings_sampled_without_replacement_under_replace_one():
    """Our per-round composition equals dp-accounting composing SampledWithoutReplacement(N, m, Gaussian(z/2))
    R times under REPLACE_ONE (the z/2: replacing a client moves the clipped sum by 2C)."""
    accountant = ClientLevelAccountant(100, 10, DELTA, FIXED_SIZE)
    for _ in range(5):
        accountant.charge(1.0)
    reference = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    reference.compose(
        dp_accounting.SampledWithoutReplacementDpEvent(100, 10, dp_accounting.GaussianDpEvent(0.5)), count=5
    )
    assert accountant.epsilon() == pytest.approx(reference.get_epsilon(DELTA), rel=1e-9)
    poisson = ClientLevelAccountant(100, 10, DELTA, POISSON)
    poisson.charge(1.0, 5)
    assert poisson.epsilon() < accountant.epsilon(), 'Poisson / add-remove should give the smaller epsilon'


def test_published_dpsgd_setting_matches_opacus_within_one_percent():
    """TF Privacy's MNIST DP-SGD tutorial (tutorials/README.md): q = 256/60000, noise multiplier 1.12, 60 epochs =
    60 * 60000 // 256 = 14062 steps, delta = 1e-5, published epsilon 2.92 (Poisson sampling, add/remove). Opacus'
    RDP (a second implementation) converted with the classic bound eps = min_a RDP(a) + log(1/delta)/(a - 1) gives
    back the published 2.92; with the tighter conversion both accountants use (Balle et al. 2020), ours must agree
    with Opacus within 1% and lie below the published value."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    q, z, steps = 256 / 60000, 1.12, 60 * 60000 // 256
    orders = np.array(RDPAccountant.DEFAULT_ALPHAS, dtype=float)
    rdp = compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=orders)
    assert np.min(rdp + np.log(1 / DELTA) / (orders - 1)) == pytest.approx(2.92, abs=0.01)
    opacus = RDPAccountant()
    opacus.history = [(z, q, steps)]
    ours = ClientLevelAccountant(60000, 256, DELTA, POISSON)
    ours.charge(z, steps)
    assert ours.epsilon() == pytest.approx(opacus.get_epsilon(DELTA), rel=0.01)
    assert ours.epsilon() < 2.92


def test_fixed_size_with_every_client_matches_opacus_gaussian_within_one_percent():
    """With m = N (no subsampling) the fixed-size round is the plain Gaussian mechanism with multiplier z/2 (replace
    one, sensitivity 2C). Opacus at sample rate 1 is the plain Gaussian too: same epsilon within 1%."""
    from opacus.accountants import RDPAccountant

    z, rounds = 4.0, 30
    ours = ClientLevelAccountant(8, 8, DELTA, FIXED_SIZE)
    ours.charge(z, rounds)
    opacus = RDPAccountant()
    opacus.history = [(z / 2, 1.0, rounds)]
    assert ours.epsilon() == pytest.approx(opacus.get_epsilon(DELTA), rel=0.01)


def test_calibrated_noise_spends_the_target_and_no_less_noise_would():
    accountant = ClientLevelAccountant(20, 4, DELTA)
    z = accountant.calibrate(target_epsilon=4.0, rounds=10)

    def epsilon(noise):  # dp-accounting directly, R rounds at once
        reference = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
        event = dp_accounting.SampledWithoutReplacementDpEvent(20, 4, dp_accounting.GaussianDpEvent(noise / 2))
        return reference.compose(event, 10).get_epsilon(DELTA)

    assert epsilon(z) <= 4.0 < epsilon(z - 1e-3)
    assert accountant.charged == [], 'calibration must not charge anything'
    with pytest.raises(ValueError, match='protects nothing'):
        accountant.calibrate(target_epsilon=1e9, rounds=1)


def test_epsilon_after_predicts_without_charging_and_replay_restores():
    accountant = ClientLevelAccountant(20, 4, DELTA)
    accountant.charge(2.0, 2)
    predicted = accountant.epsilon_after(2.0)
    assert accountant.charged == [2.0, 2.0]
    accountant.charge(2.0)
    assert accountant.epsilon() == pytest.approx(predicted, rel=1e-12)
    restored = ClientLevelAccountant(20, 4, DELTA)
    restored.replay(accountant.charged)
    assert restored.epsilon() == pytest.approx(accountant.epsilon(), rel=1e-12)
    accountant.charge(0.0)
    assert math.isinf(accountant.epsilon()), 'a round without noise has no privacy'


# ------------------------------------------------------------------------------------------ budget, resume state


def budget_dp(**kwargs):
    settings = dict(
        mode='central', clip_norm=1.0, delta=DELTA, client_num=10, clients_per_round=2, rounds=3, seed=0,
        noise_multiplier=3.0,
    )  # fmt: skip
    return ClientLevelDp(DpConfig(**{**settings, **kwargs}))


def reference_epsilon(rounds, noise=3.0, n=10, m=2):
    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    event = dp_accounting.SampledWithoutReplacementDpEvent(n, m, dp_accounting.GaussianDpEvent(noise / 2))
    return accountant.compose(event, rounds).get_epsilon(DELTA)


def run_round(dp, round_number, x, replies):
    aggregator = dp.aggregator(round_number, x)
    for client in range(replies):
        share = dp.client_dp()
        reply = x if share is None else share.apply(x, x, 0, round_number, client)[0]
        aggregator.add(reply, weight=1.0)
    if aggregator.count:
        aggregator.mean()
    return dp.finish_round(round_number, aggregator)


def test_budget_stops_before_the_round_that_would_cross_it():
    target = (reference_epsilon(2) + reference_epsilon(3)) / 2
    dp = budget_dp(target_epsilon=target)
    x = random_state(np.random.default_rng(8))
    for round_number in (1, 2):
        assert dp.budget_stop(round_number) is None
        row = run_round(dp, round_number, x, replies=2)
        assert row['epsilon'] == pytest.approx(reference_epsilon(round_number), rel=1e-9)
    stop = dp.budget_stop(3)
    assert stop['type'] == 'privacy_stop' and stop['round'] == 3
    assert stop['epsilon'] == pytest.approx(reference_epsilon(2), rel=1e-9)
    assert (
        stop['epsilon_after_round'] == pytest.approx(reference_epsilon(3), rel=1e-9)
        and stop['target_epsilon'] == target
    )
    assert dp.summary()['stopped_by_budget'] is True
    with pytest.raises(ValueError, match='a single round'):
        budget_dp(target_epsilon=reference_epsilon(1) / 2)


def test_distributed_rounds_are_charged_for_the_noise_present():
    """m' of m clients add their share: the round carries noise z sqrt(m'/m) and is charged so; no reply, no charge."""
    dp = budget_dp(mode='distributed', clients_per_round=4)
    x = random_state(np.random.default_rng(9))
    assert run_round(dp, 1, x, replies=4)['noise_multiplier'] == 3.0
    assert run_round(dp, 2, x, replies=1)['noise_multiplier'] == pytest.approx(3.0 * math.sqrt(1 / 4))
    assert run_round(dp, 3, x, replies=0)['noise_multiplier'] is None
    assert dp.accountant.charged == pytest.approx([3.0, 1.5])


def test_state_dict_restores_the_accountant_and_the_clip_norm():
    rng = np.random.default_rng(10)
    x = random_state(rng)
    dp = adaptive_dp(clip_norm=2.0, clipped_count_stddev=1.0)
    for round_number in (1, 2):
        aggregator = dp.aggregator(round_number, x)
        for state in updates_with_norms(x, [0.5, 4.0, 0.1, 0.2, 0.3]):
            aggregator.add(state, weight=1.0)
        dp.finish_round(round_number, aggregator)
    state = dp.state_dict()
    resumed = adaptive_dp(clip_norm=2.0, clipped_count_stddev=1.0)
    resumed.load_state_dict(state, 'checkpoint')
    assert resumed.clip_norm == dp.clip_norm != 2.0
    assert resumed.accountant.charged == dp.accountant.charged == [0.0, 0.0]
    with pytest.raises(ValueError, match='same --dp_\\* arguments'):
        adaptive_dp(clip_norm=2.0, clipped_count_stddev=2.0).load_state_dict(state, 'checkpoint')
    with pytest.raises(ValueError, match='without client-level DP'):
        resumed.load_state_dict(None, 'checkpoint')


# ---------------------------------------------------------------------------------------------------- arguments


def dp_args(**kwargs):
    return FederatedArguments(
        **{'client_num': 10, 'dp_clip_norm': 1.0, 'dp_noise_multiplier': 1.0, 'dp_delta': 1e-5, **kwargs}
    )


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'dp_clip_norm': None}, 'only with --dp_clip_norm'),
        ({'dp_clip_norm': 0.0}, '--dp_clip_norm must be > 0'),
        ({'dp_noise_multiplier': None}, '--dp_noise_multiplier z or --dp_target_epsilon'),
        ({'dp_noise_multiplier': -1.0}, 'must be >= 0'),
        ({'dp_delta': None}, '--dp_delta must be given'),
        ({'dp_delta': 0.1}, 'below 1/client_num'),
        ({'dp_clip_norm': math.inf}, 'only allowed with --dp_noise_multiplier 0'),
        ({'fed_alg': 'scaffold'}, 'control-variate'),
        ({'fed_alg': 'central'}, 'not available'),
        ({'fed_alg': 'local2'}, 'not sampled'),
        ({'fed_alg': 'avg-epi'}, 'episodes'),
        ({'fed_weighting': 'samples'}, 'bounded-weight variant'),
        ({'fed_weighting': 'episodes'}, 'fed_weighting uniform'),
        ({'dp_target_quantile': 0.5}, 'need --dp_adaptive_clip'),
        ({'dp_adaptive_clip': True, 'dp_target_quantile': 1.5}, 'in \\[0, 1\\]'),
        ({'dp_adaptive_clip': True, 'dp_clip_lr': 0.0}, '--dp_clip_lr must be > 0'),
    ],
)
def test_invalid_dp_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dp_args(**kwargs)._check_federated()


def test_dp_defaults_to_uniform_weights():
    args = dp_args()
    args._check_federated()
    assert args.weighting == 'uniform'
    assert dp_args(dp_clip_norm=math.inf, dp_noise_multiplier=0.0).weighting == 'uniform'
