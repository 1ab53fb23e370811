"""Unpack Android-Control TFRecord shards into per-episode folders and FedMABench's step-/episode-wise JSONL.

Output layout (paths inside records are relative to ``--output``, i.e. the converter's ``--image_root``)::

    episodes/<episode_id>/<step:02d>.png          screenshot bytes as published (PNG), structure checked
    episodes/<episode_id>/<step:02d>.json         the screen's elements as FedMABench selects them (data_tools.a11y)
    episodes/<episode_id>/episode.json            the episode-wise record
    episode-wise-all.jsonl, step-wise-all.jsonl   one line per episode / per step (incl. the final status step)
    errors.jsonl                                  one line per skipped record: path, index, reason

An episode is written into a hidden staging folder ``episodes/.tmp-<id>-*`` and renamed to ``episodes/<id>`` when
complete, so a failed or interrupted episode leaves no ``episodes/<id>``. Each shard is read by one process
(``--workers``); the main process takes the results in shard order, so the output does not depend on the number of
workers. An episode id met again (in the same or another shard) is reported as a duplicate and written once, from
its first record. Each process holds one episode in memory at a time. Re-running skips episodes whose
``episode.json`` exists with the same ``--wording`` (resume).
"""

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from google.protobuf.message import DecodeError
from tqdm import tqdm

from data_tools.a11y import Element, element_at, screen_elements
from data_tools.actions import STATUS_ACTION, STATUS_SUB_INSTRUCTION, WORDINGS, describe_action, parse_action
from data_tools.episodes import Episode, RecordError, read_shard
from data_tools.jsonl import dumps
from data_tools.schema import PER_STEP_FIELDS
from data_tools.splits import EpisodeSplits

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_CHUNK = struct.Struct('>I4s')  # chunk data length, chunk type; then the data and a 4-byte CRC
STAGING_PREFIX = '.tmp-'


class ScreenshotError(ValueError):
    """A screenshot that is not a complete PNG of its stated size."""


