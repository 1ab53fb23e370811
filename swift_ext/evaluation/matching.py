"""Is a predicted step correct? The action-matching rules of GUI-agent evaluation (AitW, OS-Atlas, UI-TARS,
Qwen2.5-VL), one rule per action type in ``RULES``; every threshold is a field of ``MatchOptions``.

* Types must agree (an UNPARSEABLE prediction is never correct).
* click / long_press: with the gold element's ``bounds``, correct iff the predicted point lies in the box (edges
  included) enlarged about its centre by ``box_scale``; without bounds, correct iff
  ``distance(pred, gold) <= distance_threshold`` (``DISTANCES``: ``diagonal`` = pixel distance / screen diagonal,
  ``axis`` = AitW's Euclidean distance after scaling x by width and y by height). When the screen size is known
  (and the gold point lies on it), a predicted point outside the screen is wrong. When the prediction names the
  element instead of a point (FedMABench natural language), the gold must name one too (its answer text does, also
  when the gold step comes from ``acts_origin``) and the normalised labels must be equal. A predicted point against
  a gold that only names its element (no point known) is wrong.
* input_text / open_app: ``text_match`` on the normalised texts (``normalize_text``): equal; or the shorter is a run
  of whole tokens of the longer and at least ``CONTAINMENT_MIN_SHARE`` of its characters (spaces included), so that
  ``men shoes`` matches ``men shoes size 9`` but ``e`` does not match an e-mail address, ``a`` not ``maps``, ``ramp``
  not ``rampant``, nor ``a`` the text ``a b c d e f``; or token F1 > ``text_f1_threshold``.
* scroll: same direction (Android-Control convention; mobile_use swipes are converted by the parser).
* status: same goal status. navigate_home / navigate_back / wait: the type alone.
"""

import math
import string
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from swift_ext.evaluation.actions import Action


@dataclass(frozen=True)
class MatchOptions:
    """box_scale (float): enlargement of gold boxes about their centre (1.0 = the box itself). Defaults to 1.0.
    distance_threshold (float): click distance limit without boxes. Defaults to 0.14 (AitW).
    distance (str): key of DISTANCES. Defaults to 'diagonal'.
    text_f1_threshold (float): token F1 strictly above this matches. Defaults to 0.5.
    default_screen (tuple): [width, height] to normalise distances when a step has no screen size; it is not used to
    reject points outside the screen. Defaults to (1080, 2400), Android-Control's usual screenshot.
    """

    box_scale: float = 1.0
    distance_threshold: float = 0.14
    distance: str = 'diagonal'
    text_f1_threshold: float = 0.5
    default_screen: Tuple[float, float] = (1080.0, 2400.0)

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f'distance={self.distance!r}; choose one of {sorted(DISTANCES)}')
        if self.box_scale <= 0:
            raise ValueError(f'box_scale={self.box_scale}; it must be > 0 (1.0 = the box itself)')


Point = Tuple[float, float]

DISTANCES: Dict[str, Callable[[Point, Point, Tuple[float, float]], float]] = {
    'diagonal': lambda p, g, s: math.dist(p, g) / math.hypot(*s),
    'axis': lambda p, g, s: math.hypot((p[0] - g[0]) / s[0], (p[1] - g[1]) / s[1]),
}


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed."""
    text = text.lower().translate(str.maketrans('', '', string.punctuation))
    return ' '.join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style token F1 of the normalised texts; 0.0 when either has no token."""
    pred_tokens, gold_tokens = normalize_text(prediction).split(), normalize_text(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


#: the least share of the longer text's characters a contained text must have to match it
CONTAINMENT_MIN_SHARE = 0.5


def token_containment(prediction: str, gold: str) -> bool:
    """Whether the shorter normalised text is a contiguous run of whole tokens of the longer one and has at least
    CONTAINMENT_MIN_SHARE of its characters (both non-empty)."""
    shorter, longer = sorted((normalize_text(prediction), normalize_text(gold)), key=len)
    if not shorter or len(shorter) < CONTAINMENT_MIN_SHARE * len(longer):
        return False
    return f' {shorter} ' in f' {longer} '


def text_match(prediction: str, gold: str, options: MatchOptions) -> bool:
    """Typed text or app name: normalised equality, token containment (``token_containment``) or token F1 above
    ``options.text_f1_threshold`` (the module docstring)."""
    pred, ref = normalize_text(prediction), normalize_text(gold)
    return pred == ref or token_containment(pred, ref) or token_f1(pred, ref) > options.text_f1_threshold


def in_box(point: Point, bounds: Tuple[float, float, float, float], scale: float) -> bool:
    """Edges included; the box grows by (scale - 1) / 2 of its width/height on each side."""
    left, top, right, bottom = bounds
    pad_x, pad_y = (right - left) * (scale - 1) / 2, (bottom - top) * (scale - 1) / 2
    return left - pad_x <= point[0] <= right + pad_x and top - pad_y <= point[1] <= bottom + pad_y


def _on_screen(point: Point, screen: Tuple[float, float]) -> bool:
    return 0 <= point[0] <= screen[0] and 0 <= point[1] <= screen[1]


def _press_match(pred: Action, gold: Action, options: MatchOptions) -> bool:
    if pred.target is not None:
        return gold.target is not None and normalize_text(pred.target) == normalize_text(gold.target)
    if pred.point is None or gold.point is None:
        return False
    # A gold point outside the stated screen means the stated size is not the device's (real Android-Control has
    # such clicks); then the size cannot reject a prediction either.
    if gold.screen is not None and _on_screen(gold.point, gold.screen) and not _on_screen(pred.point, gold.screen):
        return False
    if gold.bounds is not None:
        return in_box(pred.point, gold.bounds, options.box_scale)
    screen = gold.screen or options.default_screen
    return DISTANCES[options.distance](pred.point, gold.point, screen) <= options.distance_threshold


RULES: Dict[str, Callable[[Action, Action, MatchOptions], bool]] = {
    'click': _press_match,
    'long_press': _press_match,
    'scroll': lambda p, g, o: p.direction == g.direction,
    'input_text': lambda p, g, o: text_match(p.text or '', g.text or '', o),
    'open_app': lambda p, g, o: text_match(p.text or '', g.text or '', o),
    'status': lambda p, g, o: p.status == g.status,
    'navigate_home': lambda p, g, o: True,
    'navigate_back': lambda p, g, o: True,
    'wait': lambda p, g, o: True,
}


DEFAULT_OPTIONS = MatchOptions()


def step_correct(pred: Action, gold: Action, options: MatchOptions = DEFAULT_OPTIONS) -> bool:
    """Whether ``pred`` does what ``gold`` does under the rules of this module's docstring."""
    return pred.type == gold.type and RULES[gold.type](pred, gold, options)
