"""Stream Android-Control episodes out of GZIP TFRecord shards without TensorFlow.

Framing and GZIP come from the ``tfrecord`` package; each record is parsed with its bundled ``tf.train.Example``
proto directly rather than through ``tfrecord.reader.example_loader``, because that loader returns a lone ``bytes``
for one-element lists and packs longer lists into ``np.array(dtype=bytes)``, which strips trailing NUL bytes from
serialized accessibility trees.
"""

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Union

from google.protobuf.message import DecodeError
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator

# feature name -> proto list kind, as published by google-research/android_control.
FEATURES = {
    'episode_id': 'int64_list',
    'goal': 'bytes_list',
    'screenshots': 'bytes_list',
    'screenshot_widths': 'int64_list',
    'screenshot_heights': 'int64_list',
    'accessibility_trees': 'bytes_list',
    'actions': 'bytes_list',
    'step_instructions': 'bytes_list',
}


@dataclass
class Episode:
    """One episode: N screenshots/trees/sizes, N-1 actions (JSON) and step instructions."""

    episode_id: int
    goal: str
    screenshots: List[bytes]
    screenshot_widths: List[int]
    screenshot_heights: List[int]
    accessibility_trees: List[bytes]
    actions: List[str]
    step_instructions: List[str]
    source_path: str = ''
    source_index: int = -1


@dataclass(frozen=True)
class RecordError:
    """A record that was skipped: shard path, 0-based record index in the shard, reason."""

    path: str
    index: int
    reason: str

    def __str__(self) -> str:
        return f'{self.path}: record {self.index}: {self.reason}'


def _values(example: example_pb2.Example, name: str) -> list:
    feature = example.features.feature.get(name)
    if feature is None:
        raise ValueError(f'missing feature {name!r}')
    kind = feature.WhichOneof('kind')
    if kind != FEATURES[name]:
        raise ValueError(f'feature {name!r} is {kind}, expected {FEATURES[name]}')
    return list(getattr(feature, kind).value)


def episode_from_example(serialized: bytes, source_path: str = '', source_index: int = -1) -> Episode:
    """Parse one serialized ``tf.train.Example``; ValueError/DecodeError naming the problem if it is malformed."""
    example = example_pb2.Example()
    example.ParseFromString(serialized)
    (episode_id,) = _values(example, 'episode_id')
    (goal,) = _values(example, 'goal')
    episode = Episode(
        episode_id=int(episode_id),
        goal=goal.decode('utf-8'),
        screenshots=_values(example, 'screenshots'),
        screenshot_widths=[int(v) for v in _values(example, 'screenshot_widths')],
        screenshot_heights=[int(v) for v in _values(example, 'screenshot_heights')],
        accessibility_trees=_values(example, 'accessibility_trees'),
        actions=[v.decode('utf-8') for v in _values(example, 'actions')],
        step_instructions=[v.decode('utf-8') for v in _values(example, 'step_instructions')],
        source_path=source_path,
        source_index=source_index,
    )
    num_screens = len(episode.screenshots)
    per_screen = (len(episode.screenshot_widths), len(episode.screenshot_heights), len(episode.accessibility_trees))
    if num_screens == 0 or per_screen != (num_screens,) * 3:
        raise ValueError(f'{num_screens} screenshots but (widths, heights, trees) = {per_screen}')
    if len(episode.actions) != num_screens - 1 or len(episode.step_instructions) != num_screens - 1:
        raise ValueError(
            f'{num_screens} screenshots need {num_screens - 1} actions and step instructions, '
            f'got {len(episode.actions)} and {len(episode.step_instructions)}'
        )
    return episode


def read_episodes(paths: Sequence[str]) -> Iterator[Union[Episode, RecordError]]:
    """Yield every episode of the GZIP shards in order, or a RecordError for a record that cannot be parsed.

    An unreadable shard yields one RecordError and reading continues with the next shard. A truncated GZIP shard
    is unreadable as a whole (record index 0): ``tfrecord`` decompresses it once to find its length before the first
    record. One record is in memory at a time.
    """
    for path in paths:
        index = 0
        records = tfrecord_iterator(str(path), compression_type='gzip')
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except (RuntimeError, OSError, EOFError) as exc:
                yield RecordError(str(path), index, f'unreadable shard from here on: {exc}')
                break
            try:
                yield episode_from_example(bytes(record), str(path), index)
            except (DecodeError, ValueError, UnicodeDecodeError) as exc:
                yield RecordError(str(path), index, str(exc))
            index += 1
