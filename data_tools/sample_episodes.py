"""Generate a small, deterministic set of Android-Control-style episodes in conversations format.

Each episode has a goal, 2-4 steps, one synthetic screenshot per step (drawn with PIL: a status bar, an app title
and a few labelled buttons), FedMABench-worded actions, the app, its category and a ``client_id`` (clients own
disjoint groups of apps, FedMABench's natural split). Rows follow ms-swift's sharegpt layout, which is what
FedMABench's ``episode-wise-conversations.jsonl`` holds::

    {"conversations": [{"from": "user", "value": "<image>..."}, {"from": "assistant", "value": "..."}, ...],
     "images": ["/abs/path/ep0_0.png", ...], "episode_id": 0, "client_id": 0, "app": "Clock", "category": "Tools"}

Image paths are absolute, so generate the sample on the machine that trains on it:
``python -m data_tools.sample_episodes --output data/sample``.
"""

import argparse
import json
import os
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

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


@dataclass(frozen=True)
class Step:
    """One step: the action in FedMABench's natural-language wording and the button it touches (if any)."""

    action: str
    button: str


def draw_screen(path: str, app: str, buttons: tuple[str, ...], highlight: str, step: int) -> None:
    """Draw a phone-like screenshot: status bar, app title, buttons (the target one filled)."""
    image = Image.new('RGB', SCREEN_SIZE, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, SCREEN_SIZE[0], 16), fill=(30, 30, 30))
    draw.text((4, 3), f'12:0{step}', fill=(255, 255, 255))
    draw.text((8, 24), app, fill=(10, 10, 10))
    for index, label in enumerate(buttons):
        top = 70 + index * 60
        fill = (66, 133, 244) if label == highlight else (210, 210, 210)
        draw.rounded_rectangle((16, top, SCREEN_SIZE[0] - 16, top + 40), radius=8, fill=fill)
        draw.text((24, top + 14), label, fill=(0, 0, 0))
    image.save(path)


def episode_steps(rng: random.Random, app: str, buttons: tuple[str, ...]) -> list[Step]:
    """Open the app, press 1-2 buttons, sometimes type or scroll, then finish."""
    steps = [Step(f'Open App: {app}', '')]
    for label in rng.sample(buttons, rng.randint(1, 2)):
        steps.append(Step(f'Click on button with the text "{label}"', label))
    if rng.random() < 0.5:
        steps.append(rng.choice([Step('Scroll down', ''), Step('Type text: hello', ''), Step('Wait for response', '')]))
    return steps[:4]


def build_episode(episode_id: int, rng: random.Random, image_dir: str, clients_per_app: dict[str, int]) -> dict:
    """One conversations row: the goal and first screenshot, then one screenshot per later step."""
    app, category, buttons = APPS[episode_id % len(APPS)]
    steps = episode_steps(rng, app, buttons)
    goal = f'In {app}, ' + ' then '.join(step.button or step.action.split(':')[0].lower() for step in steps[1:])
    conversations, images = [], []
    for index, step in enumerate(steps):
        path = os.path.join(image_dir, f'ep{episode_id}_{index}.png')
        draw_screen(path, app, buttons, step.button, index)
        images.append(os.path.abspath(path))
        prompt = f'<image>Goal: {goal}. What is the next action?' if index == 0 else '<image>What is the next action?'
        conversations += [{'from': 'user', 'value': prompt}, {'from': 'assistant', 'value': step.action}]
    return {
        'conversations': conversations,
        'images': images,
        'episode_id': episode_id,
        'client_id': clients_per_app[app],
        'app': app,
        'category': category,
    }


def write_sample_episodes(output_dir: str, num_episodes: int = 32, num_clients: int = 4, seed: int = 0) -> str:
    """Write ``episode-wise-conversations.jsonl`` and its PNGs under ``output_dir``; return the jsonl path.

    Apps are dealt to clients round-robin, so each client owns ``len(APPS) / num_clients`` apps.
    """
    rng = random.Random(seed)
    image_dir = os.path.join(output_dir, 'images')
    os.makedirs(image_dir, exist_ok=True)
    clients_per_app = {app: index % num_clients for index, (app, _, _) in enumerate(APPS)}
    path = os.path.join(output_dir, 'episode-wise-conversations.jsonl')
    with open(path, 'w', encoding='utf-8') as f:
        for episode_id in range(num_episodes):
            f.write(json.dumps(build_episode(episode_id, rng, image_dir, clients_per_app)) + '\n')
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
