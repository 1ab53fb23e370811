"""The result of checking one dataset file: how many rows were read and which were dropped, with reasons."""

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Set, Tuple


@dataclass(frozen=True)
class BadRow:
    """One rejected row: 1-based file line, 0-based row index (non-blank lines), reason code and explanation."""

    line: int
    row: int
    reason: str
    detail: str

    def describe(self, path: str) -> str:
        return f'{path}:{self.line}: {self.reason}: {self.detail}'


@dataclass
class CheckReport:
    """Rows read, and the bad ones; rows are numbered like ``swift_ext.federated.dataset`` (non-blank lines)."""

    path: str
    rows_read: int = 0
    bad: List[BadRow] = field(default_factory=list)

    @property
    def rows_kept(self) -> int:
        return self.rows_read - len(self.bad)

    def dropped_by_reason(self) -> Dict[str, int]:
        return dict(Counter(row.reason for row in self.bad))

    def dropped_rows(self) -> Set[Tuple[str, int]]:
        """(path, row) of every bad row: the keys ``_fed_source``/``_fed_row`` tag rows with."""
        return {(self.path, row.row) for row in self.bad}

    def summary(self) -> str:
        reasons = ', '.join(f'{reason} {count}' for reason, count in sorted(self.dropped_by_reason().items()))
        return f'{self.path}: {self.rows_read} rows read, {self.rows_kept} kept, {len(self.bad)} dropped' + (
            f' ({reasons})' if reasons else ''
        )

    def write(self, report_path: str) -> None:
        content = {
            'path': self.path,
            'rows_read': self.rows_read,
            'rows_kept': self.rows_kept,
            'dropped_by_reason': self.dropped_by_reason(),
            'dropped': [asdict(row) for row in self.bad],
        }
        with open(report_path, 'w', encoding='utf-8') as f:
            json.dump(content, f, indent=2, ensure_ascii=False)
