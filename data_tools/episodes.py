"""Stream Android-Control episodes out of GZIP TFRecord shards without TensorFlow, verifying every checksum.

A shard is a GZIP stream of TFRecords, each: uint64 length, uint32 masked CRC32C of the length's 8 bytes, the
payload, uint32 masked CRC32C of the payload (little-endian; ``mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 mod
2**32``, TensorFlow's ``core/lib/hash/crc32c.h``). The shard is decompressed as it is read, one record in memory at a
time, and problems are reported as ``RecordError`` (shard, 0-based record index, reason):

* payload checksum mismatch: that record is skipped; reading goes on with the next record (its length was verified);
* length checksum mismatch, or a shard that ends or stops decompressing inside a record: the rest of the shard cannot
  be framed, so it is reported once and reading goes on with the next shard; every complete record before it is kept
  (as TensorFlow's reader does). Nothing is read on the word of an unverified length; a verified one is read only as
  far as the data goes.

The ``tfrecord`` package is not used: its reader verifies no checksum and decompresses a GZIP shard whole to find its
size before the first record; its ``example_loader`` returns a lone ``bytes`` for one-element lists and packs longer
lists into ``np.array(dtype=bytes)``, stripping trailing NUL bytes from serialized accessibility trees; and importing
it imports torch (seconds in every worker process). ``tf.train.Example`` is declared here instead (``EXAMPLE``).
"""

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple, Union

import crc32c
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

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
#: Absent in episodes without actions; read as empty lists, as tf.train.Example (and FedMABench) read them.
OPTIONAL_FEATURES = ('actions', 'step_instructions')

_FIELD = descriptor_pb2.FieldDescriptorProto


def _example_message() -> type:
    """The ``tf.train.Example`` message class (tensorflow/core/example/{example,feature}.proto: Example.features ->
    Features.feature map<string, Feature> -> oneof kind {BytesList, FloatList, Int64List}, each ``repeated value``),
    in a private descriptor pool so it never clashes with another copy of the same proto."""
    proto = descriptor_pb2.FileDescriptorProto(
        name='data_tools/tf_example.proto', package='tensorflow', syntax='proto3'
    )
    lists = (('bytes_list', 'BytesList', _FIELD.TYPE_BYTES), ('float_list', 'FloatList', _FIELD.TYPE_FLOAT))
    lists += (('int64_list', 'Int64List', _FIELD.TYPE_INT64),)
    feature = proto.message_type.add(name='Feature')
    feature.oneof_decl.add(name='kind')
    for number, (field, name, kind) in enumerate(lists, start=1):
        proto.message_type.add(name=name).field.add(name='value', number=1, type=kind, label=_FIELD.LABEL_REPEATED)
        feature.field.add(
            name=field, number=number, type=_FIELD.TYPE_MESSAGE, type_name=f'.tensorflow.{name}', oneof_index=0
        )
    features = proto.message_type.add(name='Features')
    entry = features.nested_type.add(name='FeatureEntry')
    entry.options.map_entry = True
    entry.field.add(name='key', number=1, type=_FIELD.TYPE_STRING)
    entry.field.add(name='value', number=2, type=_FIELD.TYPE_MESSAGE, type_name='.tensorflow.Feature')
    features.field.add(
        name='feature',
        number=1,
        type=_FIELD.TYPE_MESSAGE,
        type_name='.tensorflow.Features.FeatureEntry',
        label=_FIELD.LABEL_REPEATED,
    )
    example = proto.message_type.add(name='Example')
    example.field.add(name='features', number=1, type=_FIELD.TYPE_MESSAGE, type_name='.tensorflow.Features')
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName('tensorflow.Example'))


EXAMPLE = _example_message()
_CRC_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct('<QI')  # length, masked CRC32C of the length
_FOOTER = struct.Struct('<I')  # masked CRC32C of the payload


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
    """A record that was skipped: shard path, 0-based record index in the shard, reason, and the episode id when the
    record got far enough to have one."""

    path: str
    index: int
    reason: str
    episode_id: Optional[int] = None

    def __str__(self) -> str:
        return f'{self.path}: record {self.index}: {self.reason}'


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data`` (formula in the module docstring)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


