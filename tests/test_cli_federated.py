"""End to end through the real console scripts: the FedMABench command line, ``swift-fed``, the hook's off path,
and ``swift infer --adapters`` on a saved global adapter."""

import json
import os

import pytest
import torch

import swift_ext.template.plugin as template_plugin
from tests.conftest import load_adapter, read_jsonl, run_cli, run_dir

# The FedMABench command line of the issue (ms-swift 2.x names), scaled down to the tiny model and two rounds.
FEDMABENCH_COMMAND = """
    sft --round 2 --fed_alg fedavg --client_num 4 --client_sample 2
    --model_type qwen2-vl-2b-instruct --model_id_or_path {model}
    --check_model_is_latest False --lazy_tokenize True --preprocess_num_proc 1
    --dataset {dataset} --sft_type lora --tuner_backend peft --dtype AUTO
    --output_dir {output} --train_dataset_sample -1 --dataset_test_ratio 0 --max_steps 2 --max_length 8192
    --check_dataset_strategy warning --lora_rank 8 --lora_alpha 32 --lora_dropout 0.05
    --gradient_checkpointing true --batch_size 1 --weight_decay 0.1 --learning_rate 5e-3
    --gradient_accumulation_steps 1 --max_grad_norm 0.5 --warmup_ratio 0.03 --eval_strategy no
    --save_strategy no --logging_steps 100 --save_every 1
"""


def fedmabench_argv(model_dir: str, dataset: str, output_dir: str) -> list:
    return FEDMABENCH_COMMAND.format(model=model_dir, dataset=dataset, output=output_dir).split()


@pytest.fixture(scope='module')
def fed_run(tiny_model_dir, sample_jsonl, tmp_path_factory) -> str:
    output_dir = str(tmp_path_factory.mktemp('fed'))
    run_cli(['swift', *fedmabench_argv(tiny_model_dir, sample_jsonl, output_dir)], env={'MAX_PIXELS': '602112'})
    return run_dir(output_dir)


def test_fedmabench_command_writes_distinct_loadable_global_adapters(fed_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import Qwen2VLForConditionalGeneration

    round1, round2 = (load_adapter(os.path.join(fed_run, f'global_lora_{r}')) for r in (1, 2))
    assert round1.keys() == round2.keys() and any('lora_A' in key for key in round1)
    assert any(not torch.equal(round1[key], round2[key]) for key in round1), 'rounds 1 and 2 saved the same adapter'

    base = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, os.path.join(fed_run, 'global_lora_2'))
    loaded = {name: param for name, param in model.named_parameters() if 'lora_' in name}
    assert len(loaded) == len(round2)
    for key, tensor in round2.items():
        name = key.replace('.weight', '.default.weight')
        assert torch.equal(loaded[name], tensor), key


def test_the_run_records_the_pixel_settings_it_trained_with(fed_run):
    with open(os.path.join(fed_run, 'pixel_settings.json'), encoding='utf-8') as f:
        settings = json.load(f)
    assert settings['MAX_PIXELS'] == '602112' and settings['MIN_PIXELS'] is None


def test_fed_log_has_a_row_per_client_and_round(fed_run):
    rows = read_jsonl(os.path.join(fed_run, 'fed_log.jsonl'))
    client_rows = [row for row in rows if row['type'] == 'client']
    round_rows = [row for row in rows if row['type'] == 'round']
    assert [row['round'] for row in round_rows] == [1, 2]
    assert len(client_rows) == 4  # 2 sampled clients x 2 rounds
    lora_bytes = sum(t.numel() * 4 for t in load_adapter(os.path.join(fed_run, 'global_lora_1')).values())
    for row in client_rows:
        assert row['status'] == 'ok' and row['steps'] == 2 and row['samples'] == 4 and row['loss'] > 0
        assert row['bytes_sent'] == row['bytes_received'] == lora_bytes  # FedAvg: the LoRA state each way
    for round_row in round_rows:
        clients = [row for row in client_rows if row['round'] == round_row['round']]
        assert round_row['clients'] == round_row['aggregated'] == [row['client'] for row in clients]
        assert round_row['bytes_received'] == sum(row['bytes_received'] for row in clients)
        weighted = sum(row['loss'] * row['weight'] for row in clients) / sum(row['weight'] for row in clients)
        assert round_row['loss'] == pytest.approx(weighted)
    assert os.path.isfile(os.path.join(fed_run, 'images', 'fed_loss.png'))
    assert os.path.isfile(os.path.join(fed_run, 'fed_checkpoint', 'round_2', 'global_state.safetensors'))
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(os.path.join(fed_run, 'runs')))
    assert os.path.isfile(os.path.join(fed_run, 'args.json'))


def test_swift_fed_gives_the_same_result_as_hooked_swift_sft(fed_run, tiny_model_dir, sample_jsonl, tmp_path):
    run_cli(['swift-fed', *fedmabench_argv(tiny_model_dir, sample_jsonl, str(tmp_path))])
    other = run_dir(str(tmp_path))
    for round_number in (1, 2):
        expected = load_adapter(os.path.join(fed_run, f'global_lora_{round_number}'))
        actual = load_adapter(os.path.join(other, f'global_lora_{round_number}'))
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-7)


def test_swift_fed_reads_a_yaml_config_like_ms_swift(fed_run, tiny_model_dir, sample_jsonl, tmp_path):
    argv = fedmabench_argv(tiny_model_dir, sample_jsonl, str(tmp_path / 'out'))[1:]
    options = dict(zip(argv[::2], argv[1::2]))
    config = tmp_path / 'fed.yaml'
    config.write_text(''.join(f'{name[2:]}: "{value}"\n' for name, value in options.items()))  # quoted: `no`
    run_cli(['swift-fed', 'sft', str(config)])
    other = run_dir(str(tmp_path / 'out'))
    expected, actual = (load_adapter(os.path.join(run, 'global_lora_2')) for run in (fed_run, other))
    assert all(torch.equal(actual[key], expected[key]) for key in expected)


def test_run_summary_totals_the_communication(fed_run):
    summary = read_jsonl(os.path.join(fed_run, 'logging.jsonl'))[-1]
    rounds = [row for row in read_jsonl(os.path.join(fed_run, 'fed_log.jsonl')) if row['type'] == 'round']
    assert summary['bytes_sent'] == sum(row['bytes_sent'] for row in rounds) > 0
    assert summary['bytes_received'] == sum(row['bytes_received'] for row in rounds) > 0
    assert summary['global_models'] == [os.path.join(fed_run, f'global_lora_{r}') for r in (1, 2)]


def test_swift_infer_loads_a_global_adapter(fed_run, sample_jsonl, tmp_path):
    result_path = str(tmp_path / 'infer.jsonl')
    run_cli(
        [
            'swift',
            'infer',
            '--adapters',
            os.path.join(fed_run, 'global_lora_2'),
            '--val_dataset',
            f'{sample_jsonl}#2',
            '--max_new_tokens',
            '2',
            '--result_path',
            result_path,
            '--infer_backend',
            'transformers',
            '--external_plugins',  # the checked template: transformers 4.x generation needs it
            template_plugin.__file__,
        ]
    )
    rows = read_jsonl(result_path)
    assert len(rows) == 2 and all('response' in row for row in rows)
