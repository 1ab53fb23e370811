"""TFRecord shards -> episode folders, step-/episode-wise JSONL, error report; resume; workers; wording."""

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest

from data_tools.episodes import Episode, RecordError, read_episodes
from data_tools.unpack import ScreenshotError, UnpackOptions, check_png, main, unpack
from tests.conftest import read_jsonl
from tests.data_tools.synthetic import CATEGORIES, SCREEN, example, forest, noise_png, png, write_shard

STATUS = '{"action_type":"status","goal_status":"successful"}'


def test_read_episodes_decodes_every_feature_and_reports_broken_records(shards):
    items = list(read_episodes([str(p) for p in shards]))
    episodes = [i for i in items if isinstance(i, Episode)]
    errors = [i for i in items if isinstance(i, RecordError)]
    assert [e.episode_id for e in episodes] == [101, 202, 303, 404]
    home = episodes[1]
    assert home.goal == 'Go home'
    assert home.actions == ['{"action_type": "navigate_home"}']  # a one-element bytes list stays a list
    assert home.step_instructions == ['Go to the home screen']
    assert (home.screenshot_widths, home.screenshot_heights) == ([720, 720], [1600, 1600])
    assert home.screenshots[0] == png(720, 1600, 'red')
    assert (home.source_path, home.source_index) == (str(shards[0]), 2)
    assert episodes[2].step_instructions[1:3] == ['Type héllo', 'Type héllo']
    assert [(e.path, e.index) for e in errors] == [(str(shards[0]), 1), (str(shards[2]), 0)]
    assert errors[1].reason == (
        'shard ends inside the record (the GZIP stream is truncated); the rest of the shard is skipped '
        '(records read before it: 0)'
    )


def test_episode_wise_record_has_fedmabench_fields_and_descriptions(unpacked):
    out, _ = unpacked
    records = {r['episode_id']: r for r in read_jsonl(out / 'episode-wise-all.jsonl')}
    assert sorted(records) == [101, 202, 303]  # 404's screenshot does not decode
    wifi = records[101]
    assert wifi['instruction'] == 'Turn on Wi-Fi in Settings'
    assert wifi['sub_instructions'] == [
        'Open the Settings app',
        '',
        'Long press the wifi icon',
        'Tap outside',
        'Scroll down',
        'Check if the task is finished',
    ]
    assert wifi['acts_convert'] == [
        'Open App: Settings',
        'Click on button with the text "Wi-Fi"',  # smallest text element around (540, 1200), not "Network"
        'Long press on button with the function of "wifi icon"',
        'Click on point (1500,2600)',  # outside the 1080x2400 screen
        'Scroll down',
        'Check status: successful',
    ]
    assert wifi['acts_origin'][1] == '{"action_type": "click", "x": 540, "y": 1200}'
    assert wifi['wording'] == 'default'
    assert wifi['acts_origin'][-1] == STATUS
    assert wifi['imgs'] == [f'episodes/101/{i:02d}.png' for i in range(6)]
    assert wifi['screen_sizes'] == [list(SCREEN)] * 6
    # the box of the element each click/long press resolves to (the one its description names); none off-screen
    assert wifi['targets_bounds'] == [None, [0, 1100, 1080, 1300], [40, 1150, 140, 1250], None, None, None]
    assert (wifi['app'], wifi['category'], wifi['split'], wifi['test_subsplits']) == ('Settings', 'Tools', 'train', [])
    assert records[303]['acts_convert'] == [
        'Open App: Chrome',
        'Type text: héllo',
        'Wait for response',
        'Go back to the previous page',
        'Check status: successful',
    ]
    home = records[202]
    assert home['acts_convert'] == ['Return to the home page', 'Check status: successful']
    assert (home['app'], home['category'], home['split'], home['test_subsplits']) == (
        None,
        None,
        'test',
        ['IDD', 'app_unseen'],
    )


def test_episode_folder_holds_original_png_and_compact_elements(unpacked):
    out, _ = unpacked
    assert (out / 'episodes/202/01.png').read_bytes() == png(720, 1600, 'green')
    elements = json.loads((out / 'episodes/101/01.json').read_text())
    assert [e['text'] or e['content_description'] or e['resource_id'] for e in elements] == [
        'Network',
        'Wi-Fi',
        'wifi icon',
        'com.x:id/menu',
    ]
    assert elements[1] == {
        'bounds': [0, 1100, 1080, 1300],
        'text': 'Wi-Fi',
        'content_description': '',
        'tooltip': '',
        'hint_text': '',
        'resource_id': 'android:id/title',
        'class_name': 'android.widget.TextView',
        'clickable': True,
    }