class GzipStream:
    """The decompressed bytes of a GZIP file, decompressed a few MB at a time as they are read.

    zlib does the work (``wbits=31``: GZIP header, deflate, and each member's CRC-32/size trailer); members may be
    concatenated. Python 3.11's ``gzip`` module is not used because it decompresses 8 KB of input per call, which
    costs a quarter of the read time on screenshot-sized records. ``read`` raises EOFError where the file ends inside
    a member and ``zlib.error`` on corrupt data.
    """

    CHUNK = 1 << 20  # compressed bytes read, and at most as many bytes decompressed, per step

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._inflate = zlib.decompressobj(wbits=31)
        self._in_member = False
        self._input = b''  # compressed bytes zlib has not consumed yet
        self._output = bytearray()

    def read(self, size: int) -> bytes:
        """The next ``size`` bytes; fewer only at the end of the file."""
        while len(self._output) < size and self._decompress_step():
            pass
        with memoryview(self._output) as view:
            data = bytes(view[:size])
        del self._output[:size]
        return data

    def _decompress_step(self) -> bool:
        """Decompress up to CHUNK more bytes into the output; False at the end of the file."""
        if not self._input:
            self._input = self._file.read(self.CHUNK)
            if not self._input:
                if self._in_member:
                    raise EOFError('the GZIP stream ends inside a member')
                return False
        self._in_member = True
        self._output += self._inflate.decompress(self._input, self.CHUNK)
        self._input = self._inflate.unconsumed_tail
        if self._inflate.eof:  # a member ended; what follows it, if anything, is the next member
            self._input = self._inflate.unused_data
            self._inflate = zlib.decompressobj(wbits=31)
            self._in_member = False
        return True


def _cut(path: str, index: int, detail: str) -> RecordError:
    return RecordError(path, index, f'{detail}; the rest of the shard is skipped (records read before it: {index})')


def read_records(path: str) -> Iterator[Union[Tuple[int, bytes], RecordError]]:
    """Yield (record index, payload) for every record of the GZIP shard ``path`` whose checksums match, and a
    RecordError for every record that cannot be used (rules in the module docstring)."""
    index = 0
    try:
        with open(path, 'rb') as file:
            stream = GzipStream(file)
            while True:
                header = stream.read(_HEADER.size)
                if not header:
                    return
                if len(header) < _HEADER.size:
                    yield _cut(path, index, 'shard ends inside a record header (truncated)')
                    return
                length, length_crc = _HEADER.unpack(header)
                if masked_crc32c(header[:8]) != length_crc:
                    yield _cut(path, index, f'length checksum mismatch (length field reads {length})')
                    return
                payload = stream.read(length)
                footer = stream.read(_FOOTER.size)
                if len(payload) < length or len(footer) < _FOOTER.size:
                    yield _cut(path, index, f'shard ends inside the record ({len(payload)} of {length} bytes)')
                    return
                if masked_crc32c(payload) == _FOOTER.unpack(footer)[0]:
                    yield index, payload
                else:
                    yield RecordError(path, index, 'checksum mismatch: the payload differs from its CRC32C; skipped')
                index += 1
    except EOFError:
        yield _cut(path, index, 'shard ends inside the record (the GZIP stream is truncated)')
    except (OSError, zlib.error) as exc:
        yield _cut(path, index, f'unreadable GZIP data ({type(exc).__name__}: {exc})')


def _values(example: Message, name: str) -> list:
    feature = example.features.feature.get(name)
    if feature is None:
        if name in OPTIONAL_FEATURES:
            return []
        raise ValueError(f'missing feature {name!r}')
    kind = feature.WhichOneof('kind')
    if kind != FEATURES[name]:
        raise ValueError(f'feature {name!r} is {kind}, expected {FEATURES[name]}')
    return list(getattr(feature, kind).value)


def episode_from_example(serialized: bytes, source_path: str = '', source_index: int = -1) -> Episode:
    """Parse one serialized ``tf.train.Example``; ValueError/DecodeError naming the problem if it is malformed."""
    example = EXAMPLE()
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


def read_shard(path: str) -> Iterator[Union[Episode, RecordError]]:
    """Yield every episode of one GZIP shard in order, or a RecordError for a record that cannot be used."""
    for item in read_records(path):
        if isinstance(item, RecordError):
            yield item
            continue
        index, payload = item
        try:
            yield episode_from_example(payload, path, index)
        except (DecodeError, ValueError, UnicodeDecodeError) as exc:
            yield RecordError(path, index, str(exc))


def read_episodes(paths: Sequence[str]) -> Iterator[Union[Episode, RecordError]]:
    """``read_shard`` over ``paths`` in order; a broken shard never stops the next one."""
    for path in paths:
        yield from read_shard(str(path))
