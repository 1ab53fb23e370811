"""Real Android-Control test annotations (tests/fixtures/evaluation, see PROVENANCE.md) through the data pipeline's
converter in each prompt format: gold vs gold scores 100%; systematically perturbed predictions score exactly the
counts this test derives from the perturbation rules (written from the matching definitions, not the code)."""

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import pytest

from data_tools.actions import describe_action
from data_tools.conversations import ConvertOptions, conversation_row
from data_tools.prompts import PROMPT_FORMATS, Step
from swift_ext.evaluation.cli import evaluate as eval_main
from swift_ext.evaluation.inference import Generation, judge_all
from swift_ext.evaluation.matching import MatchOptions
from swift_ext.evaluation.scoring import score
from swift_ext.evaluation.steps import conversation_steps

FIXTURES = Path(__file__).parent / 'fixtures' / 'evaluation'
SCREEN = [1080, 2400]  # only to write mobile_use swipes; the rows carry no screen size (devices differ)
DIAGONAL = math.hypot(*SCREEN)
FORMATS = sorted(PROMPT_FORMATS)


def episodes() -> dict:
    """episode id -> its Android-Control actions, in step order (the id is the number in the screenshot name)."""
    by_episode = defaultdict(list)
    for row in json.loads((FIXTURES / 'uir1_ac_test_episodes.json').read_text(encoding='utf-8')):
        by_episode[int(re.match(r'episode_(\d+)-', row['image']).group(1))].append(row['gt'])
    return dict(by_episode)


def subsplits() -> dict:
    names = defaultdict(list)
    for name, ids in json.loads((FIXTURES / 'test_subsplits_subset.json').read_text()).items():
        for episode in ids:
            names[episode].append(name)
    return names


def conversation_rows(prompt_format: str) -> list:
    """Episode-wise conversation rows written by data_tools' converter from FedMABench-style records."""
    split_names = subsplits()
    rows = []
    for episode, acts in episodes().items():
        record = {
            'episode_id': episode, 'instruction': 'goal', 'imgs': [f'{episode}_{i}.png' for i in range(len(acts))],
            'acts_origin': [json.dumps(a) for a in acts], 'acts_convert': [describe_action(a) for a in acts],
            'screen_sizes': [SCREEN] * len(acts), 'app': f'app{episode % 3}',
            'test_subsplits': split_names[episode],
        }  # fmt: skip
        rows.append(conversation_row(record, ConvertOptions(prompt_format=prompt_format)))
    return rows


def answer(prompt_format: str, act: dict) -> str:
    step = Step('goal', '', act, describe_action(act), 'x.png', SCREEN)
    return PROMPT_FORMATS[prompt_format].answer(step)


OPPOSITE = {'up': 'down', 'down': 'up', 'left': 'right', 'right': 'left'}


def on_screen(act: dict) -> bool:
    return 0 <= act['x'] <= SCREEN[0] and 0 <= act['y'] <= SCREEN[1]


def perturb(act: dict, k: int, screen_known: bool) -> tuple:
    """(perturbed action, type still right, step still right) for the k-th step of its type, by the definitions:
    a click moved 0.10 of the diagonal is right, 0.20 is wrong, and one moved off the row's screen is wrong unless
    the gold point was already off it; a reversed scroll is wrong; upper-cased, re-spaced text is right, other text is
    wrong; home for back and wait for open_app are wrong types."""
    kind = act['action_type']
    if kind == 'click':
        shift = [0, 0.10, 0.20][k % 3] * DIAGONAL
        moved = {**act, 'y': act['y'] + round(shift)}
        kept_on_screen = not screen_known or on_screen(moved) or not on_screen(act)
        return moved, True, shift < 0.14 * DIAGONAL and kept_on_screen
    if kind == 'scroll':
        return ({**act, 'direction': OPPOSITE[act['direction']]}, True, False) if k % 2 else (act, True, True)
    if kind == 'input_text':
        return (
            ({**act, 'text': 'zzz qqq'}, True, False) if k % 2 else ({**act, 'text': act['text'].upper()}, True, True)
        )
    if kind == 'open_app':
        return (
            ({'action_type': 'wait'}, False, False)
            if k % 2
            else ({**act, 'app_name': act['app_name'].lower()}, True, True)
        )
    if kind == 'navigate_back':
        return {'action_type': 'navigate_home'}, False, False
    raise AssertionError(f'fixture has an action type this test does not perturb: {kind}')


def perturbed_predictions(prompt_format: str, screen_known: bool = True) -> tuple:
    """Prediction text per (episode, step) and the expected type/step verdicts (``screen_known``: the gold steps carry
    the screen size, as conversation rows do; swift infer result rows carry only the label text)."""
    texts, types_right, steps_right = {}, {}, {}
    seen = defaultdict(int)
    for episode, acts in episodes().items():
        for step, act in enumerate(acts):
            new, type_right, step_right = perturb(act, seen[act['action_type']], screen_known)
            seen[act['action_type']] += 1
            key = (str(episode), step)
            texts[key], types_right[key], steps_right[key] = answer(prompt_format, new), type_right, step_right
    return texts, types_right, steps_right


