"""``--client_column none``: data partitioned for one number of clients trains with another, the rows dealt anew
exactly as if they had no client column (and the dataset check's copy of the good rows keeps that partition);
with the column read, a --client_num the column cannot fill is an error that offers the option."""

import json
import os

import pytest
from swift.dataset import load_dataset

from data_tools.partition import assign_client_ids
from swift_ext.arguments.errors import UsageError
from swift_ext.federated.dataset import CLIENT_COLUMN, ROW_COLUMN, RowTagger, write_checked_copy

TURNS = [{'from': 'user', 'value': 'Open the clock'}, {'from': 'assistant', 'value': 'Open App: Clock'}]
GOOD = {'conversations': TURNS}
NUM_ROWS, PARTITIONED_FOR, CLIENT_NUM = 24, 10, 4


def write_rows(path, rows):
    path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
    return str(path)


def rows(with_client_id=True):
    """Two rows per episode; ``client_id`` from a 10-client partition (episode % 10)."""
    return [
        {**GOOD, 'episode_id': i // 2, **({'client_id': (i // 2) % PARTITIONED_FOR} if with_client_id else {})}
        for i in range(NUM_ROWS)
    ]


def membership(path, use_client_column):
    tagger = RowTagger(CLIENT_NUM, 'iid', 42, assign_client_ids, use_client_column)
    with tagger.patched():
        train, _ = load_dataset([path], remove_unused_columns=False, shuffle=True, seed=42)
    return dict(zip(train[ROW_COLUMN], train[CLIENT_COLUMN]))


def test_ignoring_the_column_deals_rows_as_if_it_were_absent(tmp_path):
    ignored = membership(write_rows(tmp_path / 'with.jsonl', rows()), use_client_column=False)
    fresh = membership(write_rows(tmp_path / 'without.jsonl', rows(with_client_id=False)), use_client_column=True)
    assert ignored == fresh and set(ignored.values()) == set(range(CLIENT_NUM))
    assert any(ignored[row] != (row // 2) % PARTITIONED_FOR for row in ignored)  # not the column's ids


def test_reading_a_column_with_more_clients_than_client_num_offers_the_option(tmp_path):
    with pytest.raises(UsageError, match='pass --client_num 10, or pass --client_column none'):
        membership(write_rows(tmp_path / 'with.jsonl', rows()), use_client_column=True)


def test_reading_a_column_with_fewer_clients_than_client_num_is_an_error(tmp_path):
    few = [{**row, 'client_id': row['client_id'] % 2} for row in rows()]  # clients 0 and 1 only
    with pytest.raises(UsageError, match=r'names 2 clients \(0..1\) but --client_num is 4'):
        membership(write_rows(tmp_path / 'few.jsonl', few), use_client_column=True)


def test_ignoring_the_column_needs_enough_episodes_for_the_clients(tmp_path):
    tagger = RowTagger(13, 'iid', 42, assign_client_ids, use_client_column=False)  # 12 episodes in the file
    with pytest.raises(UsageError, match='in 12 episodes .* fewer than --client_num 13'):
        with tagger.patched():
            load_dataset([write_rows(tmp_path / 'with.jsonl', rows())], remove_unused_columns=False)


def test_the_checked_copy_keeps_the_fresh_partition_when_the_column_is_ignored(tmp_path):
    from swift_ext.data_check import check_conversations_file

    bad_row = 5
    dirty_rows = rows()
    dirty_rows[bad_row] = {**dirty_rows[bad_row], 'conversations': [{'from': 'robot', 'value': 'x'}]}
    dirty = write_rows(tmp_path / 'dirty.jsonl', dirty_rows)
    expected = membership(write_rows(tmp_path / 'clean.jsonl', rows(with_client_id=False)), use_client_column=True)

    tagger = RowTagger(CLIENT_NUM, 'iid', 42, assign_client_ids, use_client_column=False)
    checked = write_checked_copy(check_conversations_file(dirty), str(tmp_path / 'checked.jsonl'), tagger)
    with tagger.patched():
        train, _ = load_dataset([checked], remove_unused_columns=False, shuffle=True, seed=42)
    assert set(train['_fed_source']) == {os.path.abspath(dirty)}
    kept = dict(zip(train[ROW_COLUMN], train[CLIENT_COLUMN]))
    assert kept == {row: client for row, client in expected.items() if row != bad_row}
