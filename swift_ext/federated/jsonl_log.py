"""JSON-lines logs that survive a full disk or a kill in the middle of an append.

A row is appended whole or not at all, as far as this process can tell: the line is written with an unbuffered
write loop, then fsynced; when a write fails (``ENOSPC``: the disk is full), the file is cut back to its length
before the append and the error propagates. A process killed in the middle of an append can still leave a partial
last line, so a row is trusted only up to its newline: :func:`read_rows` drops an incomplete trailing line with a
warning naming the file and the byte offset, and :func:`drop_incomplete_tail` removes it from the file before a
resumed run appends again (``logging.jsonl``, which ms-swift's trainers append to).
"""

import json
import os
from typing import Any, Dict, List

from swift.utils import get_logger

from ..data_check.check import json_error_position

logger = get_logger()

TAIL_BLOCK = 1 << 16  # bytes read at a time while looking back for the last newline


def append_row(path: str, row: Dict[str, Any]) -> None:
    """Append ``row`` as one line, fsynced; on an ``OSError`` the file is restored to its previous length."""
    data = (json.dumps(row) + '\n').encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def rewrite_rows(path: str, rows: List[Dict[str, Any]]) -> None:
    """Replace the file's rows atomically: a kill or a full disk leaves either the old file or the new one."""
    staging = f'{path}.tmp'
    try:
        with open(staging, 'w', encoding='utf-8') as f:
            f.writelines(json.dumps(row) + '\n' for row in rows)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        if os.path.exists(staging):
            os.remove(staging)
        raise
    os.replace(staging, path)


def complete_length(path: str) -> int:
    """Bytes of ``path`` up to and including its last newline (0 when it has none)."""
    with open(path, 'rb') as f:
        position = f.seek(0, os.SEEK_END)
        while position > 0:
            start = max(0, position - TAIL_BLOCK)
            f.seek(start)
            newline = f.read(position - start).rfind(b'\n')
            if newline >= 0:
                return start + newline + 1
            position = start
    return 0


def _warn_incomplete_tail(path: str, offset: int, tail: bytes) -> None:
    preview = tail[:80].decode('utf-8', errors='replace')
    logger.warning(
        f'[swift_ext] {path}: dropping an incomplete last line at byte offset {offset} ({len(tail)} bytes without '
        f'a newline, left by an append cut short by a full disk or a kill): {preview!r}'
    )


def drop_incomplete_tail(path: str) -> None:
    """Cut an incomplete trailing line off ``path`` (warning with the byte offset); nothing when the file ends with
    a newline or does not exist."""
    if not os.path.isfile(path):
        return
    end, size = complete_length(path), os.path.getsize(path)
    if end == size:
        return
    with open(path, 'rb+') as f:
        f.seek(end)
        _warn_incomplete_tail(path, end, f.read())
        f.truncate(end)


def read_rows(path: str) -> List[Dict[str, Any]]:
    """The rows of the complete lines of ``path`` ([] when it does not exist). An incomplete trailing line is left
    out with a warning; a complete line that is not a JSON object raises ``ValueError`` naming ``path:line``."""
    if not os.path.isfile(path):
        return []
    with open(path, 'rb') as f:
        data = f.read()
    end = data.rfind(b'\n') + 1
    if end < len(data):
        _warn_incomplete_tail(path, end, data[end:])
    rows = []
    for number, line in enumerate(data[:end].split(b'\n')[:-1], start=1):
        if not line.strip():
            continue
        text = line.decode('utf-8', errors='replace').rstrip('\r')
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f'{path}:{number}: not valid JSON ({json_error_position(error, text)}): the line was damaged or '
                'edited after the run wrote it; restore it or delete the line, then resume again.'
            ) from error
        if not isinstance(row, dict):
            raise ValueError(f'{path}:{number}: a row must be a JSON object, got {type(row).__name__}.')
        rows.append(row)
    return rows