def check_png(data: bytes, width: int, height: int) -> None:
    """Raise ScreenshotError unless ``data`` is a complete PNG of ``width`` x ``height``: the PNG signature, an IHDR
    chunk first with those dimensions, and chunks that end with IEND exactly at the end of ``data``.

    Pixels are not decoded and chunk CRCs are not recomputed: the record's CRC32C already proves the bytes are the
    ones the publisher wrote, so this check only has to catch bytes that never were a whole PNG of that size.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ScreenshotError(f'not a PNG (first bytes {data[:8]!r})')
    if len(data) < 24 or data[12:16] != b'IHDR':
        raise ScreenshotError('PNG does not start with an IHDR chunk')
    size = struct.unpack_from('>II', data, 16)
    if size != (width, height):
        raise ScreenshotError(f'PNG is {size[0]}x{size[1]}, the episode says {width}x{height}')
    offset = len(PNG_SIGNATURE)
    while offset + _PNG_CHUNK.size <= len(data):
        length, chunk_type = _PNG_CHUNK.unpack_from(data, offset)
        offset += _PNG_CHUNK.size + length + 4
        if chunk_type == b'IEND':
            break
    if chunk_type != b'IEND' or offset > len(data):
        raise ScreenshotError(f'PNG is cut: its {len(data)} bytes end before the IEND chunk')
    if offset < len(data):
        raise ScreenshotError(f'PNG has {len(data) - offset} bytes after its IEND chunk')


@dataclass(frozen=True)
class UnpackOptions:
    """splits (EpisodeSplits): adds ``split`` and ``test_subsplits``. app_categories (Dict[str, str]): app name ->
    category (adds ``category``). wording (str): one of data_tools.actions.WORDINGS."""

    splits: EpisodeSplits = field(default_factory=lambda: EpisodeSplits({}))
    app_categories: Dict[str, str] = field(default_factory=dict)
    wording: str = 'default'


@dataclass(frozen=True)
class UnpackedEpisode:
    """An episode's record; ``staged`` is the folder to rename to ``episodes/<id>``, None when an earlier run
    finished it."""

    record: Dict[str, object]
    source_path: str
    source_index: int
    staged: Optional[str]


def _app_name(actions: Sequence[Dict]) -> Optional[str]:
    return next((a['app_name'] for a in actions if a['action_type'] == 'open_app' and 'app_name' in a), None)


def target_bounds(action: Dict, elements: Sequence[Element]) -> Optional[List[int]]:
    """[l, t, r, b] of the element a click or long press lands on (labelled or not), else None."""
    if action.get('action_type') not in ('click', 'long_press'):
        return None
    element = element_at(action['x'], action['y'], elements)
    return list(element.bounds) if element is not None else None


def write_episode(episode: Episode, folder: Path, options: UnpackOptions) -> Dict[str, object]:
    """Write one episode's files into ``folder`` and return its episode-wise record, whose paths name the episode's
    final folder ``episodes/<id>``. Raises ValueError (bad action or screenshot) or DecodeError (bad tree)."""
    final = Path('episodes', str(episode.episode_id))
    acts_origin = [*episode.actions, STATUS_ACTION]
    actions = [parse_action(a) for a in acts_origin]
    screens = zip(episode.screenshots, episode.screenshot_widths, episode.screenshot_heights)
    acts_convert, imgs, element_files, targets_bounds = [], [], [], []
    for step, ((png, width, height), tree, action) in enumerate(zip(screens, episode.accessibility_trees, actions)):
        try:
            check_png(png, width, height)
        except ScreenshotError as exc:
            raise ScreenshotError(f'screenshot {step}: {exc}') from None
        elements = screen_elements(tree, width, height)
        acts_convert.append(describe_action(action, elements, options.wording))
        targets_bounds.append(target_bounds(action, elements))
        (folder / f'{step:02d}.png').write_bytes(png)
        element_json = json.dumps([e.to_dict() for e in elements], ensure_ascii=False)
        (folder / f'{step:02d}.json').write_text(element_json, encoding='utf-8')
        imgs.append(str(final / f'{step:02d}.png'))
        element_files.append(str(final / f'{step:02d}.json'))
    app = _app_name(actions)
    record = {
        'episode_id': episode.episode_id,
        'instruction': episode.goal,
        'sub_instructions': [*episode.step_instructions, STATUS_SUB_INSTRUCTION],
        'acts_origin': acts_origin,
        'acts_convert': acts_convert,
        'wording': options.wording,
        'imgs': imgs,
        'elements': element_files,
        'screen_sizes': [list(size) for size in zip(episode.screenshot_widths, episode.screenshot_heights)],
        'targets_bounds': targets_bounds,
        'app': app,
        'category': options.app_categories.get(app) if app else None,
        'split': options.splits.split(episode.episode_id),
        'test_subsplits': options.splits.test_subsplits(episode.episode_id),
    }
    (folder / 'episode.json').write_text(json.dumps(record, ensure_ascii=False), encoding='utf-8')
    return record


def _finished_record(folder: Path, wording: str) -> Optional[Dict[str, object]]:
    """The record of an episode an earlier run finished in the same wording, else None."""
    try:
        record = json.loads((folder / 'episode.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return record if record.get('wording') == wording else None


def unpack_episode(episode: Episode, output: Path, options: UnpackOptions) -> Union[UnpackedEpisode, RecordError]:
    """Stage one episode under ``output/episodes`` (or reuse a finished one); a RecordError if it cannot be written,
    in which case nothing of it is left on disk."""
    source = (episode.source_path, episode.source_index)
    record = _finished_record(output / 'episodes' / str(episode.episode_id), options.wording)
    if record is not None:
        return UnpackedEpisode(record, *source, staged=None)
    staging = Path(tempfile.mkdtemp(prefix=f'{STAGING_PREFIX}{episode.episode_id}-', dir=output / 'episodes'))
    staging.chmod((output / 'episodes').stat().st_mode & 0o777)  # mkdtemp's 0700 would stay on episodes/<id>
    try:
        record = write_episode(episode, staging, options)
    except (ValueError, OSError, DecodeError) as exc:
        shutil.rmtree(staging)
        return RecordError(*source, f'episode {episode.episode_id}: {type(exc).__name__}: {exc}', episode.episode_id)
    except BaseException:
        shutil.rmtree(staging)
        raise
    return UnpackedEpisode(record, *source, staged=str(staging))


def unpack_shard(path: str, output: Path, options: UnpackOptions) -> Iterator[Union[UnpackedEpisode, RecordError]]:
    """Stage every episode of one shard, in record order; a RecordError for each record that is skipped."""
    for item in read_shard(path):
        yield item if isinstance(item, RecordError) else unpack_episode(item, output, options)


def _unpack_shard_list(path: str, output: Path, options: UnpackOptions) -> List[Union[UnpackedEpisode, RecordError]]:
    return list(unpack_shard(path, output, options))


def _shard_items(
    shards: Sequence[str], output: Path, options: UnpackOptions, workers: int
) -> Iterator[Union[UnpackedEpisode, RecordError]]:
    """The items of every shard in shard order: read here one at a time (1 worker), or one process per shard."""
    if workers == 1:
        for path in shards:
            yield from unpack_shard(path, output, options)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context('spawn')) as pool:
        for items in pool.map(_unpack_shard_list, shards, repeat(output), repeat(options)):
            yield from items


def step_records(episode_record: Dict[str, object]) -> List[Dict[str, object]]:
    """The step-wise records of an episode-wise record: per-step fields singular, the rest repeated, plus ``step``."""
    plural = set(PER_STEP_FIELDS.values())
    shared = {k: v for k, v in episode_record.items() if k not in plural}
    return [
        {**shared, 'step': i, **{one: episode_record[many][i] for one, many in PER_STEP_FIELDS.items()}}
        for i in range(len(episode_record['imgs']))
    ]


def _commit(item: UnpackedEpisode, output: Path) -> None:
    """Rename the staged folder to ``episodes/<id>``, replacing an unfinished or other-wording one of an earlier run."""
    if item.staged is None:
        return
    final = output / 'episodes' / str(item.record['episode_id'])
    if final.exists():
        shutil.rmtree(final)
    os.rename(item.staged, final)


def _duplicate(item: Union[UnpackedEpisode, RecordError], written: Dict[int, Tuple[str, int]]) -> Optional[RecordError]:
    """A RecordError if ``item``'s episode id was already written by this run (its staged copy is removed)."""
    episode_id = item.record['episode_id'] if isinstance(item, UnpackedEpisode) else item.episode_id
    if episode_id not in written:
        return None
    if isinstance(item, UnpackedEpisode) and item.staged is not None:
        shutil.rmtree(item.staged)
    path, index = (
        (item.source_path, item.source_index) if isinstance(item, UnpackedEpisode) else (item.path, item.index)
    )
    first_path, first_index = written[episode_id]
    reason = f'duplicate episode id {episode_id}: already written from {first_path} record {first_index}; skipped'
    return RecordError(path, index, reason, episode_id)


