"""Client-level DP end to end on the tiny model (in-process, 4 clients, 2 per round).

- z = 0 and C = inf (central) is FedAvg with uniform weights, exactly;
- a DP run with --dp_target_epsilon between the epsilons of 2 and 3 rounds logs epsilon per round as dp-accounting
  computes it (fed_log.jsonl, TensorBoard, run summary), stops before round 3, keeps round 2's adapter and
  checkpoint, and differs from the non-DP run; resumed with a larger budget it runs round 3 with the accountant and
  the adaptive clip norm of its checkpoint;
- distributed mode (clients clip and add their noise shares; here no update noise, noisy clip bits) reaches the same
  adapters as FedAvg up to float32 rounding of the deltas the clients send.
"""

import glob
import json
import math
import os
import shutil

import dp_accounting
import pytest
import torch
from dp_accounting.rdp import RdpAccountant

from swift_ext.federated.pipeline import fed_sft_main
from tests.conftest import as_argv, load_adapter, read_jsonl, tiny_lora_options

CLIENT_NUM, CLIENT_SAMPLE, DELTA, NOISE = 4, 2, 1e-5, 5.0


def federated_run(model_dir, dataset, output_dir, rounds, *extra):
    options = {
        **tiny_lora_options(model_dir, dataset, str(output_dir)),
        'round': rounds,
        'client_num': CLIENT_NUM,
        'client_sample': CLIENT_SAMPLE,
        'save_every': 1,
    }
    fed_sft_main([*as_argv(options), *extra])
    return sorted(glob.glob(os.path.join(str(output_dir), 'v*-*')), key=os.path.getmtime)[-1]


def rows(run, kind):
    return [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == kind]


def reference_epsilon(rounds):
    """dp-accounting directly: 2 of 4 clients without replacement, replace-one, Gaussian(z / 2) per round."""
    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    event = dp_accounting.SampledWithoutReplacementDpEvent(
        CLIENT_NUM, CLIENT_SAMPLE, dp_accounting.GaussianDpEvent(NOISE / 2)
    )
    return float(accountant.compose(event, rounds).get_epsilon(DELTA))


def run_files(run):
    """Every file of a run directory with its bytes."""
    paths = (os.path.join(root, name) for root, _, names in os.walk(run) for name in names)
    return {os.path.relpath(path, run): open(path, 'rb').read() for path in paths}


def adaptive_dp_argv(target_epsilon):
    return [
        '--dp_clip_norm', '0.002', '--dp_noise_multiplier', str(NOISE), '--dp_delta', str(DELTA),
        '--dp_target_epsilon', repr(target_epsilon), '--dp_adaptive_clip', 'true', '--dp_clipped_count_stddev', '5',
        '--save_every', '5',
    ]  # fmt: skip


@pytest.fixture(scope='module')
def fedavg_uniform(tiny_model_dir, sample_jsonl, tmp_path_factory):
    return federated_run(
        tiny_model_dir, sample_jsonl, tmp_path_factory.mktemp('fedavg'), 2, '--fed_weighting', 'uniform'
    )


@pytest.fixture(scope='module')
def budget_run(tiny_model_dir, sample_jsonl, tmp_path_factory):
    target = (reference_epsilon(2) + reference_epsilon(3)) / 2
    return federated_run(tiny_model_dir, sample_jsonl, tmp_path_factory.mktemp('budget'), 3, *adaptive_dp_argv(target))


def test_no_noise_and_no_clipping_is_uniform_fedavg_exactly(fedavg_uniform, tiny_model_dir, sample_jsonl, tmp_path):
    run = federated_run(
        tiny_model_dir, sample_jsonl, tmp_path, 2,
        '--dp_clip_norm', 'inf', '--dp_noise_multiplier', '0', '--dp_delta', str(DELTA),
    )  # fmt: skip
    for round_number in (1, 2):
        expected = load_adapter(os.path.join(fedavg_uniform, f'global_lora_{round_number}'))
        got = load_adapter(os.path.join(run, f'global_lora_{round_number}'))
        assert all(torch.equal(got[key], expected[key]) for key in expected), f'round {round_number}'
    assert [row['epsilon'] for row in rows(run, 'privacy')] == [None, None], 'z = 0: epsilon is infinite'
    assert {row['weight'] for row in rows(run, 'client')} == {1.0}


