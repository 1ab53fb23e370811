"""Click resolution on accessibility forests, case by case, as FedMABench resolves clicks.

Each expected wording and target box follows the rules of ``data_tools.a11y.screen_elements`` written down from
FedMABench (wwh0411/FedMABench at 417d8b0: ``data_process/utils/node_process.py`` and
``2_gen_jsonl_from_unpack_ac.py``); every case was also run through those scripts themselves (TensorFlow, which they
only use to decode images, stubbed out) and gave the same wording and box.
"""

import pytest

from data_tools.a11y import screen_elements
from data_tools.actions import describe_action
from data_tools.unpack import target_bounds
from tests.data_tools.synthetic import SCREEN, forest, forest_of, window

HEADLINE = 'Council approves the riverside park, two bridges and bike la'  # 60 characters

ROW = forest(
    [
        {'bounds': [0, 1000, 1080, 1200], 'is_clickable': True, 'child_ids': [1]},  # center (540, 1100)
        {'bounds': [300, 1050, 780, 1150], 'text': 'Directions'},
    ]
)
MAP = forest(
    [
        {'bounds': [0, 200, 1080, 1800], 'content_description': 'Google Map', 'child_ids': [1, 2]},
        {'bounds': [300, 300, 780, 400], 'text': 'Search here', 'is_clickable': True},
        {'bounds': [900, 1500, 1040, 1640], 'is_clickable': True, 'class_name': 'android.widget.ImageButton'},
    ]
)
CHIP = forest(
    [
        {
            'bounds': [100, 300, 400, 400],
            'content_description': 'Filter by price',
            'is_clickable': True,
            'child_ids': [1],
        },
        {'bounds': [100, 300, 400, 400], 'text': 'Price'},
    ]
)
NAV_BAR = forest_of(
    [
        window(
            [
                {'bounds': [0, 200, 1080, 400], 'text': 'Inbox', 'is_clickable': True},
                {'bounds': [600, 2300, 1080, 2400], 'text': 'Compose', 'is_clickable': True},  # under the nav bar
            ],
            layer=0,
        ),
        window(
            [{'bounds': [100, 2274, 300, 2400], 'content_description': 'Back', 'is_clickable': True}],
            layer=2,
            window_type=3,  # TYPE_SYSTEM
            is_active=False,
            bounds=[0, 2274, 1080, 2400],
        ),
    ]
)
SCREEN_EDGE = forest(
    [
        {'bounds': [540, 2337, 1080, 2437], 'text': 'Load more'},  # 37 of 100 rows below the screen: 37% off
        {'bounds': [0, 2305, 500, 2405], 'text': 'Footer'},  # 5% off
    ]
)
COMPOSE = forest(
    [
        {'bounds': [0, 400, 1080, 520], 'hint_text': 'To', 'is_clickable': True, 'is_editable': True},
        {'bounds': [0, 520, 1080, 640], 'hint_text': 'Subject', 'is_clickable': True, 'is_editable': True},
    ]
)
IME_ID = 'com.google.android.inputmethod.latin:id/'
KEYBOARD = forest_of(
    [
        window(
            [
                {'bounds': [0, 200, 1080, 320], 'text': 'pizza', 'is_clickable': True},
                {'bounds': [0, 1700, 1080, 1900], 'text': 'Pizza Hut', 'is_clickable': True},  # under the keyboard
            ],
            layer=0,
        ),
        window(
            [
                {
                    'bounds': [0, 1600, 108, 1750],
                    'content_description': 'q',
                    'view_id_resource_name': IME_ID + 'key_pos_0_0',
                },
                {
                    'bounds': [900, 2100, 1080, 2274],
                    'content_description': 'Search',
                    'view_id_resource_name': IME_ID + 'key_pos_ime_action',
                },
            ],
            layer=1,
            window_type=2,  # TYPE_INPUT_METHOD
            is_active=False,
            bounds=[0, 1600, 1080, 2274],
        ),
    ]
)
TOOLBAR = forest(
    [
        {
            'bounds': [980, 100, 1080, 200],
            'tooltip_text': 'More options',
            'content_description': 'Menu',
            'is_clickable': True,
        },
        {'bounds': [0, 700, 540, 800], 'text': 'Left'},
        {'bounds': [0, 700, 540, 800], 'content_description': 'Left icon'},
        {'bounds': [0, 500, 1080, 600], 'text': HEADLINE},
    ]
)
SEND = forest(
    [
        {'bounds': [0, 900, 1080, 1000], 'is_clickable': True, 'child_ids': [1]},
        {'bounds': [0, 900, 1080, 1000], 'child_ids': [2]},  # no text, description, hint or click: not a candidate
        {'bounds': [400, 920, 680, 980], 'text': 'Send'},
    ]
)
NOT_XML = forest(
    [
        {'bounds': [0, 200, 1080, 300], 'text': 'OK', 'is_clickable': True},
        {'bounds': [0, 400, 1080, 500], 'text': 'Page\x0b2'},  # a vertical tab: XML 1.0 forbids it
    ]
)
ANONYMOUS_CLASS = forest(
    [{'bounds': [0, 200, 1080, 300], 'text': 'OK', 'is_clickable': True, 'class_name': 'com.example.Adapter$1'}]
)

