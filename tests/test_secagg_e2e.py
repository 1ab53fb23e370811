"""Secure aggregation end to end on Flower loopback: a SuperLink, 3 SuperNodes and their training workers as real
processes on 127.0.0.1 (TLS, node authentication), the tiny model, every client sampled every round.

- One round of plain FedAvg and the same round with ``--secure_aggregation secaggplus``: both start from the same x
  and the clients train the same y_k, so the two global adapters differ only by SecAgg+'s reconstruction error, which
  must stay within the bound the run logs (``mean_error_bound``, formula in ``swift_ext.flower.secagg_server``) plus
  float32 rounding of the two adapters. (A second round would start from x's that differ by that error and train
  apart, so one round is compared.) Every reply the server received in the secure run was inspected
  (``replies_inspected``: 4 SecAgg+ stages x 3 clients) and none carried an array in the clear (the run would have
  stopped).
- Two rounds with ``--dp_mode distributed`` (adaptive clipping, so the noised clip bit rides in the masked vector;
  the second round restarts SecAgg+ on nodes that keep its state): epsilon logged every round, charged for the 3
  clients summed, and R the larger of the clip norm plus 6 per-client noise standard deviations and the clip bit's
  1/2 plus 6 of its own, computed here from the run's DP settings.

The hard time limit allows for a heavily loaded 2-core machine (13.5 min measured for a larger version at load 11).
"""

import math
import os
from typing import List

import pytest
import torch

from swift_ext.flower.launcher import LocalFederation
from tests.conftest import as_argv, load_adapter, read_jsonl, run_dir, tiny_lora_options
from tests.test_flower_engines import hard_limit, parsed

NODES = CLIENTS = SAMPLED = 3


def command(model_dir, dataset, output_dir, rounds, *extra) -> List[str]:
    options = {
        **tiny_lora_options(model_dir, dataset, str(output_dir)),
        'fed_alg': 'fedavg', 'round': rounds, 'client_num': CLIENTS, 'client_sample': SAMPLED, 'save_every': 1,
        'fed_engine': 'flower', 'supernodes': NODES, 'client_timeout': 600,
        'client_column': 'none',  # the sample's client_id column names 4 clients; deal its rows to 3
    }  # fmt: skip
    return [*as_argv(options), *extra]


def rows(output_dir, kind) -> List[dict]:
    return [row for row in read_jsonl(os.path.join(run_dir(str(output_dir)), 'fed_log.jsonl')) if row['type'] == kind]


def global_adapter(output_dir, round_number):
    return load_adapter(os.path.join(run_dir(str(output_dir)), f'global_lora_{round_number}'))


def test_secaggplus_sums_like_plain_fedavg_and_runs_with_distributed_dp(tiny_model_dir, sample_jsonl, tmp_path):
    secure = ['--secure_aggregation', 'secaggplus']
    dp = [
        '--dp_mode', 'distributed', '--dp_clip_norm', '0.05', '--dp_noise_multiplier', '0.5', '--dp_delta', '1e-3',
        '--dp_adaptive_clip', 'true', '--dp_clipped_count_stddev', '1.0',
    ]  # fmt: skip
    runs = {'plain': (1, []), 'secure': (1, secure), 'secure_dp': (2, secure + dp)}
    federation = LocalFederation('flower', NODES, CLIENTS, log_dir=str(tmp_path / 'federation'))
    with hard_limit(1800), federation:
        for name, (rounds, extra) in runs.items():
            argv = command(tiny_model_dir, sample_jsonl, tmp_path / name, rounds, *extra)
            federation.run_command(parsed(argv), argv)
    assert federation.marked_processes() == []

    # Plain vs secure: the same clients, the same round-1 training, sums within the logged bound.
    plain_clients = [(r['round'], r['client'], r['status']) for r in rows(tmp_path / 'plain', 'client')]
    assert [(r['round'], r['client'], r['status']) for r in rows(tmp_path / 'secure', 'client')] == plain_clients
    assert all(status == 'ok' for _, _, status in plain_clients)
    reports = rows(tmp_path / 'secure', 'secure_aggregation')
    assert len(reports) == 1 and sorted(reports[0]['clients_summed']) == list(range(CLIENTS))
    assert reports[0]['replies_inspected'] == 4 * SAMPLED
    assert reports[0]['clipping_range'] == 8.0 and reports[0]['quantization_range'] == 2**22
    bound = reports[0]['mean_error_bound']
    # n_k weights: r_k = round(n_k / max n * Q) / Q, so the bound is one quantum 2R/Q plus the weights' rounding.
    assert 2 * 8.0 / 2**22 <= bound < 3 * 2 * 8.0 / 2**22
    plain, secured = global_adapter(tmp_path / 'plain', 1), global_adapter(tmp_path / 'secure', 1)
    assert plain.keys() == secured.keys()
    for key in plain:
        rounding = 2 * torch.finfo(torch.float32).eps * plain[key].abs().max().item()  # both adapters are float32
        difference = (plain[key] - secured[key]).abs().max().item()
        assert difference <= bound + rounding, (key, difference, bound)
    assert any((plain[key] != secured[key]).any() for key in plain)  # it did go through quantisation

    # Distributed DP under SecAgg+: epsilon per round, each round charged z * sqrt(m'/m) with m' = m summed.
    privacy = rows(tmp_path / 'secure_dp', 'privacy')
    assert [r['round'] for r in privacy] == [1, 2]
    assert all(r['epsilon'] is not None and r['noise_multiplier'] == pytest.approx(0.5) for r in privacy)
    assert privacy[0]['epsilon'] < privacy[1]['epsilon']
    assert all(r['noisy_unclipped_fraction'] is not None for r in privacy)  # the summed clip bits arrived
    z_update = (0.5**-2 - (2 * 1.0) ** -2) ** -0.5  # Andrew et al.'s split of z between update and clip bit
    for report, row in zip(rows(tmp_path / 'secure_dp', 'secure_aggregation'), privacy):
        share = z_update * row['clip_norm'] / math.sqrt(SAMPLED)
        bit_share = 1.0 / math.sqrt(SAMPLED)
        assert report['clipping_range'] == pytest.approx(max(row['clip_norm'] + 6 * share, 0.5 + 6 * bit_share))
        assert len(report['clients_summed']) == SAMPLED