def click_keys() -> set:
    return {(str(e), i) for e, acts in episodes().items() for i, a in enumerate(acts) if a['action_type'] == 'click'}


def scored(prompt_format: str, predictions: dict) -> dict:
    steps = [s for n, row in enumerate(conversation_rows(prompt_format), 1)
             for s in conversation_steps(row, prompt_format, f'row {n}', n)]  # fmt: skip
    generations = [Generation(predictions[(s.episode, s.step)]) for s in steps]
    return score(judge_all(steps, generations, prompt_format, MatchOptions()))


@pytest.mark.parametrize('prompt_format', FORMATS)
def test_gold_against_gold_scores_everything_correct(prompt_format):
    golds = {(str(e), i): answer(prompt_format, a) for e, acts in episodes().items() for i, a in enumerate(acts)}
    result = scored(prompt_format, golds)
    overall = result['overall']
    assert overall['steps'] == 75 and overall['episodes'] == 15 and overall['unparseable'] == 0
    for key in ('type_accuracy', 'step_success', 'episode_success', 'tfidf_step_accuracy', 'tfidf_episode_accuracy'):
        assert overall[key] == 1.0, key
    assert set(result['by_action_type']) == {'click', 'scroll', 'open_app', 'input_text', 'navigate_back'}


@pytest.mark.parametrize('prompt_format', FORMATS)
def test_perturbed_predictions_score_what_the_rules_say(prompt_format):
    texts, types_right, steps_right = perturbed_predictions(prompt_format)
    result = scored(prompt_format, texts)
    overall = result['overall']
    episodes_right = defaultdict(lambda: True)
    for (episode, _), right in steps_right.items():
        episodes_right[episode] &= right
    assert overall['unparseable'] == 0
    assert overall['type_accuracy'] == pytest.approx(sum(types_right.values()) / 75)
    assert overall['step_success'] == pytest.approx(sum(steps_right.values()) / 75)
    assert overall['episode_success'] == pytest.approx(sum(episodes_right.values()) / 15)
    assert 0 < overall['step_success'] < overall['type_accuracy'] < 1  # the perturbations bite
    idd = {episode for episode, names in subsplits().items() if 'IDD' in names}
    idd_steps = [right for (episode, _), right in steps_right.items() if int(episode) in idd]
    assert result['by_subsplit']['IDD']['step_success'] == pytest.approx(sum(idd_steps) / len(idd_steps))
    # 42 clicks moved 0, 0.10, 0.20 of the diagonal in turn: the 14 moved 0.20 are wrong, and so are those that
    # 0.10 pushes off the bottom of the screen.
    clicks_right = [steps_right[key] for key, text in texts.items() if key in click_keys()]
    assert 14 <= 42 - sum(clicks_right) < 28
    assert result['by_action_type']['click'] == pytest.approx(
        {**result['by_action_type']['click'], 'steps': 42, 'type_accuracy': 1.0,
         'step_success': sum(clicks_right) / 42}
    )  # fmt: skip
    assert result['by_action_type']['scroll']['step_success'] == pytest.approx(8 / 16)  # every other one reversed


def test_scoring_swift_infer_results_writes_the_report(tmp_path):
    """A swift infer result file (one row per step: response, labels) scored through the CLI."""
    texts, _, steps_right = perturbed_predictions('json', screen_known=False)
    golds = {(str(e), i): answer('json', a) for e, acts in episodes().items() for i, a in enumerate(acts)}
    result_path = tmp_path / 'round_1.jsonl'
    with open(result_path, 'w', encoding='utf-8') as f:
        for (episode, step), label in golds.items():
            row = {'response': texts[(episode, step)], 'labels': label, 'episode_id': episode, 'step': step}
            f.write(json.dumps(row) + '\n')
    out = tmp_path / 'eval'
    results = eval_main(['--results', str(result_path), '--prompt_format', 'json', '--output_dir', str(out),
                         '--test_subsplits', str(FIXTURES / 'test_subsplits_subset.json')])  # fmt: skip
    written = json.loads((out / 'metrics.json').read_text())
    assert written['results'] == json.loads(json.dumps(results))
    assert written['results']['round_1']['overall']['step_success'] == pytest.approx(sum(steps_right.values()) / 75)
    assert set(written['results']['round_1']['by_subsplit']) == {'IDD', 'app_unseen', 'category_unseen', 'task_unseen'}
    assert '| round_1 | 75 | 15 | 0 |' in (out / 'metrics.md').read_text()
    assert (out / 'images' / 'metrics.png').stat().st_size > 0
    assert len((out / 'predictions_round_1.jsonl').read_text().splitlines()) == 75
