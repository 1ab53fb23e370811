"""Model text -> Action, one parser per prompt format of ``data_tools.prompts.PROMPT_FORMATS``.

Registry ``PARSERS``: ``fedmabench`` (natural-language descriptions), ``json`` (Android-Control action JSON),
``mobile_use`` (Qwen2.5-VL tool call). Parsers ignore case and surrounding/repeated whitespace, and never raise:
text they do not understand becomes ``Action(UNPARSEABLE)``.
"""

import json
import re
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from swift_ext.evaluation.actions import ACTION_TYPES, SCROLL_DIRECTIONS, UNPARSEABLE, Action

NOT_PARSED = Action(UNPARSEABLE)


def _number(value: object) -> float:
    return float(value)  # int, float or numeric string; ValueError/TypeError otherwise


def _point(value: object) -> Tuple[float, float]:
    x, y = value  # a 2-element list/tuple; ValueError otherwise
    return _number(x), _number(y)


# --- fedmabench: natural language ------------------------------------------------------------------------------
_QUOTED = r'"(?P<target>.*)"'
_I = re.IGNORECASE
_NATURAL: List[Tuple[re.Pattern, Callable[[re.Match], Action]]] = [
    (re.compile(rf'(?P<verb>click|long[ _]press) on button with the (?:text|function of) {_QUOTED}', _I),
     lambda m: Action(_press_type(m['verb']), target=m['target'])),
    (re.compile(r'(?P<verb>click|long[ _]press) on point \(\s*(?P<x>-?[\d.]+)\s*,\s*(?P<y>-?[\d.]+)\s*\)', _I),
     lambda m: Action(_press_type(m['verb']), point=(float(m['x']), float(m['y'])))),
    (re.compile(r'type text:(?P<text>.*)', _I), lambda m: Action('input_text', text=m['text'].strip())),
    (re.compile(r'scroll (?P<direction>up|down|left|right)', _I),
     lambda m: Action('scroll', direction=m['direction'].lower())),
    (re.compile(r'return to the home page', _I), lambda m: Action('navigate_home')),
    (re.compile(r'go back to the previous page', _I), lambda m: Action('navigate_back')),
    (re.compile(r'open app:(?P<text>.*)', _I), lambda m: Action('open_app', text=m['text'].strip())),
    (re.compile(r'wait for response', _I), lambda m: Action('wait')),
    (re.compile(r'check status: (?P<status>\w+)', _I), lambda m: Action('status', status=m['status'])),
]  # fmt: skip


def _press_type(verb: str) -> str:
    return 'click' if verb.lower() == 'click' else 'long_press'


def parse_fedmabench(text: str) -> Action:
    """FedMABench action descriptions (``data_tools.actions.DESCRIBERS``), matched whole after collapsing whitespace
    and dropping one trailing period; quoted targets and typed text keep their case."""
    flat = ' '.join(text.split()).removesuffix('.')
    for pattern, build in _NATURAL:
        match = pattern.fullmatch(flat)
        if match:
            action = build(match)
            return action if action.status is None else Action('status', status=action.status.lower())
    return NOT_PARSED


# --- json: Android-Control action JSON ---------------------------------------------------------------------------
def _first_json_object(text: str) -> Optional[Mapping]:
    """The first decodable JSON object in ``text`` (code fences and prose around it are ignored)."""
    decoder = json.JSONDecoder()
    for start in (i for i, char in enumerate(text) if char == '{'):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _from_android_control(act: Mapping) -> Action:
    kind = str(act.get('action_type', '')).strip().lower()
    if kind not in ACTION_TYPES:
        return NOT_PARSED
    if kind in ('click', 'long_press'):
        return Action(kind, point=(_number(act['x']), _number(act['y'])))
    if kind == 'scroll':
        direction = str(act['direction']).strip().lower()
        return Action(kind, direction=direction) if direction in SCROLL_DIRECTIONS else NOT_PARSED
    if kind in ('input_text', 'open_app'):
        return Action(kind, text=str(act['text' if kind == 'input_text' else 'app_name']))
    if kind == 'status':
        return Action(kind, status=str(act['goal_status']).strip().lower())
    return Action(kind)