def test_step_wise_rows_follow_episode_rows(unpacked):
    out, _ = unpacked
    steps = read_jsonl(out / 'step-wise-all.jsonl')
    assert [(s['episode_id'], s['step']) for s in steps] == [(101, i) for i in range(6)] + [(202, 0), (202, 1)] + [
        (303, i) for i in range(5)
    ]
    click = steps[1]
    assert click['sub_instruction'] == ''
    assert click['act_convert'] == 'Click on button with the text "Wi-Fi"'
    assert click['act_origin'] == '{"action_type": "click", "x": 540, "y": 1200}'
    assert click['img'] == 'episodes/101/01.png'
    assert click['elements'] == 'episodes/101/01.json'
    assert click['screen_size'] == [1080, 2400]
    assert (click['instruction'], click['app'], click['category']) == ('Turn on Wi-Fi in Settings', 'Settings', 'Tools')
    assert 'acts_convert' not in click and 'imgs' not in click


def test_errors_name_file_record_and_reason(unpacked, shards):
    out, errors = unpacked
    logged = read_jsonl(out / 'errors.jsonl')
    assert [(e['path'], e['index']) for e in logged] == [(str(shards[0]), 1), (str(shards[1]), 1), (str(shards[2]), 0)]
    # the reason names the screenshot and what is wrong with it, never a Python object's memory address
    assert logged[1]['reason'] == "episode 404: ScreenshotError: screenshot 1: not a PNG (first bytes b'not a pn')"
    assert [str(e) for e in errors] == [f'{e["path"]}: record {e["index"]}: {e["reason"]}' for e in logged]


def test_a_failed_episode_leaves_no_folder(unpacked):
    """Episode 404's first screenshot is fine and its second is not: nothing of it may stay behind."""
    out, _ = unpacked
    assert sorted(p.name for p in (out / 'episodes').iterdir()) == ['101', '202', '303']


def test_staging_folders_of_an_interrupted_run_are_removed(shards, tmp_path):
    leftover = tmp_path / 'out/episodes/.tmp-101-x1y2'
    leftover.mkdir(parents=True)
    (leftover / '00.png').write_bytes(b'half')
    list(unpack([str(shards[0])], str(tmp_path / 'out')))
    assert sorted(p.name for p in (tmp_path / 'out/episodes').iterdir()) == ['101', '202']


GOOD = png(4, 3, 'red')  # signature, IHDR, IDAT, IEND


@pytest.mark.parametrize(
    ('data', 'message'),
    [
        (b'not a png', "not a PNG (first bytes b'not a pn')"),
        (GOOD[:8] + GOOD[33:], 'PNG does not start with an IHDR chunk'),
        (png(3, 4, 'red'), 'PNG is 3x4, the episode says 4x3'),
        (GOOD[:40], 'PNG is cut: its 40 bytes end before the IEND chunk'),
        (GOOD[:-12], f'PNG is cut: its {len(GOOD) - 12} bytes end before the IEND chunk'),  # IEND is 12 bytes
        (GOOD + b'\0', 'PNG has 1 bytes after its IEND chunk'),
    ],
    ids=['not-png', 'no-ihdr', 'other-size', 'cut-in-idat', 'no-iend', 'trailing-bytes'],
)
def test_screenshot_check_names_what_is_wrong(data, message):
    with pytest.raises(ScreenshotError) as caught:
        check_png(data, 4, 3)
    assert str(caught.value) == message


def test_screenshot_check_accepts_whole_pngs_of_the_stated_size():
    check_png(GOOD, 4, 3)
    check_png(noise_png(1080, 2400, seed=0), 1080, 2400)


def test_rerun_skips_finished_episodes_and_redoes_unfinished(unpacked, shards, tmp_path):
    out, _ = unpacked
    copy = tmp_path / 'out'
    shutil.copytree(out, copy)
    (copy / 'episodes/101/00.png').write_bytes(b'kept')  # a finished episode is not rewritten
    (copy / 'episodes/303/episode.json').unlink()  # an interrupted episode is redone
    errors = list(unpack([str(p) for p in shards], str(copy), UnpackOptions(app_categories=CATEGORIES)))
    assert len(errors) == 3
    assert (copy / 'episodes/101/00.png').read_bytes() == b'kept'
    redone = json.loads((copy / 'episodes/303/episode.json').read_text())
    assert redone['split'] is None  # rewritten by this run, which had no splits file
    assert (copy / 'episode-wise-all.jsonl').read_text().count('"episode_id": 303') == 1
    assert len(read_jsonl(copy / 'step-wise-all.jsonl')) == 13


def test_unpack_is_lazy(shards, tmp_path):
    """Nothing is read before the first item is asked for, and one episode at a time after (streaming)."""
    stream = unpack([str(shards[0]), str(tmp_path / 'missing-shard')], str(tmp_path / 'out'))
    first_error = next(stream)
    assert first_error.index == 1 and (tmp_path / 'out/episodes/101/episode.json').exists()
    assert not (tmp_path / 'out/episodes/202').exists()


