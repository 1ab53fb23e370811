"""The bundled sample in unpacked form (``episode-wise-all.jsonl``): the unpacker's fields, wording and grounding,
so the converter and the partition command (with ``--split train``) can be tried without the 47 GB dataset."""

import json
import subprocess
import sys
from pathlib import Path

from data_tools.a11y import Element, element_at
from data_tools.actions import describe_action
from tests.conftest import read_jsonl

REPO = Path(__file__).resolve().parents[2]


def test_records_say_what_the_unpacker_would(sample_jsonl):
    root = Path(sample_jsonl).parent
    records = read_jsonl(root / 'episode-wise-all.jsonl')
    assert [record['episode_id'] for record in records] == list(range(16))
    for record in records:
        steps = len(record['imgs'])
        assert all(len(record[key]) == steps for key in ('acts_origin', 'acts_convert', 'elements', 'targets_bounds'))
        assert record['acts_origin'][-1] == '{"action_type":"status","goal_status":"successful"}'
        for action_json, wording, elements_file, image, box in zip(
            record['acts_origin'], record['acts_convert'], record['elements'], record['imgs'], record['targets_bounds']
        ):
            assert (root / image).is_file()
            elements = [Element(**element) for element in json.loads((root / elements_file).read_text())]
            action = json.loads(action_json)
            assert describe_action(action, elements) == wording  # data_tools.unpack's wording of the same action
            if action['action_type'] == 'click':
                assert box == element_at(action['x'], action['y'], elements).bounds
            else:
                assert box is None
    # every fifth episode is in the official-style test split
    assert [r['episode_id'] for r in records if r['split'] == 'test'] == [4, 9, 14]
    assert all(r['test_subsplits'] == (['IDD'] if r['split'] == 'test' else []) for r in records)


def test_converter_and_partition_run_on_the_sample(sample_jsonl, tmp_path):
    root = Path(sample_jsonl).parent
    converted = tmp_path / 'conversations.jsonl'
    convert = [sys.executable, str(REPO / 'scripts/convert_to_conversations.py'), '--input']
    convert += [str(root / 'episode-wise-all.jsonl'), '--output', str(converted), '--image_root', str(root)]
    subprocess.run([*convert, '--drop_if_missing'], check=True, capture_output=True, cwd=REPO)
    rows = read_jsonl(converted)
    originals = read_jsonl(sample_jsonl)  # the demo's conversations of the same episodes
    for row, original in zip(rows, originals, strict=True):
        answers = [turn['value'] for turn in row['conversations'] if turn['from'] == 'assistant']
        expected = [turn['value'] for turn in original['conversations'] if turn['from'] == 'assistant']
        assert answers == expected + ['Check status: successful']
        assert row['images'][:-1] == original['images']

    clients = tmp_path / 'clients' / 'train.jsonl'
    command = [sys.executable, '-m', 'data_tools.partition', '--input', str(converted), '--output', str(clients)]
    command += ['--split', 'train', '--method', 'dirichlet', '--partition_by', 'app', '--alpha', '0.5']
    command += ['--num_clients', '4', '--seed', '42']
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    partitioned = read_jsonl(clients)
    assert [row['episode_id'] for row in partitioned] == [e for e in range(16) if e % 5 != 4]
    assert {row['client_id'] for row in partitioned} <= {0, 1, 2, 3}
