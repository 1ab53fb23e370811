"""Run logs and resume discovery under what real machines do: a full disk or a kill in the middle of an append, a
run killed before its first checkpoint, a resume with other arguments."""

import errno
import json
import logging
import os
from dataclasses import dataclass, field

import pytest
import torch

from swift_ext.federated import jsonl_log
from swift_ext.federated.checkpoint import CheckpointStore
from swift_ext.federated.jsonl_log import append_row, drop_incomplete_tail, read_rows
from swift_ext.federated.resume import check_resumable, find_resumable_run
from swift_ext.federated.round_loop import RoundLoop, RoundPlan
from swift_ext.federated.run_log import FedRunLog

ROWS = [{'type': 'client', 'round': 1, 'client': 0, 'samples': 4}, {'type': 'round', 'round': 1, 'loss': 1.5}]
PARTIAL = '{"type": "client", "samp'  # what a disk-full append left in the run


@pytest.fixture
def swift_log(caplog):
    """Records of ms-swift's logger (it does not propagate to the root logger caplog listens on)."""
    from swift.utils import get_logger

    logger = get_logger()
    logger.addHandler(caplog.handler)
    with caplog.at_level(logging.INFO):
        yield caplog
    logger.removeHandler(caplog.handler)


def write_log(path, rows, tail=''):
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(row) + '\n' for row in rows)
        f.write(tail)
    return str(path)


def test_an_incomplete_last_line_is_dropped_with_its_file_and_byte_offset(tmp_path, swift_log):
    path = write_log(tmp_path / 'fed_log.jsonl', ROWS, PARTIAL)
    offset = os.path.getsize(path) - len(PARTIAL)  # where the cut row starts
    assert read_rows(path) == ROWS
    assert f'{path}: dropping an incomplete last line at byte offset {offset}' in swift_log.text

    drop_incomplete_tail(path)
    with open(path, encoding='utf-8') as f:
        assert f.read() == ''.join(json.dumps(row) + '\n' for row in ROWS)


def test_a_damaged_complete_line_names_the_file_and_line(tmp_path):
    path = write_log(tmp_path / 'fed_log.jsonl', ROWS)
    damaged = '{"type": "round", "round": 2, "loss": }'
    with open(path, 'a', encoding='utf-8') as f:
        f.write(damaged + '\n')
    column = damaged.index('}') + 1  # where a value was expected
    with pytest.raises(ValueError, match=rf'{path}:3: not valid JSON \(Expecting value at column {column}\)'):
        read_rows(path)


def test_an_append_that_hits_a_full_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = write_log(tmp_path / 'fed_log.jsonl', ROWS)
    before = open(path, 'rb').read()
    real_write = os.write

    def disk_full_after_ten_bytes(fd, data):
        """What the kernel does on a nearly full disk: a short write, then ENOSPC."""
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(jsonl_log.os, 'write', disk_full_after_ten_bytes)
    with pytest.raises(OSError, match='No space left'):
        append_row(path, {'type': 'eval', 'round': 1, 'eval_loss': 2.0})
    monkeypatch.undo()
    assert open(path, 'rb').read() == before
    append_row(path, {'type': 'eval', 'round': 1, 'eval_loss': 2.0})
    assert read_rows(path) == [*ROWS, {'type': 'eval', 'round': 1, 'eval_loss': 2.0}]


def test_truncate_after_repairs_the_log_and_keeps_rounds_up_to_the_checkpoint(tmp_path, swift_log):
    run_log = FedRunLog(str(tmp_path), str(tmp_path / 'runs'))
    round_two = [{**row, 'round': 2} for row in ROWS]
    write_log(run_log.path, [*ROWS, *round_two], PARTIAL)
    run_log.truncate_after(1)
    assert read_rows(run_log.path) == ROWS
    assert 'incomplete last line' in swift_log.text
    assert not os.path.exists(f'{run_log.path}.tmp')
    run_log.close()


@dataclass
class NoCheckpointStrategy:
    """resume() must not touch the strategy when there is no checkpoint."""

    loaded: list = field(default_factory=list)

    def load_state_dict(self, state):
        self.loaded.append(state)


def plan(**changes):
    options = dict(fed_alg='fedavg', rounds=3, client_num=4, client_sample=2, seed=42, weighting='samples',
                   save_every=1, client_failure='skip')  # fmt: skip
    return RoundPlan(**{**options, **changes})