def _remove_staging_folders(episodes: Path) -> None:
    """Staging folders left by an interrupted run hold no finished episode."""
    for folder in episodes.glob(f'{STAGING_PREFIX}*'):
        shutil.rmtree(folder)


def unpack(
    shards: Sequence[str], output: str, options: Optional[UnpackOptions] = None, workers: int = 1
) -> Iterator[RecordError]:
    """Unpack ``shards`` into ``output`` (layout in the module docstring) with ``workers`` processes; yields every
    skipped record as it is written to ``errors.jsonl``."""
    if workers < 1:
        raise ValueError(f'workers={workers}; use 1 or more')
    options = options or UnpackOptions()
    out = Path(output)
    (out / 'episodes').mkdir(parents=True, exist_ok=True)
    _remove_staging_folders(out / 'episodes')
    written: Dict[int, Tuple[str, int]] = {}
    with (
        open(out / 'episode-wise-all.jsonl', 'w', encoding='utf-8') as episodes_f,
        open(out / 'step-wise-all.jsonl', 'w', encoding='utf-8') as steps_f,
        open(out / 'errors.jsonl', 'w', encoding='utf-8') as errors_f,
    ):
        items = _shard_items([str(s) for s in shards], out, options, workers)
        for item in tqdm(items, desc='episodes', unit='ep'):
            item = _duplicate(item, written) or item
            if isinstance(item, RecordError):
                errors_f.write(dumps({'path': item.path, 'index': item.index, 'reason': item.reason}))
                yield item
                continue
            _commit(item, out)
            written[item.record['episode_id']] = (item.source_path, item.source_index)
            episodes_f.write(dumps(item.record))
            steps_f.writelines(dumps(step) for step in step_records(item.record))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shards', nargs='+', required=True, help='GZIP TFRecord shards (android_control-*).')
    parser.add_argument('--output', required=True, help='Output directory.')
    parser.add_argument('--splits', help='Official splits.json (adds the `split` field).')
    parser.add_argument('--test_subsplits', help='Official test_subsplits.json (adds `test_subsplits`).')
    parser.add_argument('--app_categories', help='JSON object app name -> category (adds `category`).')
    parser.add_argument(
        '--wording',
        default='default',
        choices=WORDINGS,
        help='default: "Long press on ..."; fedmabench: "Long_press on ..." as in FedMABench\'s data.',
    )
    parser.add_argument('--workers', type=int, default=1, help='Processes, one shard each (default 1).')
    args = parser.parse_args(argv)
    categories = json.loads(Path(args.app_categories).read_text()) if args.app_categories else {}
    splits = EpisodeSplits.from_files(args.splits, args.test_subsplits)
    options = UnpackOptions(splits, categories, args.wording)
    errors = 0
    for error in unpack(sorted(args.shards), args.output, options, args.workers):
        errors += 1
        tqdm.write(f'skipped: {error}', file=sys.stderr)
    print(f'done: {args.output} ({errors} records skipped, see errors.jsonl)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
