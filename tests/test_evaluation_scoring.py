"""FedMABench's TF-IDF score against hand-computed values, and the step/episode aggregation and breakdowns."""

import json
import math

import pytest

from swift_ext.evaluation.actions import Action
from swift_ext.evaluation.inference import Generation, judge_all
from swift_ext.evaluation.matching import MatchOptions
from swift_ext.evaluation.report import label_round, markdown_table
from swift_ext.evaluation.scoring import score
from swift_ext.evaluation.steps import EvalStep
from swift_ext.evaluation.tfidf import tfidf_cosine


def test_tfidf_matches_hand_computed_sklearn_defaults():
    # "click on button" vs "click on icon": shared tokens idf = ln(3/3) + 1 = 1, unique ones ln(3/2) + 1;
    # cosine = 2 / (2 + (ln 1.5 + 1)^2).
    expected = 2 / (2 + (math.log(1.5) + 1) ** 2)
    assert tfidf_cosine('Click on button', 'click on ICON') == pytest.approx(expected)
    assert tfidf_cosine('Scroll down', 'scroll down') == pytest.approx(1.0)
    assert tfidf_cosine('Scroll down', 'Wait for response') == 0.0
    assert tfidf_cosine('', '') == 0.0  # scikit-learn raises (empty vocabulary); counted as no match
    assert tfidf_cosine('a b', 'a b') == 0.0  # one-letter tokens are not tokens for TfidfVectorizer


def test_tfidf_passes_a_click_on_the_wrong_button():
    """The issue's complaint: the wrong element with similar words passes the 0.6 threshold."""
    gold, wrong = 'Click on button with the text "Timer"', 'Click on button with the text "Alarm"'
    assert tfidf_cosine(gold, wrong) > 0.6


def step(episode: str, index: int, gold: Action, gold_text: str, **meta) -> EvalStep:
    return EvalStep(episode=episode, step=index, gold_text=gold_text, gold=gold, **meta)


def test_episode_success_needs_every_step_and_breakdowns_group_steps():
    steps = [
        step('1', 0, Action('open_app', text='Clock'), 'Open App: Clock', app='Clock', subsplits=('IDD',)),
        step('1', 1, Action('click', target='Timer'), 'Click on button with the text "Timer"', app='Clock',
             subsplits=('IDD',)),
        step('2', 0, Action('scroll', direction='down'), 'Scroll down', app='Files', category='Tools',
             subsplits=('IDD', 'app_unseen')),
        step('3', 0, Action('wait'), 'Wait for response', app='Files', category='Tools', subsplits=('app_unseen',)),
    ]  # fmt: skip
    predictions = ['Open App: clock', 'Click on button with the text "Alarm"', 'Scroll down', 'garbage']
    result = score(judge_all(steps, [Generation(p) for p in predictions], 'fedmabench', MatchOptions()))
    overall = result['overall']
    assert overall == pytest.approx({
        'steps': 4, 'unparseable': 1, 'type_accuracy': 3 / 4, 'step_success': 2 / 4,
        'tfidf_step_accuracy': 3 / 4,  # "Alarm" passes TF-IDF, "garbage" does not
        'episodes': 3, 'episode_success': 1 / 3, 'tfidf_episode_accuracy': 2 / 3,
    })  # fmt: skip
    assert result['by_app']['Clock']['episode_success'] == 0.0
    assert result['by_app']['Files']['episode_success'] == 0.5
    assert list(result['by_category']) == ['Tools']
    assert result['by_subsplit']['IDD']['steps'] == 3 and result['by_subsplit']['app_unseen']['steps'] == 2
    assert result['by_action_type']['click'] == {'steps': 1, 'unparseable': 0, 'type_accuracy': 1.0,
                                                 'step_success': 0.0, 'tfidf_step_accuracy': 1.0}  # fmt: skip
    table = markdown_table({'global_lora_1': result})
    assert '| global_lora_1 | 4 | 3 | 1 | 75.0% | 50.0% | 33.3% | 75.0% | 66.7% |' in table


def test_round_labels():
    assert [label_round(x) for x in ('global_lora_12', 'base', 'final')] == [12, 0, None]


def test_gold_in_another_format_is_an_error_naming_file_and_line(tmp_path):
    from swift_ext.evaluation.steps import StepError, read_steps

    path = tmp_path / 'test.jsonl'
    turns = [{'from': 'user', 'value': '<image>go'}, {'from': 'assistant', 'value': 'Scroll down'}]
    path.write_text('\n' + json.dumps({'conversations': turns, 'images': ['a.png']}) + '\n')
    assert read_steps(str(path), 'fedmabench')[0].gold == Action('scroll', direction='down')
    with pytest.raises(StepError, match=rf'{path}:2: gold answer .* --prompt_format'):
        read_steps(str(path), 'json')