def test_resume_without_a_checkpoint_starts_round_one_and_drops_the_killed_attempts_rows(tmp_path, swift_log):
    run_log = FedRunLog(str(tmp_path), str(tmp_path / 'runs'))
    write_log(run_log.path, ROWS, PARTIAL)  # round 1 was logged, the process died before its checkpoint
    strategy = NoCheckpointStrategy()
    loop = RoundLoop(plan(), strategy, transport=None, global_model=None, store=CheckpointStore(str(tmp_path)),
                     run_log=run_log)  # fmt: skip
    fresh = {'w': torch.ones(2)}
    assert loop.resume(fresh) == (fresh, 0)
    assert read_rows(run_log.path) == [] and strategy.loaded == []
    assert 'no complete round' in swift_log.text and 'starting round 1 again' in swift_log.text
    run_log.close()


def make_run(output_dir, name, args=None, checkpoint_meta=None):
    """A run directory as ms-swift and the round loop leave it: args.json, and a round checkpoint when given."""
    run_dir = os.path.join(output_dir, name)
    os.makedirs(run_dir)
    if args is not None:
        with open(os.path.join(run_dir, 'args.json'), 'w', encoding='utf-8') as f:
            json.dump(args, f)
    if checkpoint_meta is not None:
        CheckpointStore(run_dir).save(1, {'w': torch.ones(1)}, {}, checkpoint_meta)
    return run_dir


IDENTITY = {'fed_alg': 'scaffold', 'client_num': 4, 'seed': 42, 'secure_aggregation': 'none'}


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(tmp_path):
    output_dir = str(tmp_path)
    make_run(output_dir, 'v0-20260101-000000', {**IDENTITY, 'round': 3}, checkpoint_meta=IDENTITY)
    killed = make_run(output_dir, 'v1-20260102-000000', {**IDENTITY, 'round': 3})  # no fed_checkpoint yet
    make_run(output_dir, 'v2-20260103-000000')  # stopped before args.json: nothing federated to resume
    os.utime(killed, (2e9, 2e9))  # the newest federated run
    assert find_resumable_run('true', output_dir) == killed
    assert find_resumable_run(killed, None) == killed
    assert check_resumable(killed, IDENTITY).rounds_done == 0
    with pytest.raises(ValueError, match='not a federated run directory'):
        find_resumable_run(os.path.join(output_dir, 'v2-20260103-000000'), None)


def test_a_run_killed_while_ms_swift_wrote_args_json_starts_round_one(tmp_path, swift_log):
    killed = make_run(str(tmp_path), 'v0-20260101-000000')
    with open(os.path.join(killed, 'args.json'), 'w', encoding='utf-8') as f:
        f.write('{\n  "model": "/models/Qwen2-VL-2B-Instruct",\n  "fed_al')  # ms-swift writes it in place
    assert find_resumable_run('true', str(tmp_path)) == killed
    assert check_resumable(killed, IDENTITY).rounds_done == 0
    assert f'{killed}/args.json is incomplete' in swift_log.text and 'starts round 1' in swift_log.text


@pytest.mark.parametrize('with_checkpoint', [True, False])
def test_a_refused_resume_names_the_recorded_arguments(tmp_path, with_checkpoint):
    run_dir = make_run(str(tmp_path), 'v0-x', IDENTITY, checkpoint_meta=IDENTITY if with_checkpoint else None)
    source = 'meta.json' if with_checkpoint else 'args.json'
    with pytest.raises(ValueError, match=rf'{source} records --fed_alg scaffold \(given: fedavg\)') as error:
        check_resumable(run_dir, {**IDENTITY, 'fed_alg': 'fedavg'})
    assert 'client_num' not in str(error.value)  # only what differs is named


def test_a_run_recorded_before_secure_aggregation_existed_resumes_only_without_it(tmp_path):
    """Checkpoints written before --secure_aggregation was part of the identity lack the key: they were 'none'."""
    old_identity = {key: value for key, value in IDENTITY.items() if key != 'secure_aggregation'}
    run_dir = make_run(str(tmp_path), 'v0-x', old_identity, checkpoint_meta=old_identity)
    assert check_resumable(run_dir, IDENTITY).rounds_done == 1
    with pytest.raises(ValueError, match=r'meta.json records --secure_aggregation none \(given: secaggplus\)'):
        check_resumable(run_dir, {**IDENTITY, 'secure_aggregation': 'secaggplus'})
