"""Unusable data stops a federated run with one clear error that gives the numbers, names the user's file and line,
and says what to do; invalid JSON is reported at the decoder's column."""

import json
import logging
import os
import subprocess

import pytest
from swift.dataset import load_dataset

from data_tools.partition import assign_client_ids
from swift_ext.data_check import check_conversations_file
from swift_ext.data_check.check import check_row
from swift_ext.federated.data_requirements import require_kept_rows, warn_clients_without_rows
from swift_ext.federated.dataset import RowTagger, write_checked_copy
from tests.conftest import BIN_DIR, OFFLINE_ENV, as_argv, tiny_lora_options

GOOD = {
    'conversations': [{'from': 'user', 'value': 'Open the clock'}, {'from': 'assistant', 'value': 'Open App: Clock'}]
}
ENDS_WITH_USER = {'conversations': GOOD['conversations'][:1]}  # the dataset check drops it (bad_roles)


def write_rows(path, rows):
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(row) + '\n' for row in rows)
    return str(path)


def load_tagged(path, client_num, tagger=None):
    tagger = tagger or RowTagger(client_num, 'iid', 42, assign_client_ids)
    with tagger.patched():
        return load_dataset([path], remove_unused_columns=False, shuffle=True, seed=42)


def test_invalid_json_is_reported_at_the_decoders_column():
    # A row cut off after 812 characters, right after a comma: the decoder expects a value at column 813. With the
    # line's newline kept, json.loads placed that on "line 2 column 1" and the check said "column 1".
    head = '{"conversations": [{"from": "user", "value": "'
    tail = '"}, '
    line = head + 'x' * (812 - len(head) - len(tail)) + tail
    assert len(line) == 812
    detail = check_row(line + '\n')['detail']
    assert detail.startswith('Expecting value at column 813')
    assert 'the row is cut off' in detail
    # A break inside the line is reported where it is: the colon missing after "a".
    broken = '{"conversations": [], "a" "b": 1}'
    column = broken.index('"b"') + 1
    assert check_row(broken + '\n')['detail'] == f"Expecting ':' delimiter at column {column}"


def test_a_client_id_error_names_the_users_file_and_line_when_another_row_was_dropped(tmp_path):
    rows = [{**GOOD, 'client_id': i % 4} for i in range(8)]
    rows[2] = {**ENDS_WITH_USER, 'client_id': 0}  # line 3: dropped by the check, so the copy's lines shift by one
    rows[5]['client_id'] = 9  # line 6 of the user's file, line 5 of the checked copy
    path = write_rows(tmp_path / 'episodes.jsonl', rows)
    tagger = RowTagger(4, 'iid', 42, assign_client_ids)
    checked = write_checked_copy(check_conversations_file(path), str(tmp_path / 'checked_episodes.jsonl'), tagger)
    with pytest.raises(ValueError) as error:
        load_tagged(checked, 4, tagger)
    assert f'{os.path.abspath(path)}:6 (client_id=9)' in str(error.value)
    assert 'checked_' not in str(error.value)


@pytest.mark.parametrize('via_checked_copy', [False, True])
def test_more_clients_than_episodes_says_so_with_the_numbers(tmp_path, via_checked_copy):
    rows = [{**GOOD, 'episode_id': i // 2} for i in range(12)]  # 12 rows, 6 episodes, no client column
    if via_checked_copy:
        rows[1] = {**ENDS_WITH_USER, 'episode_id': 0}
    path = write_rows(tmp_path / 'episodes.jsonl', rows)
    message = rf'{path}: 12 rows in 6 episodes .* fewer than --client_num 8: .* Lower --client_num to at most 6'
    with pytest.raises(ValueError, match=message):
        if via_checked_copy:  # the clients of a checked copy come from the whole original file
            tagger = RowTagger(8, 'iid', 42, assign_client_ids)
            write_checked_copy(check_conversations_file(path), str(tmp_path / 'checked.jsonl'), tagger)
        else:
            load_tagged(path, 8)
    assert sorted(set(load_tagged(path, 6)[0]['client_id'])) == list(range(6))  # one episode per client is fine


def test_no_row_left_after_the_check_is_an_error_with_the_counts(tmp_path):
    report = check_conversations_file(write_rows(tmp_path / 'bad.jsonl', [ENDS_WITH_USER] * 5))
    with pytest.raises(ValueError, match=r'5 rows read, 0 kept, 5 dropped \(bad_roles 5\): every row was dropped'):
        require_kept_rows(report, 'warning', None)
    with pytest.raises(ValueError, match=r'listed in /x/data_check_bad\.jsonl\.json'):
        require_kept_rows(report, 'discard', '/x/data_check_bad.jsonl.json')
    empty = tmp_path / 'empty.jsonl'
    empty.write_text('\n\n')
    with pytest.raises(ValueError, match='has no rows'):
        require_kept_rows(check_conversations_file(str(empty)), 'warning', None)
    require_kept_rows(check_conversations_file(write_rows(tmp_path / 'one.jsonl', [GOOD])), 'warning', None)


def test_clients_without_rows_are_named_at_start(caplog):
    from swift.utils import get_logger

    get_logger().addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            warn_clients_without_rows({0: 3, 1: 0, 2: 5, 3: 0})
            warn_clients_without_rows({0: 3, 1: 1})
    finally:
        get_logger().removeHandler(caplog.handler)
    assert [record.getMessage() for record in caplog.records] == [
        '[swift_ext] 2 of 4 clients have no training rows: [1, 3]. A round skips them when they are sampled; give '
        'them rows (`client_id` column) or lower --client_num.'
    ]


def failing_run(tiny_model_dir, dataset, output_dir, **options):
    """A one-round swift-fed run expected to stop at set-up with a usage error (exit 2, no traceback); returns its
    output."""
    argv = {**tiny_lora_options(tiny_model_dir, dataset, output_dir), 'round': 1, **options}
    result = subprocess.run(
        [str(BIN_DIR / 'swift-fed'), 'sft', *as_argv(argv)],
        env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    return result.stdout + result.stderr


def last_line(output):
    return [line for line in output.splitlines() if line.strip()][-1]


def test_swift_fed_stops_clearly_when_the_check_drops_every_row(tiny_model_dir, sample_jsonl, tmp_path):
    with open(sample_jsonl, encoding='utf-8') as f:  # 16 sample rows, each made to end with the user's turn
        rows = [{**row, 'conversations': row['conversations'][:-1]} for row in map(json.loads, f)]
    path = write_rows(tmp_path / 'all_bad.jsonl', rows)
    output = failing_run(tiny_model_dir, path, str(tmp_path / 'out'), client_num=4)
    assert 'StopIteration' not in output
    assert last_line(output) == (
        f'error: Dataset check: {path}: 16 rows read, 0 kept, 16 dropped (bad_roles 16): every row was dropped '
        'under --dataset_check_strategy warning, nothing is left to train on. Fix the rows (listed above), or check '
        'that --dataset names the right file.'
    )


def test_swift_fed_stops_clearly_with_more_clients_than_episodes(
    tiny_model_dir, sample_jsonl_without_clients, tmp_path
):
    output = failing_run(tiny_model_dir, sample_jsonl_without_clients, str(tmp_path / 'out'), client_num=40)
    assert 'IndexError' not in output
    assert last_line(output).startswith(
        f'error: {sample_jsonl_without_clients}: 16 rows in 16 episodes (a row without `episode_id` is an '
        'episode of its own), fewer than --client_num 40'
    )
