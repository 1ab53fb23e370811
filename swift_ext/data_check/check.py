"""``check_conversations_file``: every row of a conversations JSON-lines file checked before training."""

import contextlib
import json
from typing import Any, Dict, Iterator, List, Optional

from .report import BadRow, CheckReport
from .rules import ROLE_ALIASES, RULES, Row, image_paths, turns


@contextlib.contextmanager
def _unlimited(template: Any) -> Iterator[Any]:
    """The template with max_length lifted, so that encoding measures a row instead of rejecting it."""
    max_length = template.max_length
    template.max_length = None
    try:
        yield template
    finally:
        template.max_length = max_length


def template_inputs(row: Row) -> Dict[str, Any]:
    """A row that passed the structural rules, as ms-swift's ``template.encode`` takes it: messages and images."""
    messages = [{'role': ROLE_ALIASES[turn['role']], 'content': turn['content']} for turn in turns(row)]
    return {'messages': messages, 'images': image_paths(row)}


def encoded_length(template: Any, row: Row) -> int:
    """Tokens of ``row`` as ms-swift trains it (image tokens included), with ``template`` in train mode."""
    with _unlimited(template):
        return len(template.encode(template_inputs(row))['input_ids'])


def length_problem(template: Any, row: Row, max_length: int) -> Optional[Dict[str, str]]:
    """None, or {'reason', 'detail'} for a row that does not encode or is longer than ``max_length``."""
    try:
        length = encoded_length(template, row)
    except Exception as error:  # the template's own errors, e.g. an image token count mismatch
        return {'reason': 'encode_error', 'detail': f'{type(error).__name__}: {error}'}
    if length > max_length:
        return {
            'reason': 'too_long',
            'detail': f'{length} tokens > --max_length {max_length}: raise --max_length, lower MAX_PIXELS '
            '(fewer image tokens per screenshot) or split the episode into shorter rows',
        }
    return None


def json_error_position(error: json.JSONDecodeError, text: str) -> str:
    """The decoder's message at its 1-based column in ``text`` (one line, without its newline: with it, the decoder
    would place an error at the end of the line on "line 2 column 1"), saying so when the row is cut off."""
    where = 'column' if error.msg.endswith(' at') else 'at column'
    detail = f'{error.msg} {where} {error.pos + 1}'
    if error.pos >= len(text) or error.msg.startswith('Unterminated string'):
        detail += f'; the line ends at column {len(text)}: the row is cut off'
    return detail


def check_row(line: str, template: Any = None, max_length: Optional[int] = None) -> Optional[Dict[str, str]]:
    """None for a good row, else {'reason', 'detail'} from the first failing check."""
    text = line.rstrip('\r\n')
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        return {'reason': 'invalid_json', 'detail': json_error_position(error, text)}
    if not isinstance(row, dict):
        return {'reason': 'invalid_json', 'detail': f'a row must be a JSON object, got {type(row).__name__}'}
    for reason, rule in RULES.items():
        detail = rule(row)
        if detail is not None:
            return {'reason': reason, 'detail': detail}
    if template is not None and max_length is not None:
        return length_problem(template, row, max_length)
    return None


def check_conversations_file(path: str, *, template: Any = None, max_length: Optional[int] = None) -> CheckReport:
    """Check every non-blank line of ``path``; rows are numbered 0.. over non-blank lines, lines 1.. in the file.

    ``template`` (an ms-swift template in train mode) and ``max_length`` enable the tokenized-length check; without
    them only the structural checks run.
    """
    report = CheckReport(path)
    with open(path, encoding='utf-8') as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            problem = check_row(line, template, max_length)
            if problem is not None:
                report.bad.append(BadRow(line=line_number, row=report.rows_read, **problem))
            report.rows_read += 1
    return report


def write_kept_rows(report: CheckReport, output_path: str) -> List[int]:
    """Copy the good lines of ``report.path`` verbatim to ``output_path``; returns each copied row's original row
    index (row i of the copy is row ``result[i]`` of the source), so reports and membership can name the source."""
    bad_rows = {row.row for row in report.bad}
    kept: List[int] = []
    with open(report.path, encoding='utf-8') as src, open(output_path, 'w', encoding='utf-8') as dst:
        for row, line in enumerate(line for line in src if line.strip()):
            if row not in bad_rows:
                dst.write(line if line.endswith('\n') else line + '\n')
                kept.append(row)
    return kept
