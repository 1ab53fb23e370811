"""Damaged GZIP TFRecord shards: checksums, corrupted lengths, truncation, duplicate episode ids.

The shards are real GZIP TFRecord files framed by ``synthetic.frame`` with ``tfrecord``'s own masked CRC32C, so the
checksums data_tools verifies are computed independently of it. Each test asserts the exact set of episodes written
and the exact ``errors.jsonl`` lines.
"""

import struct
import zlib

import pytest

from data_tools.unpack import unpack
from tests.conftest import read_jsonl
from tests.data_tools.synthetic import example, forest, frame, noise_png, png, write_frames, write_shard

PAYLOAD_MISMATCH = 'checksum mismatch: the payload differs from its CRC32C; skipped'


def episode(episode_id: int, goal: str = 'Go home', screenshot: bytes = png(10, 20, 'red')) -> bytes:
    """A one-screen episode (no actions: only FedMABench's status step)."""
    width, height = struct.unpack('>II', screenshot[16:24])  # the PNG's IHDR size
    return example(episode_id, goal, [screenshot], [(width, height)], [forest([])], [], [])


def written(out) -> list:
    return [record['episode_id'] for record in read_jsonl(out / 'episode-wise-all.jsonl')]


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x58]) + data[position + 1 :]


ALARM = episode(2, 'Delete the 7:00 AM alarm')
GOAL_AT = 12 + ALARM.index(b'Delete')  # 'D' ^ 0x58 == 'X': the goal would read "Xelete the 7:00 AM alarm"


@pytest.mark.parametrize(
    ('corrupt', 'kept'),
    [
        (lambda f: flip(f, GOAL_AT), [1, 3]),  # payload byte
        (lambda f: flip(f, len(f) - 1), [1, 3]),  # payload CRC
    ],
    ids=['payload-byte', 'payload-crc'],
)
def test_payload_checksum_mismatch_skips_only_that_record(tmp_path, corrupt, kept):
    shard, other = tmp_path / 'shard-0', tmp_path / 'shard-1'
    frames = [frame(episode(1)), frame(ALARM), frame(episode(3))]
    assert corrupt(frames[1]) != frames[1]
    write_frames(shard, [frames[0], corrupt(frames[1]), frames[2]])
    write_shard(other, [episode(4)])
    out = tmp_path / 'out'
    errors = list(unpack([str(shard), str(other)], str(out)))
    assert written(out) == [*kept, 4]
    assert read_jsonl(out / 'errors.jsonl') == [{'path': str(shard), 'index': 1, 'reason': PAYLOAD_MISMATCH}]
    assert [str(e) for e in errors] == [f'{shard}: record 1: {PAYLOAD_MISMATCH}']


@pytest.mark.parametrize('position', [5, 8], ids=['length-field', 'length-crc'])
def test_corrupted_length_is_a_shard_error_and_the_next_shard_is_read(tmp_path, position):
    """Byte 5 of the length field adds 2**40 to the length (TensorFlow-free readers that trust it allocate a
    terabyte); byte 8 is the length's CRC. Either way record 1 and everything after it in the shard are lost."""
    shard, other = tmp_path / 'shard-0', tmp_path / 'shard-1'
    frames = [frame(episode(1)), frame(ALARM), frame(episode(3))]
    damaged = flip(frames[1], position)
    write_frames(shard, [frames[0], damaged, frames[2]])
    write_shard(other, [episode(4)])
    out = tmp_path / 'out'
    list(unpack([str(shard), str(other)], str(out)))
    (length,) = struct.unpack('<Q', damaged[:8])
    reason = (
        f'length checksum mismatch (length field reads {length}); the rest of the shard is skipped '
        '(records read before it: 1)'
    )
    assert written(out) == [1, 4]
    assert read_jsonl(out / 'errors.jsonl') == [{'path': str(shard), 'index': 1, 'reason': reason}]


