"""The structured action both predictions and gold steps are reduced to before matching.

Types follow Android-Control's ``action_type`` names (``ACTION_TYPES``); a prediction no parser understands has
type ``UNPARSEABLE``. Coordinates are screenshot pixels; ``bounds`` is the gold target element's
[left, top, right, bottom] and ``screen`` the screenshot [width, height], each only when the data knows it.
"""

import json
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple, Union

ACTION_TYPES = (
    'click', 'long_press', 'scroll', 'input_text', 'open_app', 'navigate_home', 'navigate_back', 'wait', 'status',
)  # fmt: skip
UNPARSEABLE = 'unparseable'
SCROLL_DIRECTIONS = ('up', 'down', 'left', 'right')


@dataclass(frozen=True)
class Action:
    """type: one of ACTION_TYPES or UNPARSEABLE. point: (x, y) of click/long_press. target: the element's label
    when the format names it instead of a point (FedMABench ``Click on button with the text "X"``).
    text: input_text text or open_app app name. direction: scroll direction (the way the content moves into view,
    Android-Control's convention). status: goal status of ``status``."""

    type: str
    point: Optional[Tuple[float, float]] = None
    target: Optional[str] = None
    text: Optional[str] = None
    direction: Optional[str] = None
    status: Optional[str] = None
    bounds: Optional[Tuple[float, float, float, float]] = None
    screen: Optional[Tuple[float, float]] = None


class GoldActionError(ValueError):
    """A gold action dict that does not describe an Android-Control action."""


def gold_action(act: Union[str, Mapping]) -> Action:
    """The Action of an Android-Control action (dict or JSON string) such as ``{"action_type": "click", "x": 540,
    "y": 1200}``; optional keys ``bounds`` ([l, t, r, b]) and ``screen_size`` ([w, h]) make click matching grounded.

    Raises GoldActionError naming the action and the missing field.
    """
    if isinstance(act, str):
        try:
            act = json.loads(act)
        except json.JSONDecodeError as exc:
            raise GoldActionError(f'gold action is not JSON ({exc}): {act!r}') from exc
    kind = act.get('action_type') if isinstance(act, Mapping) else None
    if kind not in ACTION_TYPES:
        raise GoldActionError(f'gold action_type {kind!r} is not one of {ACTION_TYPES}: {act!r}')
    try:
        point = (float(act['x']), float(act['y'])) if kind in ('click', 'long_press') else None
        return Action(
            type=kind,
            point=point,
            text=act['text'] if kind == 'input_text' else act['app_name'] if kind == 'open_app' else None,
            direction=act['direction'].lower() if kind == 'scroll' else None,
            status=act['goal_status'].lower() if kind == 'status' else None,
            bounds=tuple(float(v) for v in act['bounds']) if act.get('bounds') else None,
            screen=tuple(float(v) for v in act['screen_size']) if act.get('screen_size') else None,
        )
    except KeyError as exc:
        raise GoldActionError(f'{kind} gold action lacks field {exc}: {act!r}') from exc
