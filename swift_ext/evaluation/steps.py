"""Test rows -> the steps to evaluate: the prompt that precedes each gold assistant turn, and its gold action.

Two row kinds are read:

* conversation rows (``data_tools.conversations``; ms-swift ``conversations``/``messages`` columns): every assistant
  turn is one step; its prompt is the conversation up to the user turn before it (earlier gold answers as history,
  as in training) with the images those turns reference.
* ``swift infer`` result rows (``response``, ``labels``): one step each, the row's last assistant turn.

The gold action of step k comes from the row's structured actions when present (``acts_origin[k]`` in episode rows,
``act_origin`` in step rows; Android-Control JSON, with optional ``bounds`` and ``screen_size`` keys, and
``screen_sizes[k]`` / ``screen_size`` columns), else from parsing the gold answer text in the prompt format. A
structured click or long press also gets the element label its gold answer names (FedMABench's ``Click on button
with the text "X"``), so that a prediction naming the element can match it (``matching``).
Rows keep ``episode_id`` (else the row number is the episode), ``app``, ``category`` and ``test_subsplits``.

Turns may be dicts or JSON strings of dicts: ms-swift stores the ``messages`` of a loaded dataset that way (its
``List(Json())`` feature), and the round loop evaluates such rows.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from data_tools.jsonl import iter_jsonl
from swift_ext.evaluation.actions import UNPARSEABLE, Action, GoldActionError, gold_action
from swift_ext.evaluation.parsers import parse_action

ROLES = {'user': 'user', 'human': 'user', 'assistant': 'assistant', 'gpt': 'assistant', 'system': 'system'}


class StepError(ValueError):
    """A test row whose gold step cannot be read; the message names file, line and the fix."""


@dataclass(frozen=True)
class EvalStep:
    """One step to score. ``messages`` end with the user turn to answer (None for result rows, already answered);
    ``prediction`` is the model text when already known."""

    episode: str
    step: int
    gold_text: str
    gold: Action
    messages: Optional[List[Dict[str, str]]] = None
    images: List[str] = field(default_factory=list)
    prediction: Optional[str] = None
    app: Optional[str] = None
    category: Optional[str] = None
    subsplits: Tuple[str, ...] = ()


def read_jsonl(path: str) -> Iterator[Tuple[int, Dict]]:
    """(1-based line number, row) of every non-blank line; StepError naming the line that is not a JSON object."""
    for line_no, row in iter_jsonl(path):
        if isinstance(row, str):
            raise StepError(f'{path}:{line_no}: not a JSON object line ({row})')
        yield line_no, row


def _turns(row: Mapping, column: str, where: str) -> List[Mapping]:
    """The turns of ``row[column]``, each a dict; JSON-string turns (ms-swift's stored messages) are decoded."""
    turns = row[column]
    try:
        turns = json.loads(turns) if isinstance(turns, str) else turns
        turns = [json.loads(turn) if isinstance(turn, str) else turn for turn in turns]
    except json.JSONDecodeError as exc:
        raise StepError(f'{where}: a "{column}" turn is a string but not JSON ({exc})') from exc
    if not isinstance(turns, list) or not all(isinstance(turn, Mapping) for turn in turns):
        raise StepError(f'{where}: "{column}" must be a list of turn objects')
    return turns


def _messages(row: Mapping, where: str) -> List[Dict[str, str]]:
    if 'messages' in row:
        turns = [(turn['role'], turn['content']) for turn in _turns(row, 'messages', where)]
    elif 'conversations' in row:
        turns = [(turn['from'], turn['value']) for turn in _turns(row, 'conversations', where)]
    else:
        raise StepError(f'{where}: no "conversations" or "messages" column; write rows with data_tools.conversations')
    unknown = [role for role, _ in turns if role not in ROLES]
    if unknown:
        raise StepError(f'{where}: unknown role {unknown[0]!r}; use one of {sorted(ROLES)}')
    return [{'role': ROLES[role], 'content': content} for role, content in turns]


def _structured_golds(row: Mapping) -> Optional[List[object]]:
    if row.get('acts_origin') is not None:
        sizes = row.get('screen_sizes') or [None] * len(row['acts_origin'])
        return [_with_screen(act, size) for act, size in zip(row['acts_origin'], sizes)]
    if row.get('act_origin') is not None:
        return [_with_screen(row['act_origin'], row.get('screen_size'))]
    return None


def _with_screen(act: object, size: Optional[Sequence[int]]) -> object:
    """``act`` (dict or JSON string) with the step's screen size added; left as is when it is not a JSON object
    (gold_action then reports it)."""
    if isinstance(act, str):
        try:
            act = json.loads(act)
        except json.JSONDecodeError:
            return act
    if not isinstance(act, Mapping):
        return act
    return {**act, 'screen_size': size} if size and 'screen_size' not in act else dict(act)


def _gold(text: str, structured: Optional[object], prompt_format: str, where: str) -> Action:
    gold = parse_action(text, prompt_format)
    if structured is not None:
        try:
            action = gold_action(structured)
        except GoldActionError as exc:
            raise StepError(f'{where}: {exc}') from exc
        if gold.type not in (UNPARSEABLE, action.type):
            raise StepError(
                f'{where}: gold answer {text!r} is a {gold.type} but its structured action is a {action.type}; '
                're-convert the row so that both describe the same step'
            )
        return dataclasses.replace(action, target=gold.target) if gold.target is not None else action
    if gold.type == UNPARSEABLE:
        raise StepError(
            f'{where}: gold answer {text!r} is not a {prompt_format!r} action; pass the --prompt_format the data was '
            'converted with'
        )
    return gold


def _metadata(row: Mapping, line_no: int) -> Dict[str, object]:
    subsplits = row.get('test_subsplits') or ()
    return {
        'episode': str(row.get('episode_id', f'line{line_no}')),
        'app': row.get('app'),
        'category': row.get('category'),
        'subsplits': tuple([subsplits] if isinstance(subsplits, str) else subsplits),
    }


def conversation_steps(row: Mapping, prompt_format: str, where: str, line_no: int) -> List[EvalStep]:
    """The steps of one conversation row (see module docstring); ``where`` is 'file:line' for errors."""
    messages = _messages(row, where)
    images = list(row.get('images') or [])
    answers = [i for i, message in enumerate(messages) if message['role'] == 'assistant']
    structured = _structured_golds(row)
    if structured is not None and len(structured) != len(answers):
        raise StepError(f'{where}: {len(structured)} structured gold actions for {len(answers)} assistant turns')
    first_step = int(row.get('step', 0)) if len(answers) == 1 else 0
    steps = []
    for k, index in enumerate(answers):
        prompt = messages[:index]
        used = sum(message['content'].count('<image>') for message in prompt)
        gold_text = messages[index]['content']
        steps.append(
            EvalStep(
                step=first_step + k,
                gold_text=gold_text,
                gold=_gold(gold_text, structured[k] if structured else None, prompt_format, where),
                messages=prompt,
                images=images[:used],
                **_metadata(row, line_no),
            )
        )
    return steps


def result_step(
    row: Mapping, prompt_format: str, where: str, line_no: int, source: Optional[Mapping] = None
) -> EvalStep:
    """The step of one ``swift infer`` result row: ``labels`` is the gold text, ``response`` the prediction.

    ``source`` is the test row the result was generated from: ``swift infer`` drops extra columns, so its
    episode_id/app/category/test_subsplits and structured gold (last step) are taken from there when given."""
    if 'response' not in row or 'labels' not in row:
        raise StepError(f'{where}: a swift infer result row needs "response" and "labels" (swift infer --result_path)')
    meta_row = source if source is not None else row
    structured = _structured_golds(meta_row)
    answered = sum(m['role'] == 'assistant' for m in _messages(source, where)) if source is not None else 1
    return EvalStep(
        step=int(meta_row.get('step', 0)) + answered - 1,
        gold_text=row['labels'],
        gold=_gold(row['labels'], structured[-1] if structured else None, prompt_format, where),
        prediction=row['response'],
        **_metadata(meta_row, line_no),
    )


def read_steps(path: str, prompt_format: str, sources: Optional[str] = None) -> List[EvalStep]:
    """All steps of a test jsonl (conversation rows) or a swift infer result jsonl (rows with ``response``).

    sources: for a result file, the test jsonl given to ``swift infer --val_dataset``; row i of the results is
    matched with row i of it (ms-swift keeps the order without --val_dataset_shuffle)."""
    source_rows = [row for _, row in read_jsonl(sources)] if sources else None
    steps: List[EvalStep] = []
    for n, (line_no, row) in enumerate(read_jsonl(path)):
        where = f'{path}:{line_no}'
        if 'response' in row:
            if source_rows is not None and n >= len(source_rows):
                raise StepError(f'{where}: more result rows than rows in {sources}; pass the --val_dataset file')
            source = source_rows[n] if source_rows is not None else None
            steps.append(result_step(row, prompt_format, where, line_no, source))
        else:
            steps.extend(conversation_steps(row, prompt_format, where, line_no))
    if source_rows is not None and len(steps) != len(source_rows):
        raise StepError(f'{path}: {len(steps)} result rows but {len(source_rows)} rows in {sources}')
    return steps
