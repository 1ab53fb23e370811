"""Action descriptions on real Android-Control test annotations (tests/fixtures/android_control, see PROVENANCE.md)."""

import json
from pathlib import Path

import pytest

from data_tools.a11y import Element
from data_tools.actions import ActionError, describe_action, parse_action
from data_tools.splits import EpisodeSplits

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'android_control'
REAL_ROWS = json.loads((FIXTURES / 'uir1_ac_test_rows.json').read_text(encoding='utf-8'))

# Expected FedMABench wording, written from FedMABench's describe_action for each row of the fixture, in order.
# Without accessibility trees a click has no element to name, so it reads "Click on point (x,y)".
EXPECTED = [
    'Open App: PocketBook',
    'Click on point (1027,209)',
    'Click on point (843,231)',
    'Click on point (780,861)',
    'Click on point (754,861)',
    'Click on point (54,525)',
    'Type text: natalie.larson1998@gmail.com',
    'Click on point (890,218)',
    'Open App: Artsy',
    'Go back to the previous page',
    'Scroll down',
    'Scroll right',
    'Scroll up',
    'Scroll left',
    'Click on point (1293,2847)',
    'Open App: Todoist',
    'Type text: Orléans centre',
]


def test_real_rows_cover_every_action_type_in_the_annotations():
    assert {row['gt']['action_type'] for row in REAL_ROWS} == {
        'open_app',
        'click',
        'input_text',
        'navigate_back',
        'scroll',
    }
    assert REAL_ROWS[15]['task'] == ''  # a real empty step instruction


@pytest.mark.parametrize('index', range(len(REAL_ROWS)))
def test_real_row_descriptions(index):
    gt = REAL_ROWS[index]['gt']
    assert describe_action(parse_action(json.dumps(gt))) == EXPECTED[index]


def _element(bounds, text='', desc='', tooltip='', hint=''):
    return Element(bounds, text, desc, tooltip, hint, resource_id='', class_name='', clickable=True)


def test_press_names_text_then_tooltip_then_description_then_point():
    """FedMABench's describe_action: 'text' (cut to 50 characters), else 'tooltip_text', else 'content-desc' (cut to
    50), else the point; hint text alone names nothing."""
    press = {'action_type': 'click', 'x': 5, 'y': 5}
    box = [0, 0, 10, 10]
    cases = [
        (_element(box, text='OK', desc='Confirm', tooltip='Tip'), 'Click on button with the text "OK"'),
        (_element(box, desc='Confirm', tooltip='Tip ' * 20), f'Click on button with the text "{"Tip " * 20}"'),
        (_element(box, desc='d' * 60), f'Click on button with the function of "{"d" * 50}"'),
        (_element(box, hint='To'), 'Click on point (5,5)'),
        (_element([20, 20, 30, 30], text='Far'), 'Click on point (5,5)'),
    ]
    assert [describe_action(press, [element]) for element, _ in cases] == [wording for _, wording in cases]


@pytest.mark.parametrize(('wording', 'verb'), [('default', 'Long press'), ('fedmabench', 'Long_press')])
def test_long_press_verb_per_wording(wording, verb):
    press = {'action_type': 'long_press', 'x': 5, 'y': 5}
    assert (
        describe_action(press, [_element([0, 0, 10, 10], text='Photo')], wording)
        == f'{verb} on button with the text "Photo"'
    )
    assert describe_action(press, (), wording) == f'{verb} on point (5,5)'
    assert describe_action({'action_type': 'click', 'x': 1, 'y': 2}, (), wording) == 'Click on point (1,2)'


def test_unknown_wording_is_refused():
    with pytest.raises(ValueError, match="wording='aitw'; choose one of"):
        describe_action({'action_type': 'wait'}, (), 'aitw')


def test_missing_wait_and_home_actions_use_fedmabench_wording():
    assert describe_action({'action_type': 'wait'}) == 'Wait for response'
    assert describe_action({'action_type': 'navigate_home'}) == 'Return to the home page'
    assert describe_action({'action_type': 'long_press', 'x': 3, 'y': 4}) == 'Long press on point (3,4)'


@pytest.mark.parametrize(
    ('action_json', 'message'),
    [
        ('{"action_type": "swipe"}', "unknown action_type 'swipe'"),
        ('{"action_type": "open_app"}', "open_app action lacks field 'app_name'"),
        ('{"x": 1}', 'action has no action_type'),
        ('click(1, 2)', 'action is not JSON'),
    ],
)
def test_bad_actions_raise_with_the_reason(action_json, message):
    with pytest.raises(ActionError, match=message.replace('(', r'\(')):
        describe_action(parse_action(action_json))


def test_official_test_subsplits_fixture():
    splits = EpisodeSplits.from_files(None, str(FIXTURES / 'test_subsplits.json'))
    assert splits.test_subsplits(4790) == ['IDD']
    assert splits.test_subsplits(53) == ['app_unseen', 'category_unseen', 'task_unseen']
    assert splits.split(4790) is None
