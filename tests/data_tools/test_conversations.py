"""Step-/episode-wise records -> sharegpt conversations: prompts, answers per format, kept columns, drops."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.conversations import ConvertOptions, DropReport, convert_records
from data_tools.jsonl import iter_jsonl
from tests.conftest import read_jsonl

REPO = Path(__file__).resolve().parents[2]


def convert(path, **options):
    report = DropReport()
    rows = list(convert_records(iter_jsonl(str(path)), ConvertOptions(**options), report))
    return rows, report


def answers(row):
    return [turn['value'] for turn in row['conversations'] if turn['from'] == 'assistant']


def test_rows_carry_grounded_golds_that_the_evaluation_uses(unpacked):
    from swift_ext.evaluation.matching import MatchOptions
    from swift_ext.evaluation.scoring import judge
    from swift_ext.evaluation.steps import conversation_steps

    out, _ = unpacked
    rows, _ = convert(out / 'step-wise-all.jsonl', image_root=str(out), prompt_format='json')
    click = rows[1]
    assert [json.loads(a) for a in click['acts_origin']] == [
        {'action_type': 'click', 'x': 540, 'y': 1200, 'bounds': [0, 1100, 1080, 1300]}
    ]
    assert click['screen_sizes'] == [[1080, 2400]]
    (step,) = conversation_steps(click, 'json', 'row 2', 2)
    # (10, 1110) is inside the Wi-Fi row but 0.20 of the diagonal from the gold point: the box decides.
    inside = '{"action_type": "click", "x": 10, "y": 1110}'
    assert judge(step, inside, 'json', MatchOptions()).step_correct
    outside = '{"action_type": "click", "x": 540, "y": 1310}'  # 110 px from gold, but below the box
    assert not judge(step, outside, 'json', MatchOptions()).step_correct


def test_step_wise_rows_are_single_turn_with_absolute_images_and_kept_columns(unpacked):
    out, _ = unpacked
    rows, report = convert(out / 'step-wise-all.jsonl', image_root=str(out))
    assert report.converted == 13 and not report.counts
    click = rows[1]
    assert [t['from'] for t in click['conversations']] == ['user', 'assistant']
    assert answers(click) == ['Click on button with the text "Wi-Fi"']
    assert click['images'] == [str(out / 'episodes/101/01.png')]
    assert os.path.isabs(click['images'][0])
    assert click['conversations'][0]['value'].count('<image>') == 1
    assert '### User Instruction ###\nTurn on Wi-Fi in Settings\n' in click['conversations'][0]['value']
    assert {k: click[k] for k in ('episode_id', 'step', 'app', 'category', 'split')} == {
        'episode_id': 101,
        'step': 1,
        'app': 'Settings',
        'category': 'Tools',
        'split': 'train',
    }


def test_episode_wise_rows_alternate_turns_one_screenshot_each(unpacked):
    out, _ = unpacked
    rows, _ = convert(out / 'episode-wise-all.jsonl', image_root=str(out), level='low')
    assert [r['episode_id'] for r in rows] == [101, 202, 303]
    wifi = rows[0]
    roles = [t['from'] for t in wifi['conversations']]
    assert roles == ['user', 'assistant'] * 6
    assert sum(t['value'].count('<image>') for t in wifi['conversations']) == len(wifi['images']) == 6
    assert answers(wifi)[-1] == 'Check status: successful'
    users = [t['value'] for t in wifi['conversations'] if t['from'] == 'user']
    assert '### Subordinate Instruction ###\nOpen the Settings app' in users[0]
    assert users[1] == '<image>'  # empty step instruction: no section
    assert users[2] == '<image>### Subordinate Instruction ###\nLong press the wifi icon'
    assert wifi['images'][5] == str(out / 'episodes/101/05.png')


def test_high_level_prompt_has_no_step_instruction_and_history_lists_previous_actions(unpacked):
    out, _ = unpacked
    rows, _ = convert(out / 'step-wise-all.jsonl', history=True)
    prompt = rows[2]['conversations'][0]['value']
    assert 'Subordinate Instruction' not in prompt
    assert '### Action History ###\n1. Open App: Settings\n2. Click on button with the text "Wi-Fi"\n\n' in prompt
    assert 'Action History' not in rows[6]['conversations'][0]['value']  # episode 202 starts afresh
    assert '1. Return to the home page\n' in rows[7]['conversations'][0]['value']


def test_json_and_mobile_use_answers(unpacked):
    out, _ = unpacked
    as_json, _ = convert(out / 'step-wise-all.jsonl', prompt_format='json')
    assert [json.loads(answers(r)[0]) for r in as_json[1:3]] == [
        {'action_type': 'click', 'x': 540, 'y': 1200},
        {'action_type': 'long_press', 'x': 90, 'y': 1200},
    ]
    tool, _ = convert(out / 'step-wise-all.jsonl', prompt_format='mobile_use')

    def call(i):
        text = answers(tool[i])[0]
        assert text.startswith('<tool_call>\n') and text.endswith('\n</tool_call>')
        payload = json.loads(text.split('\n')[1])
        assert payload['name'] == 'mobile_use'
        return payload['arguments']

    assert call(0) == {'action': 'open', 'text': 'Settings'}
    assert call(1) == {'action': 'click', 'coordinate': [540, 1200]}
    # scroll down on 1080x2400: the finger moves up from 3/4 to 1/4 of the height through the centre
    assert call(4) == {'action': 'swipe', 'coordinate': [540, 1800], 'coordinate2': [540, 600]}
    assert call(5) == {'action': 'terminate', 'status': 'success'}
    assert call(6) == {'action': 'system_button', 'button': 'Home'}
    assert call(9) == {'action': 'type', 'text': 'héllo'}
    assert call(10) == {'action': 'wait', 'time': 2}


def test_every_dropped_record_is_counted_with_its_reason(tmp_path):
    image = tmp_path / 'a.png'
    image.write_bytes(b'png')
    step = {'episode_id': 1, 'instruction': 'g', 'act_origin': '{"action_type": "wait"}', 'act_convert': 'Wait'}
    lines = [
        json.dumps({**step, 'img': 'a.png'}),
        json.dumps({**step, 'img': 'missing.png'}),
        json.dumps({**step, 'img': 'a.png', 'act_convert': ''}),  # the public converter's empty assistant turn
        '{not json',
        json.dumps({'episode_id': 2, 'instruction': 'g', 'img': 'a.png'}),
        json.dumps({'episode_id': 3, 'instruction': 'g', 'imgs': ['a.png'], 'acts_convert': ['Wait', 'Wait']}),
        json.dumps({'episode_id': 4, 'instruction': 'g', 'img': 'a.png', 'act_origin': 'tap'}),
        json.dumps({'episode_id': 5, 'imgs': ['a.png'], 'acts_convert': ['Wait']}),
    ]
    source = tmp_path / 'in.jsonl'
    source.write_text('\n'.join(lines) + '\n')
    rows, report = convert(source, image_root=str(tmp_path), drop_if_missing=True)
    assert [answers(r) for r in rows] == [['Wait']]
    assert report.to_dict() == {
        'converted': 1,
        'dropped': {
            'missing image': 1,
            'unanswerable': 1,
            'invalid line': 1,
            'no action field': 1,
            'length mismatch': 1,
            'bad act_origin': 1,
            'missing field': 1,
        },
        'examples': {
            'missing image': [f'line 2: {tmp_path / "missing.png"}'],
            'unanswerable': ['line 3: empty act_convert'],
            'invalid line': [
                'line 4: invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)'
            ],
            'no action field': ['line 5: neither act_origin/act_convert (step-wise) nor acts_* (episode-wise)'],
            'length mismatch': ['line 6: acts_convert has 2 values, imgs has 1'],
            'bad act_origin': ["line 7: action is not JSON (Expecting value: line 1 column 1 (char 0)): 'tap'"],
            'missing field': ['line 8: instruction'],
        },
    }
    kept, report = convert(source, image_root=str(tmp_path))
    assert len(kept) == 2 and 'missing image' not in report.counts


def test_mobile_use_scroll_without_screen_size_is_dropped(tmp_path):
    source = tmp_path / 'in.jsonl'
    source.write_text(
        json.dumps({'instruction': 'g', 'img': 'a.png', 'act_origin': '{"action_type": "scroll", "direction": "down"}'})
    )
    rows, report = convert(source, prompt_format='mobile_use')
    assert rows == [] and report.counts == {'unanswerable': 1}


def test_unknown_options_name_the_choices():
    with pytest.raises(ValueError, match="prompt_format='xml'; choose one of"):
        ConvertOptions(prompt_format='xml')
    with pytest.raises(ValueError, match="level='mid'"):
        ConvertOptions(level='mid')


def test_cli_writes_rows_and_report(unpacked, tmp_path):
    out, _ = unpacked
    target = tmp_path / 'conv.jsonl'
    command = [sys.executable, str(REPO / 'scripts/convert_to_conversations.py'), '--input']
    command += [str(out / 'episode-wise-all.jsonl'), '--output', str(target), '--image_root', str(out)]
    command += ['--drop_if_missing', '--prompt_format', 'json']
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert '3 rows written' in result.stderr
    rows = read_jsonl(target)
    assert [len(r['images']) for r in rows] == [6, 2, 5]
    assert json.loads((tmp_path / 'conv.jsonl.report.json').read_text()) == {
        'input': str(out / 'episode-wise-all.jsonl'),
        'converted': 3,
        'dropped': {},
        'examples': {},
    }
