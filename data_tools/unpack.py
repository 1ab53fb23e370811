"""Unpack Android-Control TFRecord shards into per-episode folders and FedMABench's step-/episode-wise JSONL.

Output layout (paths inside records are relative to ``--output``, i.e. the converter's ``--image_root``)::

    episodes/<episode_id>/<step:02d>.png          screenshot bytes as published (PNG), checked with PIL
    episodes/<episode_id>/<step:02d>.json         compact element list of that screen
    episodes/<episode_id>/episode.json            the episode-wise record; written last, marks the episode done
    episode-wise-all.jsonl, step-wise-all.jsonl   one line per episode / per step (incl. the final status step)
    errors.jsonl                                  one line per skipped record: path, index, reason

Memory holds one episode at a time. Re-running skips episodes whose ``episode.json`` exists (resume).
"""

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

from google.protobuf.message import DecodeError
from PIL import Image
from tqdm import tqdm

from data_tools.a11y import Element, element_at, elements_from_forest
from data_tools.actions import STATUS_ACTION, STATUS_SUB_INSTRUCTION, describe_action, parse_action
from data_tools.episodes import Episode, RecordError, read_episodes
from data_tools.jsonl import dumps
from data_tools.schema import PER_STEP_FIELDS
from data_tools.splits import EpisodeSplits


def _check_png(data: bytes) -> None:
    """Raise if ``data`` is not a well-formed image; verify() checks PNG chunk CRCs without decoding pixels."""
    with Image.open(io.BytesIO(data)) as image:
        image.verify()


def _app_name(actions: Sequence[Dict]) -> Optional[str]:
    return next((a['app_name'] for a in actions if a['action_type'] == 'open_app' and 'app_name' in a), None)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)


def target_bounds(action: Dict, elements: Sequence[Element]) -> Optional[List[int]]:
    """[l, t, r, b] of the element a click or long press resolves to (the one its description names), else None."""
    if action.get('action_type') not in ('click', 'long_press'):
        return None
    element = element_at(action['x'], action['y'], elements)
    return list(element.bounds) if element is not None else None


def unpack_episode(
    episode: Episode, output: Path, splits: EpisodeSplits, app_categories: Dict[str, str]
) -> Dict[str, object]:
    """Write one episode's folder and return its episode-wise record.

    Raises ValueError (bad action), OSError or SyntaxError (bad PNG; PIL raises both) or DecodeError (bad tree)
    before ``episode.json`` is written, so a failed episode is retried on the next run.
    """
    folder = output / 'episodes' / str(episode.episode_id)
    folder.mkdir(parents=True, exist_ok=True)
    acts_origin = [*episode.actions, STATUS_ACTION]
    actions = [parse_action(a) for a in acts_origin]
    acts_convert, imgs, element_files, targets_bounds = [], [], [], []
    for step, (png, tree, action) in enumerate(zip(episode.screenshots, episode.accessibility_trees, actions)):
        _check_png(png)
        elements = elements_from_forest(tree)
        acts_convert.append(describe_action(action, elements))
        targets_bounds.append(target_bounds(action, elements))
        img, element_file = folder / f'{step:02d}.png', folder / f'{step:02d}.json'
        img.write_bytes(png)
        element_file.write_text(json.dumps([e.to_dict() for e in elements], ensure_ascii=False), encoding='utf-8')
        imgs.append(str(img.relative_to(output)))
        element_files.append(str(element_file.relative_to(output)))
    app = _app_name(actions)
    record = {
        'episode_id': episode.episode_id,
        'instruction': episode.goal,
        'sub_instructions': [*episode.step_instructions, STATUS_SUB_INSTRUCTION],
        'acts_origin': acts_origin,
        'acts_convert': acts_convert,
        'imgs': imgs,
        'elements': element_files,
        'screen_sizes': [list(size) for size in zip(episode.screenshot_widths, episode.screenshot_heights)],
        'targets_bounds': targets_bounds,
        'app': app,
        'category': app_categories.get(app) if app else None,
        'split': splits.split(episode.episode_id),
        'test_subsplits': splits.test_subsplits(episode.episode_id),
    }
    _write_atomic(folder / 'episode.json', json.dumps(record, ensure_ascii=False))
    return record


def step_records(episode_record: Dict[str, object]) -> List[Dict[str, object]]:
    """The step-wise records of an episode-wise record: per-step fields singular, the rest repeated, plus ``step``."""
    plural = set(PER_STEP_FIELDS.values())
    shared = {k: v for k, v in episode_record.items() if k not in plural}
    return [
        {**shared, 'step': i, **{one: episode_record[many][i] for one, many in PER_STEP_FIELDS.items()}}
        for i in range(len(episode_record['imgs']))
    ]


def _episode_record(
    episode: Episode, out: Path, splits: EpisodeSplits, app_categories: Dict[str, str]
) -> Union[Dict[str, object], RecordError]:
    done = out / 'episodes' / str(episode.episode_id) / 'episode.json'
    try:
        if done.exists():
            return json.loads(done.read_text(encoding='utf-8'))
        return unpack_episode(episode, out, splits, app_categories)
    except (ValueError, OSError, SyntaxError, DecodeError) as exc:
        reason = f'episode {episode.episode_id}: {type(exc).__name__}: {exc}'
        return RecordError(episode.source_path, episode.source_index, reason)


def unpack(
    shards: Sequence[str],
    output: str,
    splits: Optional[EpisodeSplits] = None,
    app_categories: Optional[Dict[str, str]] = None,
) -> Iterator[RecordError]:
    """Unpack ``shards`` into ``output`` (layout in the module docstring); yields every skipped record."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    splits = splits or EpisodeSplits({})
    with (
        open(out / 'episode-wise-all.jsonl', 'w', encoding='utf-8') as episodes_f,
        open(out / 'step-wise-all.jsonl', 'w', encoding='utf-8') as steps_f,
        open(out / 'errors.jsonl', 'w', encoding='utf-8') as errors_f,
    ):
        for item in tqdm(read_episodes(shards), desc='episodes', unit='ep'):
            record = item if isinstance(item, RecordError) else _episode_record(item, out, splits, app_categories or {})
            if isinstance(record, RecordError):
                errors_f.write(dumps({'path': record.path, 'index': record.index, 'reason': record.reason}))
                yield record
                continue
            episodes_f.write(dumps(record))
            steps_f.writelines(dumps(step) for step in step_records(record))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shards', nargs='+', required=True, help='GZIP TFRecord shards (android_control-*).')
    parser.add_argument('--output', required=True, help='Output directory.')
    parser.add_argument('--splits', help='Official splits.json (adds the `split` field).')
    parser.add_argument('--test_subsplits', help='Official test_subsplits.json (adds `test_subsplits`).')
    parser.add_argument('--app_categories', help='JSON object app name -> category (adds `category`).')
    args = parser.parse_args(argv)
    categories = json.loads(Path(args.app_categories).read_text()) if args.app_categories else {}
    splits = EpisodeSplits.from_files(args.splits, args.test_subsplits)
    errors = 0
    for error in unpack(sorted(args.shards), args.output, splits, categories):
        errors += 1
        tqdm.write(f'skipped: {error}', file=sys.stderr)
    print(f'done: {args.output} ({errors} records skipped, see errors.jsonl)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