@pytest.mark.parametrize('omit', [(), ('actions', 'step_instructions')], ids=['empty-lists', 'absent-features'])
def test_episode_without_actions_is_kept_as_the_status_step(tmp_path, omit):
    """FedMABench reads absent features as empty lists (tf.train.Example) and keeps the episode: one screenshot, one
    appended status step."""
    shard = tmp_path / 'shard'
    write_shard(shard, [example(7, 'Nothing to do', [png(10, 20, 'red')], [(10, 20)], [forest([])], [], [], omit)])
    assert list(unpack([str(shard)], str(tmp_path / 'out'))) == []
    (record,) = read_jsonl(tmp_path / 'out/episode-wise-all.jsonl')
    assert record['acts_convert'] == ['Check status: successful']
    assert record['acts_origin'] == [STATUS]
    assert record['sub_instructions'] == ['Check if the task is finished']
    assert record['imgs'] == ['episodes/7/00.png']


def test_long_press_wording_and_resume_across_wordings(shards, tmp_path):
    """--wording fedmabench spells FedMABench's "Long_press"; a resumed run in another wording redoes the episode."""
    out = tmp_path / 'out'
    list(unpack([str(shards[0])], str(out), UnpackOptions(wording='fedmabench')))
    (wifi, _) = read_jsonl(out / 'episode-wise-all.jsonl')
    assert wifi['acts_convert'][2] == 'Long_press on button with the function of "wifi icon"'
    assert wifi['wording'] == 'fedmabench'
    list(unpack([str(shards[0])], str(out)))
    (wifi, _) = read_jsonl(out / 'episode-wise-all.jsonl')
    assert wifi['acts_convert'][2] == 'Long press on button with the function of "wifi icon"'
    assert json.loads((out / 'episodes/101/episode.json').read_text())['wording'] == 'default'


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_workers_write_the_same_output_as_one_process(shards, tmp_path):
    """Two processes, one shard each, write byte-identical files: episodes, JSONL, errors (incl. a duplicate)."""
    duplicate = tmp_path / 'android_control-00003-of-00003'
    write_shard(duplicate, [example(101, 'Another copy', [png(10, 20, 'red')], [(10, 20)], [forest([])], [], [])])
    paths = [str(p) for p in [*shards, duplicate]]
    serial, parallel = tmp_path / 'serial', tmp_path / 'parallel'
    list(unpack(paths, str(serial)))
    list(unpack(paths, str(parallel), workers=2))
    assert _files(parallel) == _files(serial)
    assert read_jsonl(serial / 'errors.jsonl')[-1]['reason'] == (
        f'duplicate episode id 101: already written from {shards[0]} record 0; skipped'
    )


def test_cli_unpacks_with_official_splits(shards, tmp_path, capsys):
    root = shards[0].parent
    categories = tmp_path / 'categories.json'
    categories.write_text(json.dumps({'Chrome': 'Web'}))
    argv = ['--shards', *map(str, shards), '--output', str(tmp_path / 'out'), '--splits', str(root / 'splits.json')]
    argv += ['--test_subsplits', str(root / 'test_subsplits.json'), '--app_categories', str(categories)]
    argv += ['--wording', 'fedmabench', '--workers', '2']
    assert main(argv) == 0
    assert '3 records skipped' in capsys.readouterr().out
    records = read_jsonl(tmp_path / 'out/episode-wise-all.jsonl')
    assert [(r['episode_id'], r['split'], r['category']) for r in records] == [
        (101, 'train', None),
        (202, 'test', None),
        (303, 'train', 'Web'),
    ]
    assert records[0]['acts_convert'][2] == 'Long_press on button with the function of "wifi icon"'


def test_memory_holds_one_episode_at_a_time(tmp_path):
    """Unpacking 80 episodes of ~240 KB peaks within 2 MiB of unpacking 20; holding the 60 more would add ~14 MB. (Both
    shards exceed the reader's 1 MiB decompression step; the run keeps only a small entry per written episode, for
    duplicate ids.)"""

    def peak_bytes(num_episodes):
        shard = tmp_path / f'shard-{num_episodes}'
        shots = [noise_png(200, 200, seed=0), noise_png(200, 200, seed=1)]
        tree = forest([{'bounds': [0, 0, 200, 200], 'text': 'OK', 'is_clickable': True}])
        click = [{'action_type': 'click', 'x': 5, 'y': 5}]
        records = [example(e, 'g', shots, [(200, 200)] * 2, [tree] * 2, click, ['i']) for e in range(num_episodes)]
        write_shard(shard, records)
        tracemalloc.start()
        assert list(unpack([str(shard)], str(tmp_path / f'out-{num_episodes}'))) == []
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, large = peak_bytes(20), peak_bytes(80)
    assert large - small < 2 * 2**20, (small, large)
