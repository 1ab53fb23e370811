"""JSON-lines reading that reports the file and line of a bad line instead of stopping."""

import json
from typing import Iterator, Tuple, Union


def iter_jsonl(path: str) -> Iterator[Tuple[int, Union[dict, str]]]:
    """Yield (1-based line number, object) per non-blank line, or (line number, reason) where it is not an object."""
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:  # without its newline, so that an error is placed on its own line and column
                obj = json.loads(line.rstrip('\r\n'))
            except json.JSONDecodeError as exc:
                yield line_no, f'invalid JSON: {exc}'
                continue
            yield line_no, obj if isinstance(obj, dict) else f'expected a JSON object, got {type(obj).__name__}'


def dumps(obj: dict) -> str:
    """One JSONL line (non-ASCII kept readable)."""
    return json.dumps(obj, ensure_ascii=False) + '\n'
