"""Android-Control action JSON -> FedMABench action descriptions (``act_convert``).

Wording follows FedMABench ``data_process/2_gen_jsonl_from_unpack_ac.py::describe_action``; one departure:
long presses read ``Long press on ...`` (the wording of FedMABench's own training prompt) instead of ``Long_press``.
"""

import json
from typing import Callable, Dict, Mapping, Sequence

from data_tools.a11y import Element, element_at

#: FedMABench appends this action (and the sub-instruction below) as the final step of every episode.
STATUS_ACTION = '{"action_type":"status","goal_status":"successful"}'
STATUS_SUB_INSTRUCTION = 'Check if the task is finished'


class ActionError(ValueError):
    """An action JSON that cannot be described (unknown type, missing field, not JSON)."""


def _press(verb: str) -> Callable[[Mapping, Sequence[Element]], str]:
    def describe(action: Mapping, elements: Sequence[Element]) -> str:
        element = element_at(action['x'], action['y'], elements)
        if element is None:
            return f'{verb} on point ({action["x"]},{action["y"]})'
        if element.label:
            return f'{verb} on button with the text "{element.label}"'
        return f'{verb} on button with the function of "{element.content_description}"'

    return describe


DESCRIBERS: Dict[str, Callable[[Mapping, Sequence[Element]], str]] = {
    'click': _press('Click'),
    'long_press': _press('Long press'),
    'scroll': lambda a, _: f'Scroll {a["direction"]}',
    'open_app': lambda a, _: f'Open App: {a["app_name"]}',
    'input_text': lambda a, _: f'Type text: {a["text"]}',
    'navigate_home': lambda a, _: 'Return to the home page',
    'navigate_back': lambda a, _: 'Go back to the previous page',
    'wait': lambda a, _: 'Wait for response',
    'status': lambda a, _: f'Check status: {a["goal_status"]}',
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


def describe_action(action: Mapping, elements: Sequence[Element] = ()) -> str:
    """FedMABench description of ``action``; clicks resolve to the smallest enclosing element of ``elements``."""
    describer = DESCRIBERS.get(action.get('action_type'))
    if describer is None:
        raise ActionError(f'unknown action_type {action.get("action_type")!r} (known: {sorted(DESCRIBERS)})')
    try:
        return describer(action, elements)
    except KeyError as exc:
        raise ActionError(f'{action["action_type"]} action lacks field {exc}: {dict(action)}') from exc
