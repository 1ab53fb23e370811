"""``swift-fed sft --help`` and ``swift sft --fed_alg ... --help``: every federated argument with its documented
meaning and default, grouped as in the README, printed before torch is imported (the < 3 s is measured in
benchmarks/bench_cli_help.py, not asserted here)."""

import ast
import os
import subprocess
from dataclasses import MISSING, dataclass, fields

import pytest

from swift_ext.arguments.federated import FederatedArguments
from swift_ext.arguments.field_docs import field_docs
from swift_ext.cli.help import GROUPS, MS_SWIFT_ARGUMENT_DOCS, federated_help, grouped_fields
from tests.conftest import BIN_DIR, OFFLINE_ENV

FEDERATED_FIELDS = [field.name for field in fields(FederatedArguments)]


def help_of(command):
    """(stdout, modules imported) of a console script run with Python's import-time report on."""
    env = {**os.environ, **OFFLINE_ENV, 'PYTHONPROFILEIMPORTTIME': '1'}
    result = subprocess.run([str(BIN_DIR / command[0]), *command[1:]], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.split('|')[-1].strip() for line in result.stderr.splitlines() if line.startswith('import time:')}
    return result.stdout, imported


@pytest.mark.parametrize(
    'command', [['swift-fed', 'sft', '--help'], ['swift', 'sft', '--fed_alg', 'fedavg', '--round', '3', '-h']]
)
def test_help_lists_every_federated_argument_without_importing_torch(command):
    text, imported = help_of(command)
    assert text == federated_help() + '\n'
    assert not {name for name in imported if name.split('.')[0] in ('torch', 'transformers', 'swift')}
    assert 'swift_ext.cli.help' in imported  # the report did cover the process that printed the help


def test_help_shows_each_fields_doc_once_in_readme_groups():
    text = federated_help(width=1000)  # one line per description, so it can be compared whole
    docs = field_docs(FederatedArguments)
    for name in FEDERATED_FIELDS:
        assert text.count(f'\n  --{name} ({docs[name].type})\n      {docs[name].text}\n') == 1, name
    titles = [title for title, _ in grouped_fields()]
    assert titles[: len(GROUPS)] == [title for title, _ in GROUPS]
    positions = [text.index(f'\n  --{name} (') for _, names in grouped_fields() for name in names]
    assert positions == sorted(positions) and text.index(MS_SWIFT_ARGUMENT_DOCS) > positions[-1]


def test_every_federated_field_is_documented_with_its_true_default():
    docs = field_docs(FederatedArguments)
    assert list(docs) == FEDERATED_FIELDS
    for field in fields(FederatedArguments):
        assert field.default is not MISSING, field.name
        written = docs[field.name].default_text
        assert written is not None and ast.literal_eval(written) == field.default, (field.name, written)


def test_a_field_missing_from_the_groups_is_still_listed(monkeypatch):
    monkeypatch.setattr('swift_ext.cli.help.GROUPS', GROUPS[:1])
    groups = grouped_fields()
    assert groups[-1][0] == 'Other federated arguments'
    assert sorted(name for _, names in groups for name in names) == sorted(FEDERATED_FIELDS)


@dataclass
class Documented:
    """A class.

    Args:
        alpha (int): First line
            continued here. Defaults to 3.
        beta (Optional[str]): One line. Defaults to 'b c'.

    Returns:
        nothing (str): not an argument.
    """

    alpha: int = 3
    beta: str = 'b c'


def test_field_docs_reads_google_style_args():
    docs = field_docs(Documented)
    assert list(docs) == ['alpha', 'beta']
    assert (docs['alpha'].type, docs['alpha'].text) == ('int', 'First line continued here. Defaults to 3.')
    assert (docs['beta'].type, docs['beta'].default_text) == ('Optional[str]', "'b c'")
