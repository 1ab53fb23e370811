"""Invariants against stock ms-swift: ``swift sft`` without federated flags is untouched by the hook, and FedAvg with
one client and one round is plain ``swift sft``."""

import glob
import os

import torch

from tests.conftest import as_argv, load_adapter, run_cli, run_dir, tiny_lora_options

STEPS = 3


def common_argv(model_dir: str, dataset: str, output_dir: str) -> list:
    options = {
        **tiny_lora_options(model_dir, dataset, output_dir),
        'lora_dropout': 0.1,
        'learning_rate': '1e-2',
        'max_steps': STEPS,
        'seed': 7,
        'logging_steps': 1,
    }
    return as_argv(options)


def plain_sft_adapter(model_dir: str, dataset: str, output_dir: str, env=None) -> dict:
    run_cli(
        [
            'swift',
            'sft',
            *common_argv(model_dir, dataset, output_dir),
            '--save_strategy',
            'steps',
            '--save_steps',
            str(STEPS),
        ],
        env=env,
    )
    run = run_dir(output_dir)
    assert not os.path.exists(os.path.join(run, 'fed_log.jsonl')), 'plain swift sft went through the federated path'
    return load_adapter(os.path.join(run, f'checkpoint-{STEPS}'))


def test_swift_sft_without_federated_flags_is_stock_ms_swift(tiny_model_dir, sample_jsonl, tmp_path):
    hooked = plain_sft_adapter(tiny_model_dir, sample_jsonl, str(tmp_path / 'hooked'))
    stock = plain_sft_adapter(tiny_model_dir, sample_jsonl, str(tmp_path / 'stock'), env={'SWIFT_EXT_HOOK': '0'})
    assert hooked.keys() == stock.keys()
    for key in stock:
        assert torch.equal(hooked[key], stock[key]), key


def test_fedavg_one_client_one_round_equals_plain_swift_sft(tiny_model_dir, sample_jsonl_without_clients, tmp_path):
    plain = plain_sft_adapter(tiny_model_dir, sample_jsonl_without_clients, str(tmp_path / 'plain'))
    run_cli(
        [
            'swift',
            'sft',
            *common_argv(tiny_model_dir, sample_jsonl_without_clients, str(tmp_path / 'fed')),
            '--fed_alg',
            'fedavg',
            '--round',
            '1',
            '--client_num',
            '1',
            '--client_sample',
            '1',
        ]
    )
    federated = load_adapter(glob.glob(str(tmp_path / 'fed' / '*' / 'global_lora_1'))[0])
    assert federated.keys() == plain.keys()
    changed = [key for key in plain if 'lora_B' in key and plain[key].abs().sum() > 0]
    assert changed, 'plain training left every lora_B at zero: the comparison would be vacuous'
    for key in plain:
        torch.testing.assert_close(federated[key], plain[key], rtol=0, atol=1e-5)
