"""Prompt formats for GUI-agent conversations: user-turn text and the assistant answer of one step.

Formats (registry ``PROMPT_FORMATS``):

* ``fedmabench``: natural-language action descriptions (``act_convert``), as FedMABench trains.
* ``json``: the raw Android-Control action JSON (``act_origin``).
* ``mobile_use``: a Qwen2.5-VL ``mobile_use`` tool call. Coordinates stay in screenshot pixels; rescale them if
  the processor resizes images (Qwen2.5-VL grounds in resized-image pixels).
"""

import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence


class AnswerError(ValueError):
    """A step whose answer cannot be written in the chosen format."""


@dataclass(frozen=True)
class Step:
    """One step of an episode as the converter sees it; ``screen_size`` is [width, height] when known."""

    instruction: str
    sub_instruction: str
    act_origin: Dict
    act_convert: str
    img: str
    screen_size: Optional[List[int]] = None


@dataclass(frozen=True)
class PromptFormat:
    """``action_space`` tells the model how to answer; ``answer`` writes a step's ground truth that way."""

    action_space: str
    answer: Callable[[Step], str]


def _fedmabench_answer(step: Step) -> str:
    if not step.act_convert:
        raise AnswerError('empty act_convert')
    return step.act_convert


def _json_answer(step: Step) -> str:
    if not step.act_origin:
        raise AnswerError('empty act_origin')
    return json.dumps(step.act_origin, ensure_ascii=False)


def _swipe(direction: str, size: Optional[Sequence[int]]) -> Dict:
    """Scrolling ``direction`` reveals content that way, so the finger moves the opposite way across the centre."""
    if not size:
        raise AnswerError('scroll needs screen_size for a mobile_use swipe')
    width, height = size
    moves = {'down': (0, -1), 'up': (0, 1), 'right': (-1, 0), 'left': (1, 0)}
    if direction not in moves:
        raise AnswerError(f'unknown scroll direction {direction!r}')
    dx, dy = moves[direction]
    cx, cy, reach_x, reach_y = width // 2, height // 2, width // 4, height // 4
    return {
        'action': 'swipe',
        'coordinate': [cx - dx * reach_x, cy - dy * reach_y],
        'coordinate2': [cx + dx * reach_x, cy + dy * reach_y],
    }


TERMINATE_STATUS = {'successful': 'success', 'infeasible': 'failure'}

MOBILE_USE_ARGUMENTS: Dict[str, Callable[[Mapping, Optional[Sequence[int]]], Dict]] = {
    'click': lambda a, _: {'action': 'click', 'coordinate': [a['x'], a['y']]},
    'long_press': lambda a, _: {'action': 'long_press', 'coordinate': [a['x'], a['y']], 'time': 2},
    'scroll': lambda a, size: _swipe(a['direction'], size),
    'open_app': lambda a, _: {'action': 'open', 'text': a['app_name']},
    'input_text': lambda a, _: {'action': 'type', 'text': a['text']},
    'navigate_home': lambda a, _: {'action': 'system_button', 'button': 'Home'},
    'navigate_back': lambda a, _: {'action': 'system_button', 'button': 'Back'},
    'wait': lambda a, _: {'action': 'wait', 'time': 2},
    'status': lambda a, _: {'action': 'terminate', 'status': TERMINATE_STATUS[a['goal_status']]},
}


def _mobile_use_answer(step: Step) -> str:
    to_arguments = MOBILE_USE_ARGUMENTS.get(step.act_origin.get('action_type'))
    if to_arguments is None:
        raise AnswerError(f'no mobile_use action for {step.act_origin.get("action_type")!r}')
    try:
        arguments = to_arguments(step.act_origin, step.screen_size)
    except KeyError as exc:
        raise AnswerError(f'{step.act_origin["action_type"]} action lacks field {exc}') from exc
    call = json.dumps({'name': 'mobile_use', 'arguments': arguments}, ensure_ascii=False)
    return f'<tool_call>\n{call}\n</tool_call>'


_NATURAL_ACTIONS = """Answer with exactly one of these actions:
1. Click on button with the text "<UI element text>" (or: Click on button with the function of "<description>")
2. Long press on button with the text "<UI element text>"
3. Type text: <input text>
4. Scroll <up|down|left|right>
5. Return to the home page
6. Go back to the previous page
7. Open App: <app name>
8. Wait for response
9. Check status: <successful|infeasible>"""

_JSON_ACTIONS = """Answer with exactly one action as a JSON object, one of:
{"action_type": "click", "x": <int>, "y": <int>}
{"action_type": "long_press", "x": <int>, "y": <int>}
{"action_type": "scroll", "direction": "up|down|left|right"}
{"action_type": "open_app", "app_name": "<app name>"}
{"action_type": "input_text", "text": "<text>"}
{"action_type": "navigate_home"}
{"action_type": "navigate_back"}
{"action_type": "wait"}
{"action_type": "status", "goal_status": "successful|infeasible"}
Coordinates are screenshot pixels."""

_MOBILE_USE_ACTIONS = """Answer with one call of the mobile_use tool inside <tool_call></tool_call> tags:
{"name": "mobile_use", "arguments": {"action": <action>, ...}} where <action> is one of
click (coordinate), long_press (coordinate, time), swipe (coordinate, coordinate2), type (text),
system_button (button: Back|Home), open (text: app name), wait (time), terminate (status: success|failure).
Coordinates are screenshot pixels."""

PROMPT_FORMATS: Dict[str, PromptFormat] = {
    'fedmabench': PromptFormat(_NATURAL_ACTIONS, _fedmabench_answer),
    'json': PromptFormat(_JSON_ACTIONS, _json_answer),
    'mobile_use': PromptFormat(_MOBILE_USE_ACTIONS, _mobile_use_answer),
}

LEVELS = ('high', 'low')


def _sub_instruction(step: Step, level: str) -> str:
    if level == 'low' and step.sub_instruction:
        return f'### Subordinate Instruction ###\n{step.sub_instruction}\n\n'
    return ''


def first_user_turn(fmt: PromptFormat, step: Step, level: str, history: Sequence[str] = ()) -> str:
    """Full prompt with one ``<image>``: goal, the step instruction at level 'low' (omitted when empty),
    numbered previous actions when ``history`` is given, and the format's action space."""
    past = ''.join(f'{i}. {act}\n' for i, act in enumerate(history, start=1))
    return (
        '<image>You are a smartphone assistant that completes tasks by interacting with apps.\n'
        'The screenshot shows the screen before the next action.\n\n'
        f'### User Instruction ###\n{step.instruction}\n\n'
        + _sub_instruction(step, level)
        + (f'### Action History ###\n{past}\n' if past else '')
        + f'### Response Requirements ###\n{fmt.action_space}\n\n### Your Response ###\n'
    )


def next_user_turn(step: Step, level: str) -> str:
    """Later turn of a multi-turn episode: the new screenshot, plus its step instruction at level 'low'."""
    return '<image>' + _sub_instruction(step, level).rstrip('\n')
