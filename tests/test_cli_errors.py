"""Argument errors without a traceback: one ``error:`` line with the fix, exit status 2, and for everything the light
checks can judge, before torch is imported -- in the worker entry and in both launchers."""

import json
import os
import subprocess
import sys
from dataclasses import fields

import pytest

from swift_ext.cli.flags import NEAR_MISS_CUTOFF, federated_near_misses, is_federated_argv
from tests.conftest import BIN_DIR, OFFLINE_ENV


def run(command, **env):
    full_env = {**os.environ, **OFFLINE_ENV, **env}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=600)


def assert_one_error_line(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def heavy_imports(stderr):
    """Modules of torch, transformers or ms-swift in a PYTHONPROFILEIMPORTTIME report."""
    names = {line.split('|')[-1].strip() for line in stderr.splitlines() if line.startswith('import time:')}
    return {name for name in names if name.split('.')[0] in ('torch', 'transformers', 'swift')}


@pytest.fixture(scope='module')
def clients_file(tmp_path_factory):
    """Four clients (0..3) over eight episodes, one row each."""
    path = tmp_path_factory.mktemp('data') / 'clients.jsonl'
    path.write_text(''.join(json.dumps({'episode_id': e, 'client_id': e % 4}) + '\n' for e in range(8)))
    return str(path)


BAD_COMMAND_LINES = [
    (['--client_nun', '4', '--fed_alg', 'fedavg'], ['unknown argument --client_nun (did you mean --client_num?)']),
    (['--fed-alg', 'fedavg', '--roundz', '3'], ['--roundz (did you mean --round?)']),
    (['--fed_alg', 'fedsgd'], ["--fed_alg 'fedsgd' is unknown", 'local<k>']),
    (['--fed_alg', 'fedavg', '--client_sample', '0'], ['--client_sample must be >= 1, got 0']),
    (['--round', 'three'], ["argument --round: invalid int value: 'three'"]),
    (['--fed_alg', 'fedavg', '--fed_weighting', 'rows'], ["invalid choice: 'rows'", "'samples'"]),
    (['--fed_alg', 'local5', '--client_num', '4'], ['names client 5', 'clients are 0..3']),
    (['--fed_alg', 'fedavg', '--dtype', 'int8'], ["--dtype 'int8'", '--torch_dtype']),
    (['--fed_alg', 'fedavg', '--dataset', 'x.jsonl', '--train_dataset_sample', 'all'], ['-1: all rows']),
]


@pytest.mark.parametrize('argv, fragments', BAD_COMMAND_LINES)
def test_light_checks_fail_in_one_line_before_torch(argv, fragments):
    result = run([sys.executable, '-m', 'swift_ext.cli.sft', *argv], PYTHONPROFILEIMPORTTIME='1')
    assert_one_error_line(result, *fragments)
    assert not heavy_imports(result.stderr)


@pytest.mark.parametrize(
    'client_num, extra, fragments',
    [
        (10, [], ['names 4 clients (0..3) but --client_num is 10', 'Pass --client_num 4, or --client_column none']),
        (3, [], [':4 (client_id=3)', ':8 (client_id=3)', 'pass --client_num 4']),
    ],
)
def test_client_num_must_fit_the_data(clients_file, client_num, extra, fragments):
    argv = ['--fed_alg', 'fedavg', '--client_num', str(client_num), '--dataset', f'{clients_file}#4', *extra]
    result = run([sys.executable, '-m', 'swift_ext.cli.sft', *argv], PYTHONPROFILEIMPORTTIME='1')
    assert_one_error_line(result, *fragments)
    assert not heavy_imports(result.stderr)


@pytest.mark.parametrize('launcher', ['swift', 'swift-fed'])
def test_launchers_fail_before_importing_torch(launcher, clients_file):
    for argv, fragment in (
        (['--client_nun', '4', '--model', 'm'], 'did you mean --client_num?'),
        (['--fed_alg', 'fedavg', '--client_sample', '0'], '--client_sample must be >= 1'),
        (['--client_num', '10', '--dataset', clients_file], 'Pass --client_num 4'),
    ):
        result = run([str(BIN_DIR / launcher), 'sft', *argv], PYTHONPROFILEIMPORTTIME='1')
        assert_one_error_line(result, fragment)
        assert not heavy_imports(result.stderr), argv


def test_an_unknown_ms_swift_flag_is_one_line_after_ms_swift_loads():
    result = run([str(BIN_DIR / 'swift-fed'), 'sft', '--fed_alg', 'fedavg', '--model', 'unused', '--lora_rnak', '8'])
    assert_one_error_line(result, 'unknown argument --lora_rnak (did you mean --lora_rank')


def test_no_ms_swift_flag_is_taken_for_a_misspelt_federated_flag():
    from swift.arguments import SftArguments

    ms_swift_flags = [f'--{field.name}' for field in fields(SftArguments)]
    assert len(ms_swift_flags) > 300
    assert federated_near_misses(ms_swift_flags) == []
    assert not is_federated_argv(ms_swift_flags)
    # and the typos the check exists for are caught (difflib ratio >= NEAR_MISS_CUTOFF)
    typos = ['--client_nun', '--clientnum', '--rounds', '--fedalg', '--fedprox-m', '--save_evry', '--resum']
    assert [close for _, close in federated_near_misses(typos)] == [
        '--client_num', '--client_num', '--round', '--fed_alg', '--fedprox_mu', '--save_every', '--resume',
    ]  # fmt: skip
    assert 0.75 < NEAR_MISS_CUTOFF < 0.9


def test_translated_2x_names_are_not_near_misses():
    assert federated_near_misses(['--check_dataset_strategy', 'warning', '--batch_size', '1']) == []