# (id, forest, click point, wording, target box); "was": the previous answer where it differed
# fmt: off
CASES = [
    # was: on point, no box
    ('row-outside-its-text', ROW, (1000, 1100), 'Click on button with the text "Directions"', [0, 1000, 1080, 1200]),
    # was: function of "Google Map", the map's box
    ('button-in-described-map', MAP, (970, 1570), 'Click on point (970,1570)', [900, 1500, 1040, 1640]),
    # was: function of "Filter by price"
    ('chip-and-same-size-text', CHIP, (250, 350), 'Click on button with the text "Price"', [100, 300, 400, 400]),
    # was: all 60 characters
    ('headline-cut', TOOLBAR, (540, 550), f'Click on button with the text "{HEADLINE[:50]}"', [0, 500, 1080, 600]),
    # was: function of "Back"
    ('back-of-inactive-nav-bar', NAV_BAR, (200, 2337), 'Click on point (200,2337)', None),
    # was: text "Compose"
    ('app-node-under-nav-bar', NAV_BAR, (800, 2350), 'Click on point (800,2350)', None),
    ('active-window-node', NAV_BAR, (540, 300), 'Click on button with the text "Inbox"', [0, 200, 1080, 400]),
    # was: text "Load more"
    ('text-37%-off-screen', SCREEN_EDGE, (800, 2350), 'Click on point (800,2350)', None),
    ('text-5%-off-screen', SCREEN_EDGE, (200, 2350), 'Click on button with the text "Footer"', [0, 2305, 500, 2405]),
    # was: no box
    ('hint-only-edit-text', COMPOSE, (540, 460), 'Click on point (540,460)', [0, 400, 1080, 520]),
    ('ime-action-key', KEYBOARD, (990, 2200), 'Click on button with the function of "Search"', [900, 2100, 1080, 2274]),
    # was: function of "q"
    ('other-keyboard-key', KEYBOARD, (50, 1700), 'Click on point (50,1700)', None),
    # was: text "Pizza Hut"
    ('app-node-under-keyboard', KEYBOARD, (540, 1800), 'Click on point (540,1800)', None),
    ('tooltip-first', TOOLBAR, (1030, 150), 'Click on button with the text "More options"', [980, 100, 1080, 200]),
    ('equal-areas-first-in-order', TOOLBAR, (270, 750), 'Click on button with the text "Left"', [0, 700, 540, 800]),
    # was: no box
    ('text-two-levels-down', SEND, (50, 950), 'Click on point (50,950)', [0, 900, 1080, 1000]),
    ('text-two-levels-down-itself', SEND, (540, 950), 'Click on button with the text "Send"', [400, 920, 680, 980]),
    # was: text "OK"
    ('character-xml-forbids', NOT_XML, (540, 250), 'Click on point (540,250)', None),
    # was: text "OK"
    ('class-name-no-xml-tag', ANONYMOUS_CLASS, (540, 250), 'Click on point (540,250)', None),
    ('outside-every-element', ROW, (540, 2000), 'Click on point (540,2000)', None),
]
# fmt: on


@pytest.mark.parametrize(('tree', 'point', 'wording', 'box'), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_click_resolution(tree, point, wording, box):
    elements = screen_elements(tree, *SCREEN)
    click = {'action_type': 'click', 'x': point[0], 'y': point[1]}
    assert (describe_action(click, elements), target_bounds(click, elements)) == (wording, box)


def test_single_child_is_merged_into_its_parent():
    """The chip keeps its box and description, takes its child's text; the child is no element of its own."""
    (chip,) = screen_elements(CHIP, *SCREEN)
    assert (chip.bounds, chip.text, chip.content_description, chip.clickable) == (
        [100, 300, 400, 400],
        'Price',
        'Filter by price',
        True,
    )


def test_elements_follow_window_layers_then_tree_order():
    """The top window's nodes come first (the keyboard's action key), then the active app's visible ones."""
    assert [e.text or e.content_description for e in screen_elements(KEYBOARD, *SCREEN)] == ['Search', 'pizza']
    assert [e.text or e.content_description for e in screen_elements(NAV_BAR, *SCREEN)] == ['Inbox']