def test_truncated_shard_keeps_every_complete_record_and_reports_the_cut_once(tmp_path):
    """Ten ~12 KB episodes of random pixels; the GZIP file is cut at 70% of its bytes. The complete records are those
    whose frames fit in what zlib can decompress from the cut file (computed here with zlib directly)."""
    records = [episode(i, screenshot=noise_png(64, 64, seed=i)) for i in range(10)]
    whole, cut, other = tmp_path / 'whole', tmp_path / 'shard-0', tmp_path / 'shard-1'
    write_shard(whole, records)
    data = whole.read_bytes()
    cut.write_bytes(data[: int(0.7 * len(data))])
    write_shard(other, [episode(100)])
    available = len(zlib.decompressobj(wbits=31).decompress(cut.read_bytes()))
    ends = [sum(len(frame(r)) for r in records[: k + 1]) for k in range(len(records))]
    complete = sum(end <= available for end in ends)
    assert complete in (6, 7)  # 70% of ten equal, incompressible records
    out = tmp_path / 'out'
    list(unpack([str(cut), str(other)], str(out)))
    assert written(out) == [*range(complete), 100]
    reason = (
        'shard ends inside the record (the GZIP stream is truncated); the rest of the shard is skipped '
        f'(records read before it: {complete})'
    )
    assert read_jsonl(out / 'errors.jsonl') == [{'path': str(cut), 'index': complete, 'reason': reason}]


@pytest.mark.parametrize('workers', [1, 2])
def test_duplicate_episode_id_across_shards_is_reported_and_written_once(tmp_path, workers):
    first, second = tmp_path / 'shard-0', tmp_path / 'shard-1'
    write_shard(first, [episode(1), episode(2, 'first copy')])
    write_shard(second, [episode(2, 'second copy', png(10, 20, 'blue')), episode(3)])
    out = tmp_path / 'out'
    expected_error = {
        'path': str(second),
        'index': 0,
        'reason': f'duplicate episode id 2: already written from {first} record 1; skipped',
    }
    for _ in range(2):  # a resumed run reports the same and still writes each episode once
        list(unpack([str(first), str(second)], str(out), workers=workers))
        assert written(out) == [1, 2, 3]
        steps = read_jsonl(out / 'step-wise-all.jsonl')
        assert [(s['episode_id'], s['step'], s['instruction']) for s in steps] == [
            (1, 0, 'Go home'),
            (2, 0, 'first copy'),
            (3, 0, 'Go home'),
        ]
        assert (out / 'episodes/2/00.png').read_bytes() == png(10, 20, 'red')
        assert read_jsonl(out / 'errors.jsonl') == [expected_error]
        assert sorted(p.name for p in (out / 'episodes').iterdir()) == ['1', '2', '3']


def test_concatenated_gzip_members_read_as_one_shard(tmp_path):
    shard = tmp_path / 'shard-0'
    write_shard(tmp_path / 'a', [episode(1), episode(2)])
    write_shard(tmp_path / 'b', [episode(3)])
    shard.write_bytes((tmp_path / 'a').read_bytes() + (tmp_path / 'b').read_bytes())
    out = tmp_path / 'out'
    assert list(unpack([str(shard)], str(out))) == []
    assert written(out) == [1, 2, 3]


def test_a_file_that_is_not_gzip_is_a_shard_error(tmp_path):
    shard, other = tmp_path / 'shard-0', tmp_path / 'shard-1'
    shard.write_bytes(frame(episode(1)))  # an uncompressed TFRecord file
    write_shard(other, [episode(4)])
    out = tmp_path / 'out'
    list(unpack([str(shard), str(other)], str(out)))
    assert written(out) == [4]
    reason = (
        'unreadable GZIP data (error: Error -3 while decompressing data: incorrect header check); '
        'the rest of the shard is skipped (records read before it: 0)'
    )
    assert read_jsonl(out / 'errors.jsonl') == [{'path': str(shard), 'index': 0, 'reason': reason}]
