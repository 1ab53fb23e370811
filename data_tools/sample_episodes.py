"""Generate a small, deterministic set of Android-Control-style episodes, in two forms.

Each episode has a goal, 2-4 steps, one synthetic screenshot per step (drawn with PIL: a status bar, an app title
and a few labelled buttons), FedMABench-worded actions, the app, its category and a ``client_id`` (clients own
disjoint groups of apps, FedMABench's natural split).

- ``episode-wise-conversations.jsonl``: ms-swift's sharegpt rows, what FedMABench's file of that name holds and what
  ``make demo`` trains on::

    {"conversations": [{"from": "user", "value": "<image>..."}, {"from": "assistant", "value": "..."}, ...],
     "images": ["/abs/path/ep0_0.png", ...], "episode_id": 0, "client_id": 0, "app": "Clock", "category": "Tools"}

- ``episode-wise-all.jsonl``: the same episodes as ``data_tools.unpack`` writes Android-Control (action JSON,
  FedMABench wording, element lists under ``elements/``, the final status step with its screenshot, an official
  ``split``: every fifth episode is ``test`` with sub-split ``IDD``), image and element paths relative to the
  output directory, so ``scripts/convert_to_conversations.py`` and ``data_tools.partition`` can be tried on it.

Conversation image paths are absolute, so generate the sample on the machine that trains on it:
``python -m data_tools.sample_episodes --output data/sample``.
"""

import argparse
import json
import os
import random
from dataclasses import dataclass
from typing import Dict, List, Tuple

from PIL import Image, ImageDraw

from data_tools.actions import STATUS_ACTION, STATUS_SUB_INSTRUCTION

SCREEN_SIZE = (168, 364)  # width, height: a 1080x2400 phone scaled down; 6x13 patches of 28 px -> 78 image tokens
APPS = (
    ('Clock', 'Tools', ('Alarm', 'Timer', 'Stopwatch')),
    ('Calculator', 'Tools', ('Equals', 'Clear', 'History')),
    ('Gmail', 'Communication', ('Compose', 'Inbox', 'Send')),
    ('Messages', 'Communication', ('New chat', 'Search', 'Send')),
    ('Maps', 'Travel', ('Directions', 'Search here', 'Start')),
    ('Booking', 'Travel', ('Hotels', 'Dates', 'Reserve')),
    ('Spotify', 'Music', ('Play', 'Library', 'Shuffle')),
    ('Shazam', 'Music', ('Tap to Shazam', 'Library', 'Share')),
)
TEST_EVERY = 5  # episode ids 4, 9, 14, ... form the official-style test split
TITLE_BOX = [8, 20, SCREEN_SIZE[0] - 8, 36]


@dataclass(frozen=True)
class Step:
    """One step: the action in FedMABench's wording, the button it touches (if any), Android-Control's action and
    the step instruction."""

    action: str
    button: str
    origin: Dict[str, object]
    sub_instruction: str


def button_boxes(buttons: Tuple[str, ...]) -> Dict[str, List[int]]:
    """[left, top, right, bottom] of every button, top to bottom."""
    return {label: [16, 70 + i * 60, SCREEN_SIZE[0] - 16, 110 + i * 60] for i, label in enumerate(buttons)}


def draw_screen(path: str, app: str, buttons: Tuple[str, ...], highlight: str, step: int) -> None:
    """Draw a phone-like screenshot: status bar, app title, buttons (the target one filled)."""
    image = Image.new('RGB', SCREEN_SIZE, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, SCREEN_SIZE[0], 16), fill=(30, 30, 30))
    draw.text((4, 3), f'12:0{step}', fill=(255, 255, 255))
    draw.text((8, 24), app, fill=(10, 10, 10))
    for label, box in button_boxes(buttons).items():
        fill = (66, 133, 244) if label == highlight else (210, 210, 210)
        draw.rounded_rectangle(box, radius=8, fill=fill)
        draw.text((box[0] + 8, box[1] + 14), label, fill=(0, 0, 0))
    image.save(path)


def screen_elements(app: str, buttons: Tuple[str, ...]) -> List[Dict[str, object]]:
    """The screen's element list in ``data_tools.a11y.Element`` form: the app title, then the buttons."""
    resource = f'com.example.{app.lower()}:id'
    title = {'bounds': TITLE_BOX, 'text': app, 'class_name': 'android.widget.TextView', 'clickable': False}
    unlabelled = {'content_description': '', 'tooltip': '', 'hint_text': ''}
    elements = [{**title, **unlabelled, 'resource_id': f'{resource}/title'}]
    for index, (label, box) in enumerate(button_boxes(buttons).items()):
        elements.append(
            {
                'bounds': box,
                'text': label,
                **unlabelled,
                'resource_id': f'{resource}/button_{index}',
                'class_name': 'android.widget.Button',
                'clickable': True,
            }
        )
    return elements


