"""What a person sees: a federated run's console has a start line, one line per round (with eval_loss when
evaluated), each saved adapter and a closing summary, not ms-swift's argument dump or per-step rows (those are in
run.log), and each warning once; args.json records the values the run used. Plus 2.x names in a plain run."""

import json
import os
import re

import pytest
import torch

from swift_ext.arguments.federated import FederatedArguments
from tests.conftest import as_argv, load_adapter, read_jsonl, run_cli, run_dir, tiny_lora_options

ROUND_LINE = re.compile(r'^round (\d)/2: clients \[(\d), (\d)\], loss (\d+\.\d{4}), eval_loss (\d+\.\d{4}), \d+\.\d s$')


@pytest.fixture(scope='module')
def console_run(tiny_model_dir, sample_jsonl, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp('console'))
    options = {
        **tiny_lora_options(tiny_model_dir, sample_jsonl, output_dir),
        'fed_alg': 'fedavgm', 'round': 2, 'client_num': 4, 'client_sample': 2, 'save_every': 1,
        'fed_eval_every': 1, 'split_dataset_ratio': 0.25, 'logging_steps': 1,
    }  # fmt: skip
    console = run_cli(['swift', 'sft', *as_argv(options)])
    return console, run_dir(output_dir)


def test_console_has_a_line_per_round_and_a_summary(console_run):
    console, run = console_run
    lines = console.splitlines()
    fed_log = read_jsonl(os.path.join(run, 'fed_log.jsonl'))
    rounds = [row for row in fed_log if row['type'] == 'round']
    evals = {row['round']: row['eval_loss'] for row in fed_log if row['type'] == 'eval'}
    matches = [ROUND_LINE.match(line) for line in lines if line.startswith('round ')]
    assert len(matches) == 2 and all(matches), [line for line in lines if line.startswith('round ')]
    for match, row in zip(matches, rounds):
        number, first, second, loss, eval_loss = match.groups()
        assert int(number) == row['round'] and [int(first), int(second)] == row['clients']
        assert loss == f'{row["loss"]:.4f}' and eval_loss == f'{evals[row["round"]]:.4f}'
    for number in (1, 2):  # each round's line is followed by its saved adapter
        line = next(line for line in lines if line.startswith(f'round {number}/2'))
        assert lines[lines.index(line) + 1] == f'  saved {os.path.join(run, f"global_lora_{number}")}'
    assert 'fedavgm: 2 rounds, 4 clients, rows per client {0: ' in console
    assert 'done: 2 of 2 rounds in ' in console and '  global adapters: global_lora_1, global_lora_2' in lines
    assert any(line.startswith('  logs: fed_log.jsonl') for line in lines)


def test_the_argument_dump_and_step_rows_go_to_run_log_not_the_console(console_run):
    console, run = console_run
    assert 'FedSftArguments(' not in console and "{'loss'" not in console and "'round': 1" not in console
    with open(os.path.join(run, 'run.log'), encoding='utf-8') as f:
        full_log = f.read()
    assert 'FedSftArguments(' in full_log and "{'loss'" in full_log and 'round 2/2: clients' in full_log


def test_each_warning_reaches_the_console_once(console_run):
    console, _ = console_run
    warnings = [line for line in console.splitlines() if line.startswith(('[WARNING', 'warning:'))]
    assert warnings and len(warnings) == len(set(warnings)), warnings


def test_args_json_records_the_resolved_values(console_run):
    _, run = console_run
    with open(os.path.join(run, 'args.json'), encoding='utf-8') as f:
        recorded = json.load(f)
    # FedAvgM's server learning rate defaults to 1.0 (Hsu et al. 2019; README's argument table), weights to samples
    assert (recorded['server_lr'], recorded['fed_weighting'], recorded['client_column']) == (
        1.0,
        'samples',
        'client_id',
    )


@pytest.mark.parametrize(
    'fed_alg, server_lr, expected_lr, expected_weighting',
    [
        ('fedavg', None, None, 'samples'),  # no server learning rate: recorded as null
        ('avg-epi', None, None, 'episodes'),
        ('scaffold', None, 1.0, 'samples'),
        ('fedadam', None, 1e-2, 'samples'),  # Reddi et al. 2021 default, README's table
        ('fedyogi', 0.5, 0.5, 'samples'),  # an explicit value is kept
    ],
)
def test_resolved_arguments_per_algorithm(fed_alg, server_lr, expected_lr, expected_weighting):
    from swift_ext.federated.pipeline import FedSwiftSft

    pipeline = object.__new__(FedSwiftSft)  # only the arguments are needed
    pipeline.args = FederatedArguments(fed_alg=fed_alg, server_lr=server_lr)
    pipeline._record_resolved_arguments()
    assert (pipeline.args.server_lr, pipeline.args.fed_weighting) == (expected_lr, expected_weighting)


def plain_adapter(argv, output_dir):
    """Run plain ``swift sft`` (no federated flag); the adapter of its last checkpoint, and the console."""
    console = run_cli(
        ['swift', 'sft', *argv, '--output_dir', output_dir, '--save_strategy', 'steps', '--save_steps', '2']
    )
    run = run_dir(output_dir)
    assert not os.path.exists(os.path.join(run, 'fed_log.jsonl')), 'a plain run went through the federated path'
    return load_adapter(os.path.join(run, 'checkpoint-2')), console


def test_plain_swift_sft_translates_fedmabench_names(tiny_model_dir, sample_jsonl, tmp_path):
    shared = [
        '--dataset',
        sample_jsonl,
        '--lora_rank',
        '4',
        '--learning_rate',
        '5e-3',
        '--max_steps',
        '2',
        '--seed',
        '7',
    ]
    shared += ['--gradient_accumulation_steps', '1', '--dataloader_num_workers', '0', '--report_to', 'none']
    legacy = ['--sft_type', 'lora', '--model_id_or_path', tiny_model_dir, '--model_type', 'qwen2-vl-2b-instruct']
    legacy += ['--dtype', 'AUTO', '--check_model_is_latest', 'false', '--batch_size', '1']
    legacy += ['--check_dataset_strategy', 'warning']
    current = ['--tuner_type', 'lora', '--model', tiny_model_dir, '--model_type', 'qwen2_vl', '--template', 'qwen2_vl']
    current += ['--check_model', 'false', '--per_device_train_batch_size', '1']
    translated, console = plain_adapter(legacy + shared, str(tmp_path / 'legacy'))
    expected, _ = plain_adapter(current + shared, str(tmp_path / 'current'))
    assert 'ms-swift 2.x arguments translated by swift_ext: ' in console and '--sft_type -> --tuner_type' in console
    assert '--check_dataset_strategy warning dropped' in console
    assert translated.keys() == expected.keys()
    assert all(torch.equal(translated[key], expected[key]) for key in expected)
