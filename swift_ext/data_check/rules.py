"""The per-row checks of a conversations (ms-swift sharegpt/messages) JSON-lines file, in the order they run.

Each rule takes a parsed row and returns None when the row passes, or a sentence saying what is wrong and how to fix
it. The first failing rule names the row's reason. The length rule needs the template and lives in check.py.
"""

import os
from typing import Any, Callable, Dict, List, Optional

from PIL import Image

Row = Dict[str, Any]
Rule = Callable[[Row], Optional[str]]

ROLE_ALIASES = {'user': 'user', 'human': 'user', 'assistant': 'assistant', 'gpt': 'assistant', 'system': 'system'}
IMAGE_TAG = '<image>'


def turns(row: Row) -> List[Dict[str, str]]:
    """The row's turns as [{'role', 'content'}], from ``conversations`` (from/value) or ``messages`` (role/content)."""
    if 'conversations' in row:
        return [{'role': t.get('from'), 'content': t.get('value')} for t in row['conversations']]
    return [{'role': t.get('role'), 'content': t.get('content')} for t in row['messages']]


def image_paths(row: Row) -> List[str]:
    """The row's image paths (``images``: a list of paths or {'path': ...}, or one path); ROOT_IMAGE_DIR applies."""
    images = row.get('images') or []
    images = [images] if isinstance(images, str) else images
    paths = [image['path'] if isinstance(image, dict) else image for image in images]
    root = os.environ.get('ROOT_IMAGE_DIR')
    return [os.path.join(root, path) if root and not os.path.isabs(path) else path for path in paths]


def has_turns(row: Row) -> Optional[str]:
    for key in ('conversations', 'messages'):
        if isinstance(row.get(key), list) and row[key] and all(isinstance(turn, dict) for turn in row[key]):
            return None
    return 'no `conversations` (from/value) or `messages` (role/content) list of turns'


def roles_alternate(row: Row) -> Optional[str]:
    roles = [ROLE_ALIASES.get(turn['role']) for turn in turns(row)]
    if roles and roles[0] == 'system':
        roles = roles[1:]
    expected = ['user', 'assistant'] * (len(roles) // 2 + 1)
    if not roles or roles != expected[: len(roles)] or roles[-1] != 'assistant':
        raw = [turn['role'] for turn in turns(row)]
        return f'roles {raw} must alternate user/assistant (an optional system first) and end with the assistant'
    return None


def assistant_text(row: Row) -> Optional[str]:
    for index, turn in enumerate(turns(row)):
        content = turn['content']
        if not isinstance(content, str):
            return f'turn {index} ({turn["role"]}) has no text (got {type(content).__name__})'
        if ROLE_ALIASES.get(turn['role']) == 'assistant' and not content.strip():
            return f'turn {index} (assistant) is empty: give the answer to train on'
    return None


def image_tags_match(row: Row) -> Optional[str]:
    tags = sum(turn['content'].count(IMAGE_TAG) for turn in turns(row))
    images = len(image_paths(row))
    if tags != images:
        return f'{tags} <image> tags but {images} images: give one <image> tag per image, in order'
    return None


def images_readable(row: Row) -> Optional[str]:
    for path in image_paths(row):
        if not os.path.isfile(path):
            return f'image file not found: {path}'
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as error:  # PIL raises many types for corrupt files
            return f'image does not decode: {path} ({type(error).__name__}: {error})'
    return None


# reason -> rule, in the order they run (each later rule may assume the earlier ones passed).
RULES: Dict[str, Rule] = {
    'no_conversations': has_turns,
    'bad_roles': roles_alternate,
    'empty_assistant': assistant_text,
    'image_count': image_tags_match,
    'image_unreadable': images_readable,
}
