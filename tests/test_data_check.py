"""The conversations dataset check (swift_ext.data_check): one row of each bad kind among good sample rows;
``error`` names every bad line, ``discard`` keeps exactly the good rows (clients unchanged) and reports the rest."""

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from typing import Dict, Iterator, List

import pytest

from swift_ext.data_check import BadRow, CheckReport, apply_strategy, check_conversations_file, check_row
from tests.conftest import BIN_DIR, OFFLINE_ENV, as_argv, read_jsonl, run_cli, run_dir, tiny_lora_options

GOOD_ROWS = [0, 1, 2, 3, 4, 5, 7, 8]  # of the sample episodes: clients 0,1,2,3,0,1,3,0 -> {0: 3, 1: 2, 2: 1, 3: 2}
MAX_LENGTH = 1024  # the good sample rows encode to 250-350 tokens at MAX_PIXELS=50176
PIXEL_ENV = {'MAX_PIXELS': '50176'}


def bad_rows(good: dict, image_dir: str) -> Dict[str, str]:
    """reason -> one raw line failing exactly that check (built from a good row, client 2)."""
    corrupt = os.path.join(image_dir, 'corrupt.png')
    with open(corrupt, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n not an image')

    def variant(**changes) -> str:
        return json.dumps({**good, 'client_id': 2, **changes})

    turns = good['conversations']
    return {
        'invalid_json': '{"conversations": [{"from": "user"',
        'no_conversations': variant(conversations=None),
        'bad_roles': variant(conversations=turns[:-1]),  # ends with the user
        'empty_assistant': variant(conversations=[*turns[:-1], {'from': 'assistant', 'value': '  '}]),
        'image_count': variant(images=good['images'][:-1]),
        'image_unreadable': variant(images=[*good['images'][:-1], corrupt]),
        'too_long': variant(conversations=[*turns[:-1], {'from': 'assistant', 'value': 'word ' * MAX_LENGTH}]),
        'encode_error': variant(conversations=[{**turns[0], 'value': turns[0]['value'] + '<|image_pad|>'}, *turns[1:]]),
    }


@pytest.fixture(scope='module')
def mixed_jsonl(sample_jsonl, tmp_path_factory) -> Dict[str, object]:
    """Good rows with one bad row of each kind after each of the first good rows; returns path and expectations."""
    with open(sample_jsonl, encoding='utf-8') as f:
        sample = [line.rstrip('\n') for line in f if line.strip()]
    good_lines = [sample[i] for i in GOOD_ROWS]
    directory = tmp_path_factory.mktemp('data_check')
    bad = bad_rows(json.loads(good_lines[0]), str(directory))
    lines: List[str] = []
    expected_bad: Dict[int, str] = {}  # 1-based line -> reason
    for good_line, (reason, bad_line) in zip(good_lines, [*bad.items(), *[(None, None)] * len(good_lines)]):
        lines.append(good_line)
        if reason:
            lines.append(bad_line)
            expected_bad[len(lines)] = reason
    lines.append('')  # a blank line is no row
    path = directory / 'mixed.jsonl'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return {'path': str(path), 'bad': expected_bad, 'good_lines': good_lines}


@pytest.fixture(scope='module')
def template(tiny_model_dir) -> Iterator[object]:
    from swift_ext.data_check.cli import build_template

    with pytest.MonkeyPatch.context() as patch:  # MAX_PIXELS for this module only: later tests' runs inherit os.environ
        for name, value in PIXEL_ENV.items():
            patch.setenv(name, value)
        yield build_template(tiny_model_dir, 'qwen2_vl', 'qwen2_vl')


def test_every_bad_kind_is_found_with_its_line(mixed_jsonl, template):
    report = check_conversations_file(mixed_jsonl['path'], template=template, max_length=MAX_LENGTH)
    assert {row.line: row.reason for row in report.bad} == mixed_jsonl['bad']
    assert (report.rows_read, report.rows_kept) == (len(GOOD_ROWS) + 8, len(GOOD_ROWS))
    too_long = next(row for row in report.bad if row.reason == 'too_long')
    assert f'> --max_length {MAX_LENGTH}' in too_long.detail and 'raise --max_length' in too_long.detail
    assert 'Image token count mismatch' in next(row for row in report.bad if row.reason == 'encode_error').detail


@pytest.mark.parametrize(
    'row, reason',
    [
        ({'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'user', 'content': 'hi'}]}, 'bad_roles'),
        ({'messages': [{'role': 'assistant', 'content': 'a'}]}, 'bad_roles'),
        ({'messages': [{'role': 'system', 'content': 's'}, {'role': 'user', 'content': 'q'}]}, 'bad_roles'),
        ({'conversations': [{'from': 'human', 'value': '<image>q'}, {'from': 'gpt', 'value': 'a'}]}, 'image_count'),
        (
            {
                'conversations': [{'from': 'user', 'value': 'q'}, {'from': 'assistant', 'value': 'a'}],
                'images': [
                    '/no/such.png',
                ],
            },
            'image_count',
        ),
        (
            {
                'conversations': [{'from': 'user', 'value': '<image>q'}, {'from': 'assistant', 'value': 'a'}],
                'images': ['/no/such.png'],
            },
            'image_unreadable',
        ),
        ({'messages': []}, 'no_conversations'),
        ([1, 2], 'invalid_json'),
    ],
)
def test_structural_checks(row, reason):
    assert check_row(json.dumps(row))['reason'] == reason


def test_system_then_alternating_turns_pass():
    turns = [('system', 's'), ('user', 'q'), ('assistant', 'a')]
    row = {'messages': [{'role': role, 'content': content} for role, content in turns]}
    assert check_row(json.dumps(row)) is None


def test_error_lists_up_to_50_lines_then_a_count():
    report = CheckReport('d.jsonl', rows_read=60, bad=[BadRow(i + 1, i, 'bad_roles', 'x') for i in range(60)])
    with pytest.raises(ValueError) as error:
        apply_strategy(report, 'error')
    message = str(error.value)
    assert 'd.jsonl:50: bad_roles' in message and 'd.jsonl:51:' not in message and '... and 10 more' in message
    assert '60 rows read, 0 kept, 60 dropped (bad_roles 60)' in message


def test_warning_logs_and_none_is_silent(caplog):
    report = CheckReport('d.jsonl', rows_read=2, bad=[BadRow(2, 1, 'image_count', 'x')])
    with caplog.at_level(logging.WARNING, logger='swift_ext.data_check'):
        apply_strategy(report, 'none')
        assert not caplog.records
        apply_strategy(report, 'warning')
    assert 'd.jsonl:2: image_count' in caplog.text
    with pytest.raises(ValueError, match="'drop': choose one of none, warning, discard, error"):
        apply_strategy(report, 'drop')


def run_check(dataset: str, model_dir: str, strategy: str, *extra: str) -> subprocess.CompletedProcess:
    """``python -m swift_ext.data_check`` on ``dataset`` with the tiny model's template and MAX_LENGTH."""
    env = {**os.environ, **OFFLINE_ENV, **PIXEL_ENV}
    options = {'dataset': dataset, 'model': model_dir, 'model_type': 'qwen2_vl', 'template': 'qwen2_vl',
               'max_length': MAX_LENGTH, 'strategy': strategy}  # fmt: skip
    command = [sys.executable, '-m', 'swift_ext.data_check', *as_argv(options), *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_error_strategy_exits_non_zero_naming_every_bad_line(mixed_jsonl, tiny_model_dir):
    path = mixed_jsonl['path']
    result = run_check(path, tiny_model_dir, 'error')
    assert result.returncode == 1, result.stdout + result.stderr
    for line, reason in mixed_jsonl['bad'].items():
        assert f'{path}:{line}: {reason}:' in result.stderr
    assert f'{len(GOOD_ROWS) + 8} rows read, {len(GOOD_ROWS)} kept, 8 dropped' in result.stdout


@pytest.fixture(scope='module')
def discarded(mixed_jsonl, tiny_model_dir, tmp_path_factory) -> Dict[str, str]:
    directory = tmp_path_factory.mktemp('discard')
    paths = {'report': str(directory / 'report.json'), 'output': str(directory / 'kept.jsonl')}
    extra = ['--report', paths['report'], '--output', paths['output']]
    result = run_check(mixed_jsonl['path'], tiny_model_dir, 'discard', *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return paths


def test_discard_keeps_exactly_the_good_rows_verbatim_and_reports_the_rest(mixed_jsonl, discarded):
    with open(discarded['output'], encoding='utf-8') as f:
        assert f.read().splitlines() == mixed_jsonl['good_lines']  # same rows, same client_id, same order
    with open(discarded['report'], encoding='utf-8') as f:
        report = json.load(f)
    assert {row['line']: row['reason'] for row in report['dropped']} == mixed_jsonl['bad']
    assert all(row['detail'] for row in report['dropped'])
    assert report['dropped_by_reason'] == dict.fromkeys(mixed_jsonl['bad'].values(), 1)


def fed_options(dataset: str, model_dir: str, output_dir: str, strategy: str) -> Dict[str, object]:
    """One federated round over 4 clients, all sampled, with ``--check_dataset_strategy strategy`` (2.x name)."""
    options = tiny_lora_options(model_dir, dataset, output_dir)
    options.update({'max_steps': 1, 'save_strategy': 'no', 'round': 1, 'client_num': 4, 'client_sample': 4,
                    'max_length': MAX_LENGTH, 'check_dataset_strategy': strategy})  # fmt: skip
    return options


def test_swift_fed_error_strategy_stops_naming_every_bad_line(mixed_jsonl, tiny_model_dir, tmp_path):
    path = mixed_jsonl['path']
    command = [str(BIN_DIR / 'swift-fed'), 'sft', *as_argv(fed_options(path, tiny_model_dir, str(tmp_path), 'error'))]
    result = subprocess.run(command, env={**os.environ, **OFFLINE_ENV, **PIXEL_ENV}, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for line, reason in mixed_jsonl['bad'].items():
        assert f'{path}:{line}: {reason}:' in output
    assert not os.path.exists(os.path.join(run_dir(str(tmp_path)), 'fed_log.jsonl'))


def test_swift_fed_discard_trains_each_client_on_its_good_rows_only(mixed_jsonl, tiny_model_dir, tmp_path):
    expected = Counter(json.loads(line)['client_id'] for line in mixed_jsonl['good_lines'])
    options = fed_options(mixed_jsonl['path'], tiny_model_dir, str(tmp_path), 'discard')
    run_cli(['swift-fed', 'sft', *as_argv(options)], env=PIXEL_ENV)
    run = run_dir(str(tmp_path))
    log = read_jsonl(os.path.join(run, 'fed_log.jsonl'))
    trained = {record['client']: record['samples'] for record in log if record['type'] == 'client'}
    assert trained == dict(expected) == {0: 3, 1: 2, 2: 1, 3: 2}  # the bad rows (all client 2) are not trained on
    with open(os.path.join(run, 'data_check_mixed.jsonl.json'), encoding='utf-8') as f:
        assert {row['line']: row['reason'] for row in json.load(f)['dropped']} == mixed_jsonl['bad']


def test_length_check_resizes_images_as_the_run_recorded(sample_jsonl, tiny_model_dir, tmp_path):
    """``--run_dir`` measures rows at the resolution the run recorded (over MAX_PIXELS=50176 in the environment), and
    ``--max_pixels`` overrides it: the row's length differs by exactly the image-token difference."""
    from swift_ext.template.pixel_settings import record_pixel_settings

    dataset = tmp_path / 'one.jsonl'
    with open(sample_jsonl, encoding='utf-8') as f:
        row = f.readline()
    dataset.write_text(row, encoding='utf-8')
    run = tmp_path / 'v0-run'
    run.mkdir()
    record_pixel_settings(str(run), environ={'MAX_PIXELS': '12544'})

    def measured(name: str, *extra: str) -> int:
        """Tokens of the row, read from the too_long reason of a check with --max_length 1."""
        report = tmp_path / f'{name}.json'
        result = run_check(str(dataset), tiny_model_dir, 'discard', '--max_length', '1', '--report', str(report),
                           '--run_dir', str(run), *extra)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        detail = json.loads(report.read_text())['dropped'][0]['detail']
        return int(detail.split(' tokens > ')[0])

    recorded, overridden = measured('recorded'), measured('overridden', '--max_pixels', '50176')
    # Qwen2-VL's smart_resize of a 168x364 screenshot (factor 28): at most 12544 px -> 56x140 = 2x5 = 10 tokens,
    # at most 50176 px -> 140x308 = 5x11 = 55 tokens.
    assert overridden - recorded == (55 - 10) * len(json.loads(row)['images'])


def test_pixel_options_need_the_model(sample_jsonl):
    from swift_ext.data_check.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(['--dataset', sample_jsonl, '--max_pixels', '50176'])