def test_structured_gold_with_bounds_makes_clicks_grounded(tmp_path):
    """acts_origin with the target's bounds: a point inside the box is right even far from the gold point."""
    from swift_ext.evaluation.steps import conversation_steps

    act = {'action_type': 'click', 'x': 10, 'y': 10, 'bounds': [0, 0, 1080, 600]}
    row = {'conversations': [{'from': 'user', 'value': '<image>go'}, {'from': 'assistant', 'value': json.dumps(act)}],
           'images': ['a.png'], 'acts_origin': [json.dumps(act)], 'screen_sizes': [[1080, 2400]]}  # fmt: skip
    steps = conversation_steps(row, 'json', 'row 1', 1)
    assert steps[0].gold.bounds == (0, 0, 1080, 600) and steps[0].gold.screen == (1080, 2400)
    verdicts = judge_all(steps, [Generation('{"action_type": "click", "x": 1000, "y": 590}')], 'json', MatchOptions())
    assert verdicts[0].step_correct


def test_command_refuses_both_modes():
    from swift_ext.evaluation.cli import evaluate

    with pytest.raises(SystemExit):
        evaluate(['--results', 'r.jsonl', '--model', 'm', '--output_dir', 'o'])


def test_broken_structured_gold_names_the_row():
    from swift_ext.evaluation.steps import StepError, conversation_steps

    row = {'conversations': [{'from': 'user', 'value': 'go'}, {'from': 'assistant', 'value': 'Scroll down'}],
           'acts_origin': ['{"action_type": "click"']}  # fmt: skip
    with pytest.raises(StepError, match='test.jsonl:7: gold action is not JSON'):
        conversation_steps(row, 'fedmabench', 'test.jsonl:7', 7)


def two_rounds() -> dict:
    """Round 1 gets 1 of 2 steps right (50%), round 2 both (100%): one click, one scroll, two episodes."""
    steps = [
        step('1', 0, Action('click', target='Timer'), 'Click on button with the text "Timer"'),
        step('2', 0, Action('scroll', direction='down'), 'Scroll down'),
    ]
    answers = {'global_lora_1': ['Click on button with the text "Alarm"', 'Scroll down'],
               'global_lora_2': ['Click on button with the text "Timer"', 'Scroll down']}  # fmt: skip
    return {
        label: score(judge_all(steps, [Generation(a) for a in texts], 'fedmabench', MatchOptions()))
        for label, texts in answers.items()
    }


def test_table_and_charts_share_the_percent_unit_and_charts_carry_a_title():
    import matplotlib.pyplot as plt

    from swift_ext.evaluation.report import by_type_figure, chart_title, overview_figure

    results = two_rounds()
    title = chart_title(results, {'run': 'v0-20250101', 'prompt_format': 'fedmabench'})
    assert title == 'v0-20250101 · fedmabench · n = 2 steps, 2 episodes'
    assert '| global_lora_1 | 2 | 2 | 0 | 100.0% | 50.0% | 50.0% |' in markdown_table(results)
    overview = overview_figure(results, title)
    axes = overview.axes[0]
    assert axes.get_title() == title and '%' in axes.get_ylabel()
    assert axes.yaxis.get_major_formatter()(50, 0) == '50%'
    step_line = next(line for line in axes.get_lines() if line.get_label() == 'step success')
    assert list(step_line.get_xdata()) == [1, 2] and list(step_line.get_ydata()) == [50.0, 100.0]
    by_type = by_type_figure(results, title)
    assert by_type.axes[0].get_title() == title
    # bars per model in label order, types sorted: click 0% then 100%, scroll 100% twice
    assert [bar.get_height() for bar in by_type.axes[0].patches] == [0.0, 100.0, 100.0, 100.0]
    plt.close('all')


def test_a_chart_without_data_says_so():
    import matplotlib.pyplot as plt

    from swift_ext.evaluation.report import NO_DATA, by_type_figure, chart_title, overview_figure

    results = {'base': score([])}
    title = chart_title(results, {'run': 'r', 'prompt_format': 'json'})
    assert title == 'r · json · n = 0 steps, 0 episodes'
    for figure in (overview_figure(results, title), by_type_figure(results, title)):
        axes = figure.axes[0]
        assert [text.get_text() for text in axes.texts] == [NO_DATA] and axes.get_legend() is None
    assert [text.get_text() for text in overview_figure(two_rounds(), title).axes[0].texts] == []
    plt.close('all')
