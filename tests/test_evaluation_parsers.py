"""Parsers: each prompt format the data pipeline writes (data_tools.prompts) parses back to its gold action;
model-style variations (case, whitespace, prose, fences) parse; garbage is counted as unparseable, never raised."""

import json

import pytest

from data_tools.actions import describe_action
from data_tools.prompts import PROMPT_FORMATS, Step
from swift_ext.evaluation.actions import UNPARSEABLE, Action, gold_action
from swift_ext.evaluation.parsers import PARSERS, parse_action, swipe_direction

GOLD_ACTIONS = [
    {'action_type': 'click', 'x': 1027, 'y': 209},
    {'action_type': 'long_press', 'x': 10, 'y': 20},
    {'action_type': 'scroll', 'direction': 'down'},
    {'action_type': 'scroll', 'direction': 'up'},
    {'action_type': 'scroll', 'direction': 'left'},
    {'action_type': 'scroll', 'direction': 'right'},
    {'action_type': 'open_app', 'app_name': 'PocketBook'},
    {'action_type': 'input_text', 'text': 'Orléans centre'},
    {'action_type': 'navigate_home'},
    {'action_type': 'navigate_back'},
    {'action_type': 'wait'},
    {'action_type': 'status', 'goal_status': 'successful'},
    {'action_type': 'status', 'goal_status': 'infeasible'},
]


def pipeline_answer(prompt_format: str, act: dict) -> str:
    """The assistant answer data_tools writes for ``act`` (no UI elements: clicks are described by their point)."""
    step = Step(instruction='', sub_instruction='', act_origin=act, act_convert=describe_action(act), img='x.png',
                screen_size=[1080, 2400])  # fmt: skip
    return PROMPT_FORMATS[prompt_format].answer(step)


@pytest.mark.parametrize('prompt_format', sorted(PARSERS))
@pytest.mark.parametrize('act', GOLD_ACTIONS, ids=lambda a: '-'.join(str(v) for v in a.values()))
def test_pipeline_answers_parse_to_the_gold_action(prompt_format, act):
    assert parse_action(pipeline_answer(prompt_format, act), prompt_format) == gold_action(act)


def test_every_pipeline_format_has_a_parser():
    assert set(PARSERS) == set(PROMPT_FORMATS)


VARIANTS = [
    ('fedmabench', '  click ON button   with the TEXT "Timer". ', Action('click', target='Timer')),
    ('fedmabench', 'Click on button with the function of "More options"', Action('click', target='More options')),
    ('fedmabench', 'Long_press on point (3, 4)', Action('long_press', point=(3.0, 4.0))),
    ('fedmabench', 'scroll   Down', Action('scroll', direction='down')),
    ('fedmabench', 'Type text:   hello World ', Action('input_text', text='hello World')),
    ('fedmabench', 'check status: Successful', Action('status', status='successful')),
    ('fedmabench', 'Click on the Timer tab', Action(UNPARSEABLE)),
    ('json', '```json\n{"action_type": "CLICK", "x": "540", "y": 1200.5}\n```', Action('click', point=(540.0, 1200.5))),
    ('json', 'I will scroll. {"action_type": "scroll", "direction": "Up"}', Action('scroll', direction='up')),
    ('json', '{"action_type": "click", "x": 5}', Action(UNPARSEABLE)),
    ('json', '{"action_type": "scroll", "direction": "sideways"}', Action(UNPARSEABLE)),
    ('json', '{"action_type": "fly"}', Action(UNPARSEABLE)),
    ('json', '{"action_type": "click", "x": [1], "y": 2}', Action(UNPARSEABLE)),
    ('mobile_use', '<tool_call>{"name": "mobile_use", "arguments": {"action": "Click", "coordinate": [1, 2]}}',
     Action('click', point=(1.0, 2.0))),
    ('mobile_use', '{"name": "mobile_use", "arguments": {"action": "system_button", "button": "home"}}',
     Action('navigate_home')),
    ('mobile_use', '<tool_call>{"name": "mobile_use", "arguments": {"action": "terminate", "status": "maybe"}}'
     '</tool_call>', Action(UNPARSEABLE)),
    ('mobile_use', '<tool_call>{"name": "mobile_use", "arguments": {"action": "swipe", "coordinate": [5, 5], '
     '"coordinate2": [5, 5]}}</tool_call>', Action(UNPARSEABLE)),
    ('mobile_use', '<tool_call>{"name": "mobile_use", "arguments": {"action": "key", "text": "enter"}}</tool_call>',
     Action(UNPARSEABLE)),
]  # fmt: skip


@pytest.mark.parametrize('prompt_format,text,expected', VARIANTS)
def test_model_style_variants(prompt_format, text, expected):
    assert parse_action(text, prompt_format) == expected


GARBAGE = [
    '', '   ', '\n\n\n', '{', '{}', '[1, 2]', 'null', '<tool_call>', '<tool_call>{"arguments": 3}</tool_call>',
    '{"action_type": null}', 'Click on point (a,b)', '\x00\ufffd', '{"name": "mobile_use", "arguments": []}',
]  # fmt: skip


@pytest.mark.parametrize('prompt_format', sorted(PARSERS))
def test_garbage_is_unparseable_not_an_error(prompt_format):
    for text in [*GARBAGE, None]:
        assert parse_action(text, prompt_format).type == UNPARSEABLE, text


@pytest.mark.parametrize(
    'start,end,direction',
    [
        # Finger moves up the screen -> the content scrolls down (Android-Control / data_tools convention).
        ((540, 1800), (540, 600), 'down'),
        ((540, 600), (540, 1800), 'up'),
        ((810, 1200), (270, 1200), 'right'),
        ((270, 1200), (810, 1200), 'left'),
        ((540, 1800), (500, 600), 'down'),  # the dominant axis decides
    ],
)
def test_swipe_direction_convention(start, end, direction):
    assert swipe_direction(start, end) == direction


def test_unknown_format_names_the_choices():
    with pytest.raises(ValueError, match='mobile_use'):
        parse_action('x', 'xml')


def test_gold_action_errors_name_the_field():
    from swift_ext.evaluation.actions import GoldActionError

    with pytest.raises(GoldActionError, match="lacks field 'y'"):
        gold_action(json.dumps({'action_type': 'click', 'x': 1}))
