"""How test rows become scored steps: a click named by its element in FedMABench wording is scored the same with the
structured gold (``--dataset``, ``acts_origin``) as from the gold text alone, and rows as ms-swift stores them
(``messages`` turns as JSON strings, the round loop's validation rows) are read like the jsonl."""

import json

import pytest

from data_tools.actions import STATUS_ACTION
from data_tools.conversations import ConvertOptions, conversation_row
from swift_ext.evaluation.actions import Action
from swift_ext.evaluation.cli import evaluate as eval_main
from swift_ext.evaluation.inference import Generation, judge_all, rows_steps
from swift_ext.evaluation.matching import MatchOptions
from swift_ext.evaluation.steps import StepError, conversation_steps, read_steps

SCREEN = [1080, 2400]
MORE_OPTIONS = 'Click on button with the function of "More options"'
# Step-wise records as data_tools.unpack writes them: the resolved element's box is target_bounds, and the wording
# names the element when it has a label (Android-Control episode 140: the "More options" icon, then the e-mail
# "To" field, an EditText with no label, hence a point).
RECORDS = [
    {'act_origin': {'action_type': 'click', 'x': 1027, 'y': 209}, 'act_convert': MORE_OPTIONS,
     'target_bounds': [990, 170, 1064, 248]},
    {'act_origin': {'action_type': 'click', 'x': 54, 'y': 525}, 'act_convert': 'Click on point (54,525)',
     'target_bounds': [0, 480, 1080, 570]},
]  # fmt: skip
# (prediction of record 0 or 1, step correct with the structured gold, step correct from the gold text alone)
CASES = [
    (0, MORE_OPTIONS, True, True),  # the gold text itself
    (0, 'Click on button with the function of "more  options"', True, True),  # case and spaces
    (0, 'Click on button with the text "Share"', False, False),  # another element
    # A point inside the element: grounded by its box with acts_origin; the text alone gives no point to compare.
    (0, 'Click on point (1000,200)', True, False),
    # A point 800 px right of the gold point but inside the field's box (0.30 of the diagonal: wrong by distance).
    (1, 'Click on point (854,525)', True, False),
    (1, 'Click on button with the text "To"', False, False),  # the gold element has no label to compare with
]


def step_rows(tmp_path) -> str:
    """The conversation rows of RECORDS written by data_tools' converter (FedMABench wording), one per record."""
    path = tmp_path / 'test.jsonl'
    with open(path, 'w', encoding='utf-8') as f:
        for n, record in enumerate(RECORDS):
            record = {**record, 'act_origin': json.dumps(record['act_origin']), 'episode_id': 140, 'step': n,
                      'instruction': 'Share the book by e-mail', 'img': f'{n}.png', 'screen_size': SCREEN}  # fmt: skip
            f.write(json.dumps(conversation_row(record, ConvertOptions(prompt_format='fedmabench'))) + '\n')
    return str(path)


def verdicts_of(tmp_path, with_dataset: bool) -> list:
    """Each case scored through the command from a swift infer result file (one row per test row)."""
    dataset = step_rows(tmp_path)
    results = tmp_path / f'infer_{with_dataset}.jsonl'
    with open(results, 'w', encoding='utf-8') as f:
        for record, prediction, *_ in CASES:
            f.write(json.dumps({'response': prediction, 'labels': RECORDS[record]['act_convert']}) + '\n')
    dataset_rows = [json.loads(line) for line in open(dataset, encoding='utf-8')]
    with open(dataset, 'w', encoding='utf-8') as f:  # one test row per case, in the result file's order
        f.writelines(json.dumps(dataset_rows[record]) + '\n' for record, *_ in CASES)
    out = tmp_path / f'eval_{with_dataset}'
    argv = ['--results', str(results), '--prompt_format', 'fedmabench', '--output_dir', str(out)]
    eval_main(argv + (['--dataset', dataset] if with_dataset else []))
    return [json.loads(line)['step_correct'] for line in open(out / f'predictions_infer_{with_dataset}.jsonl')]


def test_named_clicks_score_with_and_without_the_structured_gold(tmp_path):
    assert verdicts_of(tmp_path, with_dataset=True) == [case[2] for case in CASES]
    assert verdicts_of(tmp_path, with_dataset=False) == [case[3] for case in CASES]


def test_structured_gold_carries_the_label_its_text_names(tmp_path):
    """Generation mode reads the test rows themselves: the gold has its label and its element's box."""
    labelled, unlabelled = read_steps(step_rows(tmp_path), 'fedmabench')
    assert labelled.gold == Action(
        'click', point=(1027, 209), target='More options', bounds=(990, 170, 1064, 248), screen=(1080, 2400)
    )
    assert unlabelled.gold.target is None and unlabelled.gold.bounds == (0, 480, 1080, 570)
    generations = [Generation(MORE_OPTIONS), Generation('Click on point (854,525)')]
    assert [v.step_correct for v in judge_all([labelled, unlabelled], generations, 'fedmabench', MatchOptions())] == [
        True,
        True,
    ]


def test_gold_text_and_structured_action_of_different_types_are_an_error():
    row = {'conversations': [{'from': 'user', 'value': 'go'}, {'from': 'assistant', 'value': 'Scroll down'}],
           'acts_origin': [STATUS_ACTION]}  # fmt: skip
    with pytest.raises(StepError, match=r'test.jsonl:3: gold answer .Scroll down. is a scroll but .* a status'):
        conversation_steps(row, 'fedmabench', 'test.jsonl:3', 3)


def test_rows_as_ms_swift_stores_them_are_read_like_the_jsonl(sample_jsonl):
    """The round loop hands evaluate_generation rows of the dataset ms-swift loaded: ``messages`` is a list of JSON
    strings and images are {'path', 'bytes'} (this crashed with "string indices must be integers")."""
    from swift.dataset import load_dataset

    train, _ = load_dataset([sample_jsonl], num_proc=1)
    rows = train.select(range(3)).to_list()
    assert isinstance(rows[0]['messages'][0], str)  # what ms-swift 4.6 stores; the test means nothing otherwise
    with open(sample_jsonl, encoding='utf-8') as f:
        raw = [json.loads(next(f)) for _ in range(3)]
    expected = [s for n, row in enumerate(raw, 1) for s in conversation_steps(row, 'fedmabench', f'row {n}', n)]
    steps = rows_steps(rows, 'fedmabench')
    assert [(s.gold, s.gold_text, s.messages) for s in steps] == [(s.gold, s.gold_text, s.messages) for s in expected]
    assert [[image['path'] for image in s.images] for s in steps] == [s.images for s in expected]
    assert any(s.gold.target for s in steps)  # label-named clicks among them


def test_a_turn_that_is_neither_object_nor_json_names_the_row():
    row = {'messages': ['{"role": "user", "content": "go"}', 'not json']}
    with pytest.raises(StepError, match=r'row 4: a "messages" turn is a string but not JSON'):
        conversation_steps(row, 'fedmabench', 'row 4', 4)
