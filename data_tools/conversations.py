"""FedMABench step-/episode-wise records -> ms-swift sharegpt conversations.

Step-wise records (singular fields ``sub_instruction``, ``act_origin``, ``act_convert``, ``img``) become one
single-turn row each; episode-wise records (plural fields) become one row with alternating user/assistant turns,
one screenshot per user turn. Every record that is not converted is counted under a reason.
"""

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from data_tools.actions import ActionError, parse_action
from data_tools.prompts import LEVELS, PROMPT_FORMATS, AnswerError, Step, first_user_turn, next_user_turn
from data_tools.schema import PER_STEP_FIELDS

#: Columns copied from input records to conversation rows when present.
KEPT_COLUMNS = ('episode_id', 'step', 'client_id', 'app', 'category', 'split', 'test_subsplits')

# Per-step fields the converter reads (data_tools.schema names them in both record kinds).
STEP_FIELDS = ('sub_instruction', 'act_origin', 'act_convert', 'img', 'screen_size', 'target_bounds')


def field_name(key: str, kind: str) -> str:
    """Name of per-step field ``key`` in a record of ``kind`` ('step': singular, 'episode': plural)."""
    return PER_STEP_FIELDS[key] if kind == 'episode' else key


class DropError(ValueError):
    """A record that is not converted; ``reason`` is the short category counted in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f'{reason}: {detail}')
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ConvertOptions:
    """prompt_format (str): key of PROMPT_FORMATS. level (str): 'high' (goal) or 'low' (goal + step instruction).
    history (bool): list previous actions in step-wise prompts (episode rows carry them as earlier turns).
    image_root (str): joined before relative image paths. drop_if_missing (bool): drop records with a missing image.
    """

    prompt_format: str = 'fedmabench'
    level: str = 'high'
    history: bool = False
    image_root: str = ''
    drop_if_missing: bool = False

    def __post_init__(self) -> None:
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f'prompt_format={self.prompt_format!r}; choose one of {sorted(PROMPT_FORMATS)}')
        if self.level not in LEVELS:
            raise ValueError(f'level={self.level!r}; choose one of {LEVELS}')


@dataclass
class DropReport:
    """Dropped-record counts per reason, with the first ``MAX_EXAMPLES`` lines of each as 'line N: detail'."""

    MAX_EXAMPLES = 10
    counts: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)
    converted: int = 0

    def add(self, line_no: int, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        lines = self.examples.setdefault(reason, [])
        if len(lines) < self.MAX_EXAMPLES:
            lines.append(f'line {line_no}: {detail}')

    def to_dict(self) -> Dict[str, object]:
        return {'converted': self.converted, 'dropped': dict(self.counts), 'examples': self.examples}


def record_kind(record: Dict) -> str:
    """'episode' if the record has plural action fields (acts_*), 'step' if singular ones; DropError otherwise."""
    for kind in ('episode', 'step'):
        if any(field_name(key, kind) in record for key in ('act_origin', 'act_convert')):
            return kind
    raise DropError('no action field', 'neither act_origin/act_convert (step-wise) nor acts_* (episode-wise)')


def _values(record: Dict, name: str, kind: str, num_steps: int) -> list:
    """Per-step values of field ``name`` (None per step when absent)."""
    value = record.get(name)
    if kind == 'step':
        return [value]
    if value is None:
        return [None] * num_steps
    if len(value) != num_steps:
        raise DropError('length mismatch', f'{name} has {len(value)} values, imgs has {num_steps}')
    return value


def record_steps(record: Dict) -> List[Step]:
    """The steps of a step- or episode-wise record; DropError naming the missing or mismatched field."""
    kind = record_kind(record)
    for name in ('instruction', field_name('img', kind)):
        if record.get(name) is None:
            raise DropError('missing field', name)
    num_steps = len(record['imgs']) if kind == 'episode' else 1
    values = {key: _values(record, field_name(key, kind), kind, num_steps) for key in STEP_FIELDS}
    try:
        origins = [parse_action(a) if a else {} for a in values['act_origin']]
    except ActionError as exc:
        raise DropError('bad act_origin', str(exc)) from exc
    return [
        Step(
            instruction=record['instruction'],
            sub_instruction=values['sub_instruction'][i] or '',
            act_origin=origins[i],
            act_convert=values['act_convert'][i] or '',
            img=values['img'][i],
            screen_size=values['screen_size'][i],
        )
        for i in range(num_steps)
    ]


def _image_paths(steps: Sequence[Step], options: ConvertOptions) -> List[str]:
    paths = [os.path.abspath(os.path.join(options.image_root, step.img)) for step in steps]
    missing = [p for p in paths if not os.path.exists(p)] if options.drop_if_missing else []
    if missing:
        raise DropError('missing image', missing[0])
    return paths


def conversation_row(record: Dict, options: ConvertOptions, history: Sequence[str] = ()) -> Dict:
    """The sharegpt row of one record (``history``: earlier act_convert of the episode, for step-wise records)."""
    steps = record_steps(record)
    fmt = PROMPT_FORMATS[options.prompt_format]
    try:
        answers = [fmt.answer(step) for step in steps]
    except AnswerError as exc:
        raise DropError('unanswerable', str(exc)) from exc
    conversations = []
    for i, (step, answer) in enumerate(zip(steps, answers)):
        user = first_user_turn(fmt, step, options.level, history) if i == 0 else next_user_turn(step, options.level)
        conversations += [{'from': 'user', 'value': user}, {'from': 'assistant', 'value': answer}]
    row = {'conversations': conversations, 'images': _image_paths(steps, options)}
    row.update({column: record[column] for column in KEPT_COLUMNS if column in record})
    row.update(structured_golds(record, steps))
    return row


def structured_golds(record: Dict, steps: Sequence[Step]) -> Dict[str, list]:
    """One gold action per assistant turn, for grounded evaluation (``swift_ext.evaluation``): ``acts_origin`` as
    Android-Control JSON strings, a click's target element box added as ``bounds``, and ``screen_sizes``."""
    kind = record_kind(record)
    bounds = _values(record, field_name('target_bounds', kind), kind, len(steps))
    acts = [json.dumps({**step.act_origin, **({'bounds': box} if box else {})}) for step, box in zip(steps, bounds)]
    return {'acts_origin': acts, 'screen_sizes': [step.screen_size for step in steps]}


def convert_records(
    records: Iterator[Tuple[int, Union[Dict, str]]], options: ConvertOptions, report: DropReport
) -> Iterator[Dict]:
    """Convert (line number, record or parse-error reason) pairs in order, counting drops in ``report``.

    With ``options.history``, a step-wise record's history is the act_convert of the records before it with the
    same episode_id (records of an episode are expected to be consecutive and in step order, as the unpacker writes).
    """
    episode: Optional[object] = None
    history: List[str] = []
    for line_no, record in records:
        if isinstance(record, str):
            report.add(line_no, 'invalid line', record)
            continue
        if record.get('episode_id') != episode:
            episode, history = record.get('episode_id'), []
        try:
            row = conversation_row(record, options, history if options.history else ())
        except DropError as exc:
            report.add(line_no, exc.reason, exc.detail)
        else:
            report.converted += 1
            yield row
        if options.history and 'act_convert' in record:
            history.append(record['act_convert'])


def write_report(report: DropReport, source: str, path: str) -> None:
    """Write ``report`` of converting file ``source`` as JSON to ``path``."""
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'input': source, **report.to_dict()}, f, indent=2, ensure_ascii=False)