def episode_steps(rng: random.Random, app: str, buttons: Tuple[str, ...]) -> List[Step]:
    """Open the app, press 1-2 buttons, sometimes type or scroll, then finish."""
    boxes = button_boxes(buttons)
    steps = [Step(f'Open App: {app}', '', {'action_type': 'open_app', 'app_name': app}, f'Open the {app} app')]
    for label in rng.sample(buttons, rng.randint(1, 2)):
        left, top, right, bottom = boxes[label]
        click = {'action_type': 'click', 'x': (left + right) // 2, 'y': (top + bottom) // 2}
        steps.append(Step(f'Click on button with the text "{label}"', label, click, f'Tap {label}'))
    if rng.random() < 0.5:
        extras = [
            Step('Scroll down', '', {'action_type': 'scroll', 'direction': 'down'}, 'Scroll down'),
            Step('Type text: hello', '', {'action_type': 'input_text', 'text': 'hello'}, 'Type hello'),
            Step('Wait for response', '', {'action_type': 'wait'}, 'Wait for the screen to load'),
        ]
        steps.append(rng.choice(extras))
    return steps[:4]


def unpacked_record(
    episode_id: int, goal: str, app: str, category: str, buttons: Tuple[str, ...], steps: List[Step], root: str
) -> Dict[str, object]:
    """The ``episode-wise-all.jsonl`` record of an episode (as ``data_tools.unpack`` writes it), with its element
    files and the final status step's screenshot written under ``root``."""
    count = len(steps) + 1  # the final status step has a screenshot of its own
    imgs = [f'images/ep{episode_id}_{index}.png' for index in range(count)]
    draw_screen(os.path.join(root, imgs[-1]), app, buttons, '', len(steps))
    elements = [f'elements/ep{episode_id}_{index}.json' for index in range(count)]
    for path in elements:
        with open(os.path.join(root, path), 'w', encoding='utf-8') as f:
            json.dump(screen_elements(app, buttons), f)
    boxes = button_boxes(buttons)
    test = episode_id % TEST_EVERY == TEST_EVERY - 1
    return {
        'episode_id': episode_id,
        'instruction': goal,
        'sub_instructions': [step.sub_instruction for step in steps] + [STATUS_SUB_INSTRUCTION],
        'acts_origin': [json.dumps(step.origin) for step in steps] + [STATUS_ACTION],
        'acts_convert': [step.action for step in steps] + ['Check status: successful'],
        'wording': 'default',
        'imgs': imgs,
        'elements': elements,
        'screen_sizes': [list(SCREEN_SIZE)] * count,
        'targets_bounds': [boxes[step.button] if step.button else None for step in steps] + [None],
        'app': app,
        'category': category,
        'split': 'test' if test else 'train',
        'test_subsplits': ['IDD'] if test else [],
    }


def build_episode(
    episode_id: int, rng: random.Random, root: str, clients_per_app: Dict[str, int]
) -> Tuple[Dict[str, object], Dict[str, object]]:
    """One episode as (conversations row, episode-wise record): the goal and first screenshot, then one screenshot
    per later step."""
    app, category, buttons = APPS[episode_id % len(APPS)]
    steps = episode_steps(rng, app, buttons)
    goal = f'In {app}, ' + ' then '.join(step.button or step.action.split(':')[0].lower() for step in steps[1:])
    conversations, images = [], []
    for index, step in enumerate(steps):
        path = os.path.join(root, 'images', f'ep{episode_id}_{index}.png')
        draw_screen(path, app, buttons, step.button, index)
        images.append(os.path.abspath(path))
        prompt = f'<image>Goal: {goal}. What is the next action?' if index == 0 else '<image>What is the next action?'
        conversations += [{'from': 'user', 'value': prompt}, {'from': 'assistant', 'value': step.action}]
    row = {
        'conversations': conversations,
        'images': images,
        'episode_id': episode_id,
        'client_id': clients_per_app[app],
        'app': app,
        'category': category,
    }
    return row, unpacked_record(episode_id, goal, app, category, buttons, steps, root)


def write_sample_episodes(output_dir: str, num_episodes: int = 32, num_clients: int = 4, seed: int = 0) -> str:
    """Write ``episode-wise-conversations.jsonl``, ``episode-wise-all.jsonl`` and their PNGs and element lists under
    ``output_dir``; return the conversations path.

    Apps are dealt to clients round-robin, so each client owns ``len(APPS) / num_clients`` apps.
    """
    rng = random.Random(seed)
    for folder in ('images', 'elements'):
        os.makedirs(os.path.join(output_dir, folder), exist_ok=True)
    clients_per_app = {app: index % num_clients for index, (app, _, _) in enumerate(APPS)}
    path = os.path.join(output_dir, 'episode-wise-conversations.jsonl')
    unpacked = os.path.join(output_dir, 'episode-wise-all.jsonl')
    with open(path, 'w', encoding='utf-8') as rows, open(unpacked, 'w', encoding='utf-8') as records:
        for episode_id in range(num_episodes):
            row, record = build_episode(episode_id, rng, output_dir, clients_per_app)
            rows.write(json.dumps(row) + '\n')
            records.write(json.dumps(record) + '\n')
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', default='data/sample')
    parser.add_argument('--num_episodes', type=int, default=32)
    parser.add_argument('--num_clients', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print(write_sample_episodes(args.output, args.num_episodes, args.num_clients, args.seed))


if __name__ == '__main__':
    main()