def test_dp_run_logs_epsilon_per_round_and_stops_at_the_budget(budget_run, fedavg_uniform):
    privacy = rows(budget_run, 'privacy')
    assert [row['round'] for row in privacy] == [1, 2]
    for row in privacy:
        assert row['epsilon'] == pytest.approx(reference_epsilon(row['round']), rel=1e-9)
        assert row['noise_multiplier'] == NOISE and row['delta'] == DELTA
    (stop,) = rows(budget_run, 'privacy_stop')
    assert stop['round'] == 3 and stop['epsilon_after_round'] == pytest.approx(reference_epsilon(3), rel=1e-9)
    assert [row['round'] for row in rows(budget_run, 'round')] == [1, 2]

    # the last round's adapter (not on the --save_every 5 schedule) and checkpoint are kept
    assert os.path.isdir(os.path.join(budget_run, 'global_lora_2'))
    assert not os.path.exists(os.path.join(budget_run, 'global_lora_3'))
    checkpoint = os.path.join(budget_run, 'fed_checkpoint')
    assert open(os.path.join(checkpoint, 'latest')).read().strip() == 'round_2'
    meta = json.load(open(os.path.join(checkpoint, 'round_2', 'meta.json')))
    assert meta['privacy']['charged'] == [NOISE, NOISE]

    summary = read_jsonl(os.path.join(budget_run, 'logging.jsonl'))[-1]['privacy']
    assert summary['epsilon'] == pytest.approx(reference_epsilon(2), rel=1e-9) and summary['stopped_by_budget']

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = glob.glob(os.path.join(budget_run, 'runs', '**', 'events.out.tfevents.*'), recursive=True)
    scalars = EventAccumulator(events).Reload().Scalars('fed/dp_epsilon')
    assert [(s.step, round(s.value, 4)) for s in scalars] == [(r, round(reference_epsilon(r), 4)) for r in (1, 2)]

    # adaptive clipping: C_{t+1} = C_t exp(-0.2 (noisy unclipped fraction - 0.5)), and round 2 uses C_2
    for row in privacy:
        assert 0.0 <= row['noisy_unclipped_fraction'] <= 1.0
        expected = row['clip_norm'] * math.exp(-0.2 * (row['noisy_unclipped_fraction'] - 0.5))
        assert row['next_clip_norm'] == pytest.approx(expected, rel=1e-12)
    assert privacy[0]['clip_norm'] == 0.002 and privacy[1]['clip_norm'] == privacy[0]['next_clip_norm']

    private = load_adapter(os.path.join(budget_run, 'global_lora_2'))
    plain = load_adapter(os.path.join(fedavg_uniform, 'global_lora_2'))
    assert all(torch.isfinite(t).all() for t in private.values())
    assert any(not torch.allclose(private[key], plain[key], atol=1e-4) for key in plain)


def test_resume_restores_the_accountant_and_the_clip_norm(budget_run, tiny_model_dir, sample_jsonl, tmp_path):
    resumed = str(tmp_path / os.path.basename(budget_run))
    shutil.copytree(budget_run, resumed)
    larger = reference_epsilon(3) * 1.01
    before = run_files(resumed)
    other_noise = [*adaptive_dp_argv(larger), '--dp_noise_multiplier', '4.0']
    with pytest.raises(ValueError, match='was written with DP settings'):
        federated_run(tiny_model_dir, sample_jsonl, tmp_path, 3, *other_noise, '--resume', resumed)
    assert run_files(resumed) == before, 'a refused resume wrote into the run directory'
    federated_run(tiny_model_dir, sample_jsonl, tmp_path, 3, *adaptive_dp_argv(larger), '--resume', resumed)
    privacy = rows(resumed, 'privacy')
    assert [row['round'] for row in privacy] == [1, 2, 3] and not rows(resumed, 'privacy_stop')
    assert privacy[2]['epsilon'] == pytest.approx(reference_epsilon(3), rel=1e-9), 'rounds 1-2 were not replayed'
    assert privacy[2]['clip_norm'] == privacy[1]['next_clip_norm'] != 0.002, 'the adaptive clip norm was not restored'
    assert os.path.isdir(os.path.join(resumed, 'global_lora_3'))


def test_distributed_mode_without_update_noise_is_fedavg(fedavg_uniform, tiny_model_dir, sample_jsonl, tmp_path):
    run = federated_run(
        tiny_model_dir, sample_jsonl, tmp_path, 2,
        '--dp_mode', 'distributed', '--dp_clip_norm', '1e6', '--dp_noise_multiplier', '0', '--dp_delta', str(DELTA),
        '--dp_adaptive_clip', 'true', '--dp_clipped_count_stddev', '5',
    )  # fmt: skip
    for round_number in (1, 2):
        expected = load_adapter(os.path.join(fedavg_uniform, f'global_lora_{round_number}'))
        got = load_adapter(os.path.join(run, f'global_lora_{round_number}'))
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)
    privacy = rows(run, 'privacy')
    # the clients' noised clip bits reached the server: the fraction is a noisy estimate, C follows it
    for row in privacy:
        expected = row['clip_norm'] * math.exp(-0.2 * (row['noisy_unclipped_fraction'] - 0.5))
        assert row['next_clip_norm'] == pytest.approx(expected, rel=1e-12)
    assert privacy[1]['clip_norm'] == privacy[0]['next_clip_norm'] != 1e6
