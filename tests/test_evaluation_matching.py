"""The action-matching rules, one table row per case, each written from the definitions in the issue (AitW /
OS-Atlas / Qwen2.5-VL evaluation), not from the code: point in the (enlarged) gold box, else within 14% of the
screen diagonal; text by normalised match, containment or token F1 > 0.5; scroll by direction; back/home/wait by
type. Containment counts only as whole tokens covering at least half of the longer text (issue 10, item 11)."""

import math

import pytest

from swift_ext.evaluation.actions import UNPARSEABLE, Action
from swift_ext.evaluation.matching import MatchOptions, step_correct, token_f1

SCREEN = (1080.0, 2400.0)
DIAGONAL = math.hypot(*SCREEN)  # 2631.9...
BOX = (100.0, 200.0, 300.0, 400.0)  # 200 x 200 element
GOLD_CLICK = Action('click', point=(540.0, 1200.0), screen=SCREEN)
BOXED_CLICK = Action('click', point=(200.0, 300.0), bounds=BOX, screen=SCREEN)
DEFAULT = MatchOptions()


def click(x: float, y: float, kind: str = 'click') -> Action:
    return Action(kind, point=(x, y))


CASES = [
    # (case, prediction, gold, options, expected verdict)
    ('box: centre', click(200, 300), BOXED_CLICK, DEFAULT, True),
    ('box: on the left edge', click(100, 300), BOXED_CLICK, DEFAULT, True),
    ('box: on the bottom-right corner', click(300, 400), BOXED_CLICK, DEFAULT, True),
    ('box: one pixel outside', click(301, 300), BOXED_CLICK, DEFAULT, False),
    # Enlarged x1.2 about the centre: the 200 px box grows 20 px on each side -> [80, 320] x [180, 420].
    ('enlarged box: 20 px outside, scale 1.2', click(320, 300), BOXED_CLICK, MatchOptions(box_scale=1.2), True),
    ('enlarged box: 21 px outside, scale 1.2', click(321, 300), BOXED_CLICK, MatchOptions(box_scale=1.2), False),
    # With a box the box decides, even when the point is near the gold point.
    ('box wins over distance', click(310, 300), BOXED_CLICK, DEFAULT, False),
    ('distance: gold point itself', click(540, 1200), GOLD_CLICK, DEFAULT, True),
    ('distance: 0.13 diagonal', click(540, 1200 + 0.13 * DIAGONAL), GOLD_CLICK, DEFAULT, True),
    ('distance: 0.15 diagonal', click(540, 1200 + 0.15 * DIAGONAL), GOLD_CLICK, DEFAULT, False),
    ('distance: 0.15 diagonal, threshold 0.2', click(540, 1200 + 0.15 * DIAGONAL), GOLD_CLICK,
     MatchOptions(distance_threshold=0.2), True),
    # AitW's axis-normalised distance: 300 px down is 300 / 2400 = 0.125 < 0.14; 200 px right is 0.185 > 0.14.
    ('axis distance: 300 px down', click(540, 1500), GOLD_CLICK, MatchOptions(distance='axis'), True),
    ('axis distance: 200 px right', click(740, 1200), GOLD_CLICK, MatchOptions(distance='axis'), False),
    ('outside the known screen, near the gold', click(1085, 2390), Action('click', point=(1070, 2390), screen=SCREEN),
     DEFAULT, False),
    ('negative coordinate', click(-1, 1200), GOLD_CLICK, DEFAULT, False),
    # Without a screen size, points beyond 1080x2400 (other devices) are judged by distance only.
    ('gold outside the default screen, unknown screen', click(1290, 2840), click(1293, 2847), DEFAULT, True),
    # A gold point off the stated screen shows the size is not the device's: it rejects nothing, distance decides.
    ('gold outside the stated screen', click(1293, 2847), Action('click', point=(1290, 2840), screen=SCREEN),
     DEFAULT, True),
    ('long press vs click at the same point', click(540, 1200, 'long_press'), GOLD_CLICK, DEFAULT, False),
    ('long press at the gold point', click(540, 1200, 'long_press'), click(540, 1200, 'long_press'), DEFAULT, True),
    ('click named by label, same label modulo case/space', Action('click', target='  timer '),
     Action('click', target='Timer'), DEFAULT, True),
    ('click named by another label', Action('click', target='Alarm'), Action('click', target='Timer'), DEFAULT, False),
    ('label cannot match a point', Action('click', target='Timer'), GOLD_CLICK, DEFAULT, False),
    # A gold from acts_origin that also names its element (the label its gold text names) matches either way.
    ('label of a gold with label and box', Action('click', target='more options'),
     Action('click', point=(200, 300), target='More options', bounds=BOX, screen=SCREEN), DEFAULT, True),
    ('point in the box of a gold with label and box', click(110, 390),
     Action('click', point=(200, 300), target='More options', bounds=BOX, screen=SCREEN), DEFAULT, True),
    ('point against a gold known by label only', click(200, 300), Action('click', target='Timer'), DEFAULT, False),
    ('type: exact', Action('input_text', text='Men shoes'), Action('input_text', text='Men shoes'), DEFAULT, True),
    ('type: case and whitespace', Action('input_text', text='  men   SHOES '), Action('input_text', text='Men shoes'),
     DEFAULT, True),
    ('type: prediction contains gold', Action('input_text', text='men shoes size 9'),
     Action('input_text', text='Men shoes'), DEFAULT, True),
    # F1 of "paris gare" vs "paris gare de lyon": P = 1, R = 0.5, F1 = 0.667 > 0.5 (and contained).
    ('type: F1 0.67', Action('input_text', text='Paris gare'), Action('input_text', text='Paris Gare de Lyon'),
     DEFAULT, True),
    # "lyon paris" vs "paris gare de lyon": P = 1, R = 0.5 -> F1 0.667, not a substring.
    ('type: F1 0.67, not contained', Action('input_text', text='Lyon Paris'),
     Action('input_text', text='Paris Gare de Lyon'), DEFAULT, True),
    # "paris nord" vs "paris gare de lyon": P = 0.5, R = 0.25 -> F1 0.333.
    ('type: F1 0.33', Action('input_text', text='Paris Nord'), Action('input_text', text='Paris Gare de Lyon'),
     DEFAULT, False),
    # Containment: the shorter normalised text must be whole tokens of the longer, with at least half its characters.
    ('type: one letter of an e-mail address', Action('input_text', text='e'),
     Action('input_text', text='natalie.larson1998@gmail.com'), DEFAULT, False),
    ('open app: one letter of the name', Action('open_app', text='a'), Action('open_app', text='Maps'), DEFAULT,
     False),
    ('type: a word that begins the gold word', Action('input_text', text='ramp'), Action('input_text', text='rampant'),
     DEFAULT, False),
    # "paris" is 5 of the 26 characters of "paris gare de lyon station"; F1 = 2 * 1 * 0.2 / 1.2 = 0.33.
    ('type: one short word of a long gold', Action('input_text', text='Paris'),
     Action('input_text', text='Paris Gare de Lyon station'), DEFAULT, False),
    # "men shoes" is 9 of the 33 characters of the prediction; F1 = 2 * (2/7) * 1 / (9/7) = 0.44.
    ('type: the gold within much more text', Action('input_text', text='men shoes for running in the rain'),
     Action('input_text', text='Men shoes'), DEFAULT, False),
    # "calculator" is 10 of the 16 characters of "calculator pro x": containment decides, F1 is 0.5 exactly.
    ('open app: a contained name where F1 is 0.5', Action('open_app', text='Calculator'),
     Action('open_app', text='Calculator Pro X'), DEFAULT, True),
    ('type: empty prediction', Action('input_text', text=''), Action('input_text', text='Men shoes'), DEFAULT, False),
    ('type: both empty', Action('input_text', text=''), Action('input_text', text=''), DEFAULT, True),
    ('type: non-ASCII, case', Action('input_text', text='orléans CENTRE'), Action('input_text', text='Orléans centre'),
     DEFAULT, True),
    ('open app: case', Action('open_app', text='pocketbook'), Action('open_app', text='PocketBook'), DEFAULT, True),
    ('open app: other app', Action('open_app', text='Gmail'), Action('open_app', text='PocketBook'), DEFAULT, False),
    ('scroll: same direction', Action('scroll', direction='down'), Action('scroll', direction='down'), DEFAULT, True),
    ('scroll: opposite direction', Action('scroll', direction='up'), Action('scroll', direction='down'), DEFAULT,
     False),
    ('back', Action('navigate_back'), Action('navigate_back'), DEFAULT, True),
    ('home for back', Action('navigate_home'), Action('navigate_back'), DEFAULT, False),
    ('wait', Action('wait'), Action('wait'), DEFAULT, True),
    ('status: same', Action('status', status='successful'), Action('status', status='successful'), DEFAULT, True),
    ('status: other', Action('status', status='infeasible'), Action('status', status='successful'), DEFAULT, False),
    ('unparseable', Action(UNPARSEABLE), GOLD_CLICK, DEFAULT, False),
]  # fmt: skip


@pytest.mark.parametrize('case,prediction,gold,options,expected', CASES, ids=[case[0] for case in CASES])
def test_matching_rule(case, prediction, gold, options, expected):
    assert step_correct(prediction, gold, options) is expected


def test_token_f1_values():
    assert token_f1('Paris Nord', 'Paris Gare de Lyon') == pytest.approx(1 / 3)
    assert token_f1('a b', 'a b') == 1.0
    assert token_f1('', 'a') == 0.0


def test_invalid_options_name_the_choices():
    with pytest.raises(ValueError, match='diagonal'):
        MatchOptions(distance='manhattan')
