"""Session fixtures: the synthetic release of ``synthetic.py`` written as shards, and its unpacked output."""

import json

import pytest

from data_tools.splits import EpisodeSplits
from data_tools.unpack import UnpackOptions, unpack
from tests.data_tools.synthetic import CATEGORIES, SPLITS, TEST_SUBSPLITS, episode_record, write_shard


@pytest.fixture(scope='session')
def shards(tmp_path_factory) -> list:
    """shard 0: episode 101, a corrupt record, episode 202; shard 1: episode 303, episode 404 with a broken PNG;
    shard 2: a truncated GZIP file."""
    root = tmp_path_factory.mktemp('shards')
    paths = [root / f'android_control-0000{i}-of-00003' for i in range(3)]
    write_shard(paths[0], [episode_record(101), b'\x0a\x05garbage-not-an-example', episode_record(202)])
    write_shard(paths[1], [episode_record(303), episode_record(404, content_of=202, broken_png=True)])
    paths[2].write_bytes(paths[1].read_bytes()[:40])
    (root / 'splits.json').write_text(json.dumps(SPLITS))
    (root / 'test_subsplits.json').write_text(json.dumps(TEST_SUBSPLITS))
    return paths


@pytest.fixture(scope='session')
def unpacked(shards, tmp_path_factory) -> tuple:
    """(output directory, skipped-record errors) of unpacking ``shards`` with splits and categories."""
    out = tmp_path_factory.mktemp('unpacked')
    root = shards[0].parent
    splits = EpisodeSplits.from_files(str(root / 'splits.json'), str(root / 'test_subsplits.json'))
    errors = list(unpack([str(p) for p in shards], str(out), UnpackOptions(splits, CATEGORIES)))
    return out, errors
