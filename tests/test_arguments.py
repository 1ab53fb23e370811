"""Federated argument validation and the hook's test for a federated command line (the CLI's errors:
test_cli_errors.py)."""

import subprocess
import sys

import pytest

from swift_ext.arguments.federated import FEDERATED_FLAGS, FederatedArguments
from swift_ext.cli.flags import is_federated_argv


@pytest.mark.parametrize('fed_alg, client', [('local', 0), ('local3', 3), ('local12', 12), ('fedavg', None)])
def test_local_client(fed_alg, client):
    args = FederatedArguments(fed_alg=fed_alg, client_num=20)
    args._check_federated()
    assert args.local_client == client


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'fed_alg': 'local4', 'client_num': 4}, 'client 4'),
        ({'fed_alg': 'fedsgd'}, 'unknown'),
        ({'round': 0}, '--round must be >= 1'),
        ({'fedprox_mu': -1.0}, '--fedprox_mu must be >= 0'),
    ],
)
def test_invalid_federated_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FederatedArguments(**kwargs)._check_federated()


def test_weighting_defaults():
    assert FederatedArguments(fed_alg='avg-epi').weighting == 'episodes'
    assert FederatedArguments(fed_alg='fedavg').weighting == 'samples'
    assert FederatedArguments(fed_alg='avg-epi', fed_weighting='uniform').weighting == 'uniform'


def test_hook_recognises_federated_flags_only():
    assert '--fed_alg' in FEDERATED_FLAGS and '--round' in FEDERATED_FLAGS
    assert is_federated_argv(['--model', 'x', '--round=3'])
    assert is_federated_argv(['--model', 'x', '--client-num', '3'])  # HfArgumentParser's dashed spelling
    assert not is_federated_argv(['--model', 'x', '--dataset', 'round', '--lora_rank', '8'])


def test_hook_module_is_light():
    code = 'import sys, swift_ext.cli.hook; print(any(m.split(".")[0] in ("swift", "torch") for m in sys.modules))'
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout.strip() == 'False'
    # every Python process of the environment imports the hook: until it is in `swift sft`, only os and sys
    code = 'import sys; print(sorted(m for m in sys.modules if m.startswith("swift_ext.")))'
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout.strip() == str(
        ['swift_ext.cli', 'swift_ext.cli.hook']
    )
