"""A synthetic Android-Control release: GZIP TFRecord shards with the published feature names and types.

Framing follows the TFRecord format (length, masked CRC32C of the length, payload, masked CRC32C of the payload)
using ``tfrecord.writer.TFRecordWriter.masked_crc``; the writer itself only writes uncompressed files.
"""

import gzip
import io
import json
import random
import struct
from pathlib import Path
from typing import Dict, List, Sequence

from android_env.proto.a11y.android_accessibility_forest_pb2 import AndroidAccessibilityForest
from PIL import Image
from tfrecord import example_pb2
from tfrecord.writer import TFRecordWriter


def png(width: int, height: int, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new('RGB', (width, height), color).save(buffer, format='PNG')
    return buffer.getvalue()


def noise_png(width: int, height: int, seed: int) -> bytes:
    """A PNG of random pixels: GZIP cannot shrink it, so compressed offsets track record offsets."""
    buffer = io.BytesIO()
    Image.frombytes('RGB', (width, height), random.Random(seed).randbytes(width * height * 3)).save(buffer, 'PNG')
    return buffer.getvalue()


def window(nodes: Sequence[Dict], **info) -> Dict:
    """A window dict for ``forest_of``: ``nodes`` (dicts with ``bounds`` [l, t, r, b] and node-info fields, e.g.
    ``child_ids`` as positions in ``nodes``) and window-info fields; active full-screen application window unless
    ``info`` says otherwise."""
    return {'nodes': nodes, 'info': {'is_active': True, 'window_type': 1, 'bounds': [0, 0, *SCREEN], **info}}


def _set_rect(rect, box: Sequence[int]) -> None:
    rect.left, rect.top, rect.right, rect.bottom = box


def forest_of(windows: Sequence[Dict]) -> bytes:
    """Serialized forest of ``window`` dicts; node unique ids are their positions in the window."""
    message = AndroidAccessibilityForest()
    for spec in windows:
        proto = message.windows.add(**{k: v for k, v in spec['info'].items() if k != 'bounds'})
        _set_rect(proto.bounds_in_screen, spec['info']['bounds'])
        for i, node in enumerate(spec['nodes']):
            _set_rect(
                proto.tree.nodes.add(unique_id=i, **{k: v for k, v in node.items() if k != 'bounds'}).bounds_in_screen,
                node['bounds'],
            )
    return message.SerializeToString()


def forest(nodes: Sequence[Dict]) -> bytes:
    """Serialized forest of one active full-screen application window holding ``nodes``."""
    return forest_of([window(nodes)])


def example(
    episode_id: int,
    goal: str,
    screenshots: List[bytes],
    sizes: List[tuple],
    trees: List[bytes],
    actions: List[Dict],
    step_instructions: List[str],
    omit: Sequence[str] = (),
) -> bytes:
    """A serialized tf.train.Example with Android-Control's eight features, less the ``omit`` ones."""
    ex = example_pb2.Example()
    feature = ex.features.feature
    feature['episode_id'].int64_list.value.append(episode_id)
    feature['goal'].bytes_list.value.append(goal.encode())
    feature['screenshots'].bytes_list.value.extend(screenshots)
    feature['screenshot_widths'].int64_list.value.extend(w for w, _ in sizes)
    feature['screenshot_heights'].int64_list.value.extend(h for _, h in sizes)
    feature['accessibility_trees'].bytes_list.value.extend(trees)
    feature['actions'].bytes_list.value.extend(json.dumps(a).encode() for a in actions)
    feature['step_instructions'].bytes_list.value.extend(s.encode() for s in step_instructions)
    for name in omit:
        del feature[name]
    return ex.SerializeToString()


def frame(record: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, payload, masked CRC32C of the payload."""
    length = struct.pack('<Q', len(record))
    return length + TFRecordWriter.masked_crc(length) + record + TFRecordWriter.masked_crc(record)


def write_frames(path: Path, frames: Sequence[bytes]) -> None:
    """Write already framed (possibly corrupted) records as one GZIP file."""
    with gzip.open(path, 'wb') as f:
        f.writelines(frames)


def write_shard(path: Path, records: Sequence[bytes]) -> None:
    """Write ``records`` (serialized payloads, valid or not) as one GZIP TFRecord file."""
    write_frames(path, [frame(record) for record in records])


SCREEN = (1080, 2400)
SETTINGS_TREE = forest(
    [
        {'bounds': [0, 0, 1080, 2400], 'class_name': 'android.widget.FrameLayout'},  # nothing to show: dropped
        {'bounds': [0, 1000, 1080, 1500], 'text': 'Network', 'class_name': 'android.widget.LinearLayout'},
        {
            'bounds': [0, 1100, 1080, 1300],
            'text': 'Wi-Fi',
            'view_id_resource_name': 'android:id/title',
            'class_name': 'android.widget.TextView',
            'is_clickable': True,
        },
        {'bounds': [40, 1150, 140, 1250], 'content_description': 'wifi icon', 'class_name': 'android.widget.ImageView'},
        {'bounds': [900, 100, 1000, 200], 'view_id_resource_name': 'com.x:id/menu', 'is_clickable': True},
    ]
)
EMPTY_TREE = forest([])

# episode_id -> (goal, actions, step instructions, screen size); N-1 actions for N screenshots.
EPISODES = {
    101: (
        'Turn on Wi-Fi in Settings',
        [
            {'action_type': 'open_app', 'app_name': 'Settings'},
            {'action_type': 'click', 'x': 540, 'y': 1200},
            {'action_type': 'long_press', 'x': 90, 'y': 1200},
            {'action_type': 'click', 'x': 1500, 'y': 2600},
            {'action_type': 'scroll', 'direction': 'down'},
        ],
        ['Open the Settings app', '', 'Long press the wifi icon', 'Tap outside', 'Scroll down'],
        SCREEN,
    ),
    202: ('Go home', [{'action_type': 'navigate_home'}], ['Go to the home screen'], (720, 1600)),
    303: (
        'Search héllo in Chrome',
        [
            {'action_type': 'open_app', 'app_name': 'Chrome'},
            {'action_type': 'input_text', 'text': 'héllo'},
            {'action_type': 'wait'},
            {'action_type': 'navigate_back'},
        ],
        ['Open Chrome', 'Type héllo', 'Type héllo', 'Go back'],
        SCREEN,
    ),
}


def episode_record(episode_id: int, content_of: int = 0, broken_png: bool = False) -> bytes:
    """Serialized episode ``episode_id`` with the content of EPISODES[content_of or episode_id]."""
    goal, actions, instructions, size = EPISODES[content_of or episode_id]
    num_screens = len(actions) + 1
    shots = [png(*size, color) for color in ('red', 'green', 'blue', 'white', 'black', 'gray')[:num_screens]]
    if broken_png:
        shots[1] = b'not a png'
    return example(episode_id, goal, shots, [size] * num_screens, [SETTINGS_TREE] * num_screens, actions, instructions)


SPLITS = {'train': [101, 303], 'validation': [], 'test': [202, 404]}
TEST_SUBSPLITS = {'IDD': [202], 'app_unseen': [202, 404]}
CATEGORIES = {'Settings': 'Tools', 'Chrome': 'Web'}
