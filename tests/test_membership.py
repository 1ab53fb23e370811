"""Client membership is decided per raw row, so rows that ms-swift drops never move other rows between clients."""

import json
import os

import pytest
from swift.dataset import load_dataset

from data_tools.partition import assign_client_ids
from swift_ext.federated.dataset import (
    CLIENT_COLUMN,
    ROW_COLUMN,
    ClientMembership,
    RowTagger,
    describe_row,
    dropped_rows,
    file_line_numbers,
)

GOOD = {
    'conversations': [{'from': 'user', 'value': 'Open the clock'}, {'from': 'assistant', 'value': 'Open App: Clock'}]
}
BAD = {'conversations': [{'from': 'robot', 'value': 'x'}, {'from': 'assistant', 'value': 'y'}]}  # ms-swift drops it
NUM_ROWS, NUM_CLIENTS, BAD_ROW = 24, 4, 5


def write_rows(path, rows):
    with open(path, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')
    return str(path)


def rows_with_text(extra=lambda i: {}):
    return [
        {**GOOD, 'conversations': [{'from': 'user', 'value': f'step {i}'}, GOOD['conversations'][1]], **extra(i)}
        for i in range(NUM_ROWS)
    ]


def load_membership(path, client_num=NUM_CLIENTS):
    """Load through ms-swift's real loader (shuffled, as swift sft does) with the tagger; {raw row: client}."""
    tagger = RowTagger(client_num, 'iid', 42, assign_client_ids)
    with tagger.patched():
        train, _ = load_dataset([path], remove_unused_columns=False, shuffle=True, seed=42)
    return dict(zip(train[ROW_COLUMN], train[CLIENT_COLUMN])), tagger, train


def test_dropping_a_bad_row_keeps_every_other_row_on_its_client(tmp_path):
    clean_rows = rows_with_text()
    dirty_rows = list(clean_rows)
    dirty_rows[BAD_ROW] = BAD
    clean, _, _ = load_membership(write_rows(tmp_path / 'clean.jsonl', clean_rows))
    dirty, tagger, train = load_membership(write_rows(tmp_path / 'dirty.jsonl', dirty_rows))

    assert sorted(clean) == list(range(NUM_ROWS)) and BAD_ROW not in dirty
    assert dirty == {row: client for row, client in clean.items() if row != BAD_ROW}
    # The failure this guards against: partitioning the surviving rows instead would move rows to other clients.
    survivors = [row for row in range(NUM_ROWS) if row != BAD_ROW]
    naive = dict(zip(survivors, assign_client_ids(train.select(range(len(survivors))), NUM_CLIENTS, 'iid', 42)))
    assert any(naive[row] != clean[row] for row in survivors)

    assert dropped_rows(tagger.files, [train]) == [(tagger.files[0].path, BAD_ROW)]
    path = tagger.files[0].path
    assert describe_row(path, BAD_ROW, file_line_numbers(path)) == f'{path}:{BAD_ROW + 1}'


@pytest.mark.parametrize('column', ['client_id', 'client_number'])
def test_client_column_is_kept_per_row(tmp_path, column):
    rows = rows_with_text(lambda i: {column: (i * 7) % NUM_CLIENTS})
    rows[BAD_ROW] = {**BAD, column: 0}
    membership, _, train = load_membership(write_rows(tmp_path / 'clients.jsonl', rows))
    assert membership == {i: (i * 7) % NUM_CLIENTS for i in range(NUM_ROWS) if i != BAD_ROW}
    positions = ClientMembership.from_dataset(train, NUM_CLIENTS).positions
    for client, rows_of_client in positions.items():
        assert all(train[int(p)][CLIENT_COLUMN] == client for p in rows_of_client)
    assert sum(len(p) for p in positions.values()) == NUM_ROWS - 1


def test_out_of_range_client_ids_name_the_line(tmp_path):
    rows = rows_with_text(lambda i: {'client_id': i % NUM_CLIENTS})
    rows[3]['client_id'] = 9
    rows[10]['client_id'] = -1
    path = write_rows(tmp_path / 'bad_ids.jsonl', [rows[0], *rows[1:3]] + [rows[3]] + rows[4:])
    with pytest.raises(ValueError) as error:
        load_membership(path)
    message = str(error.value)
    assert f'{path}:4 (client_id=9)' in message and f'{path}:11 (client_id=-1)' in message
    assert '[0, 4)' in message


def test_rows_the_dataset_check_discards_move_no_other_row(tmp_path):
    """IID clients (no client column) with episodes: the check's copy of the good rows keeps every row's client."""
    from swift_ext.data_check import check_conversations_file
    from swift_ext.federated.dataset import write_checked_copy

    rows = rows_with_text(lambda i: {'episode_id': i // 2})  # two rows per episode
    bad_rows = {3: '{"conversations": [', 9: json.dumps({**BAD, 'episode_id': 4})}  # invalid JSON; bad roles
    dirty = write_rows(tmp_path / 'dirty.jsonl', rows)
    with open(dirty, 'w', encoding='utf-8') as f:
        f.writelines((bad_rows.get(i) or json.dumps(row)) + '\n' for i, row in enumerate(rows))
    # The same file with the bad lines replaced by good rows of the same episode (none for the invalid line).
    clean_rows = [({**row, 'episode_id': None} if i == 3 else row) for i, row in enumerate(rows)]
    clean, _, _ = load_membership(write_rows(tmp_path / 'clean.jsonl', clean_rows))

    report = check_conversations_file(dirty)
    assert sorted(bad.row for bad in report.bad) == sorted(bad_rows)
    tagger = RowTagger(NUM_CLIENTS, 'iid', 42, assign_client_ids)
    write_checked_copy(report, str(tmp_path / 'checked.jsonl'), tagger)
    with tagger.patched():
        train, _ = load_dataset([str(tmp_path / 'checked.jsonl')], remove_unused_columns=False, shuffle=True, seed=42)
    kept = dict(zip(train[ROW_COLUMN], train[CLIENT_COLUMN]))
    assert set(train['_fed_source']) == {os.path.abspath(dirty)}  # rows are named by the user's file and rows
    assert kept == {row: client for row, client in clean.items() if row not in bad_rows}
    assert dropped_rows(tagger.files, [train]) == [(os.path.abspath(dirty), row) for row in sorted(bad_rows)]


def test_line_numbers_skip_blank_lines(tmp_path):
    path = tmp_path / 'blank.jsonl'
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert file_line_numbers(str(path)) == [1, 3]
