"""Android-Control action JSON -> FedMABench action descriptions (``act_convert``).

Wording follows FedMABench ``data_process/2_gen_jsonl_from_unpack_ac.py::describe_action``. A click or long press
names the element it lands on (``a11y.element_at``): its text (first 50 characters, FedMABench's light XML cut), else
its tooltip, else its content description (first 50 characters), else its point. Two wordings (``WORDINGS``):
``default`` reads ``Long press on ...`` (the wording of FedMABench's own training prompt); ``fedmabench`` reads
``Long_press on ...`` exactly as FedMABench's data does (``str.capitalize`` of the action type), which models trained
on FedMABench's data emit.
"""

import json
from typing import Callable, Dict, Mapping, Sequence

from data_tools.a11y import Element, element_at

#: FedMABench appends this action (and the sub-instruction below) as the final step of every episode.
STATUS_ACTION = '{"action_type":"status","goal_status":"successful"}'
STATUS_SUB_INSTRUCTION = 'Check if the task is finished'
#: FedMABench keeps this many characters of an element's text and content description.
LABEL_CHARS = 50

#: wording name -> the verb of each press action
PRESS_VERBS: Dict[str, Dict[str, str]] = {
    'default': {'click': 'Click', 'long_press': 'Long press'},
    'fedmabench': {'click': 'Click', 'long_press': 'Long_press'},
}
WORDINGS = tuple(PRESS_VERBS)


class ActionError(ValueError):
    """An action JSON that cannot be described (unknown type, missing field, not JSON)."""


def describe_press(verb: str, action: Mapping, elements: Sequence[Element]) -> str:
    """``<verb> on button with the text/function of "..."`` for the element the press lands on, else its point."""
    element = element_at(action['x'], action['y'], elements)
    if element is not None and element.text:
        return f'{verb} on button with the text "{element.text[:LABEL_CHARS]}"'
    if element is not None and element.tooltip:
        return f'{verb} on button with the text "{element.tooltip}"'
    if element is not None and element.content_description:
        return f'{verb} on button with the function of "{element.content_description[:LABEL_CHARS]}"'
    return f'{verb} on point ({action["x"]},{action["y"]})'


DESCRIBERS: Dict[str, Callable[[Mapping], str]] = {
    'scroll': lambda a: f'Scroll {a["direction"]}',
    'open_app': lambda a: f'Open App: {a["app_name"]}',
    'input_text': lambda a: f'Type text: {a["text"]}',
    'navigate_home': lambda a: 'Return to the home page',
    'navigate_back': lambda a: 'Go back to the previous page',
    'wait': lambda a: 'Wait for response',
    'status': lambda a: f'Check status: {a["goal_status"]}',
}


def parse_action(action_json: str) -> Dict:
    """The action dict of an Android-Control action JSON string; ActionError if it is not a JSON object."""
    try:
        action = json.loads(action_json)
    except json.JSONDecodeError as exc:
        raise ActionError(f'action is not JSON ({exc}): {action_json!r}') from exc
    if not isinstance(action, dict) or 'action_type' not in action:
        raise ActionError(f'action has no action_type: {action_json!r}')
    return action


def describe_action(action: Mapping, elements: Sequence[Element] = (), wording: str = 'default') -> str:
    """FedMABench description of ``action`` in ``wording`` (one of WORDINGS); presses resolve against ``elements``."""
    if wording not in PRESS_VERBS:
        raise ValueError(f'wording={wording!r}; choose one of {WORDINGS}')
    kind = action.get('action_type')
    if kind not in PRESS_VERBS[wording] and kind not in DESCRIBERS:
        known = sorted([*PRESS_VERBS[wording], *DESCRIBERS])
        raise ActionError(f'unknown action_type {kind!r} (known: {known})')
    try:
        if kind in PRESS_VERBS[wording]:
            return describe_press(PRESS_VERBS[wording][kind], action, elements)
        return DESCRIBERS[kind](action)
    except KeyError as exc:
        raise ActionError(f'{kind} action lacks field {exc}: {dict(action)}') from exc