def parse_json(text: str) -> Action:
    """The first JSON object in ``text`` read as an Android-Control action (``{"action_type": "click", "x": 1,
    "y": 2}``); numeric strings are accepted as coordinates."""
    act = _first_json_object(text)
    if act is None:
        return NOT_PARSED
    try:
        return _from_android_control(act)
    except (KeyError, ValueError, TypeError):
        return NOT_PARSED


# --- mobile_use: Qwen2.5-VL tool call ----------------------------------------------------------------------------
_TOOL_CALL = re.compile(r'<tool_call>(.*?)(?:</tool_call>|$)', flags=re.DOTALL | re.IGNORECASE)
TERMINATE_STATUS = {'success': 'successful', 'failure': 'infeasible'}


def swipe_direction(start: Tuple[float, float], end: Tuple[float, float]) -> Optional[str]:
    """Scroll direction of a finger swipe from ``start`` to ``end``: the content scrolls against the finger (finger
    up = scroll down), along the dominant axis; None for a zero-length swipe."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    if dx == dy == 0:
        return None
    if abs(dy) >= abs(dx):
        return 'down' if dy < 0 else 'up'
    return 'right' if dx < 0 else 'left'


MOBILE_USE_ACTIONS: Dict[str, Callable[[Mapping], Action]] = {
    'click': lambda a: Action('click', point=_point(a['coordinate'])),
    'long_press': lambda a: Action('long_press', point=_point(a['coordinate'])),
    'swipe': lambda a: Action('scroll', direction=swipe_direction(_point(a['coordinate']), _point(a['coordinate2']))),
    'type': lambda a: Action('input_text', text=str(a['text'])),
    'open': lambda a: Action('open_app', text=str(a['text'])),
    'system_button': lambda a: {'back': Action('navigate_back'), 'home': Action('navigate_home')}.get(
        str(a['button']).strip().lower(), NOT_PARSED
    ),
    'wait': lambda a: Action('wait'),
    'terminate': lambda a: Action('status', status=TERMINATE_STATUS.get(str(a['status']).strip().lower())),
}


def parse_mobile_use(text: str) -> Action:
    """A ``{"name": "mobile_use", "arguments": {"action": ...}}`` call, inside ``<tool_call>`` tags when present;
    swipes become scrolls (``swipe_direction``), terminate success/failure becomes status successful/infeasible."""
    match = _TOOL_CALL.search(text)
    call = _first_json_object(match.group(1) if match else text)
    arguments = call.get('arguments') if call else None
    if not isinstance(arguments, Mapping):
        return NOT_PARSED
    build = MOBILE_USE_ACTIONS.get(str(arguments.get('action', '')).strip().lower())
    try:
        action = build(arguments) if build else NOT_PARSED
    except (KeyError, ValueError, TypeError):
        return NOT_PARSED
    incomplete = (action.type == 'scroll' and action.direction is None) or (
        action.type == 'status' and action.status is None
    )
    return NOT_PARSED if incomplete else action


PARSERS: Dict[str, Callable[[str], Action]] = {
    'fedmabench': parse_fedmabench,
    'json': parse_json,
    'mobile_use': parse_mobile_use,
}


def parse_action(text: Optional[str], prompt_format: str) -> Action:
    """Action of model output ``text`` in ``prompt_format`` (a key of PARSERS); UNPARSEABLE for None/garbage."""
    parser = PARSERS.get(prompt_format)
    if parser is None:
        raise ValueError(f'prompt_format={prompt_format!r}; choose one of {sorted(PARSERS)}')
    return parser(text) if isinstance(text, str) else NOT_PARSED
