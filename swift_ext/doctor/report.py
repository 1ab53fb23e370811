"""The doctor's report: findings grouped in sections, as a console table or JSON, and the exit status.

A finding's status is ``ok``; ``warning`` (the run starts, but probably not as intended); ``blocking`` (the run would
stop, or train nothing); or ``skipped`` (not checked because an earlier problem prevents it). Every warning and
blocking finding carries the fix to apply. Exit status: 0 when all is ok, 1 for warnings only, 2 for any blocking
problem.
"""

import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

OK, WARNING, BLOCKING, SKIPPED = 'ok', 'warning', 'blocking', 'skipped'
EXIT_STATUS = {OK: 0, SKIPPED: 0, WARNING: 1, BLOCKING: 2}
STATUS_WIDTH = 9
CHECK_WIDTH = 18


@dataclass(frozen=True)
class Finding:
    """One check's outcome; ``details`` holds the numbers behind ``message`` for ``--json``."""

    check: str
    status: str
    message: str
    fix: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in EXIT_STATUS:
            raise ValueError(f'Finding status {self.status!r}: use one of {", ".join(EXIT_STATUS)}.')
        if self.status in (WARNING, BLOCKING) and not self.fix:
            raise ValueError(f'The {self.status} finding {self.check!r} needs the fix to apply.')


@dataclass
class Section:
    """A titled list of findings, filled in check by check."""

    title: str
    findings: List[Finding] = field(default_factory=list)

    def ok(self, check: str, message: str, **details: Any) -> None:
        self.findings.append(Finding(check, OK, message, details=details))

    def warning(self, check: str, message: str, fix: str, **details: Any) -> None:
        self.findings.append(Finding(check, WARNING, message, fix, details))

    def blocking(self, check: str, message: str, fix: str, **details: Any) -> None:
        self.findings.append(Finding(check, BLOCKING, message, fix, details))

    def skipped(self, check: str, message: str) -> None:
        self.findings.append(Finding(check, SKIPPED, message))


def exit_status(sections: Sequence[Section]) -> int:
    return max((EXIT_STATUS[finding.status] for section in sections for finding in section.findings), default=0)


def counts(sections: Sequence[Section]) -> Dict[str, int]:
    statuses = [finding.status for section in sections for finding in section.findings]
    return {status: statuses.count(status) for status in EXIT_STATUS}


def summary_line(sections: Sequence[Section]) -> str:
    tally = counts(sections)
    return (
        f'{tally[BLOCKING]} blocking, {tally[WARNING]} warning(s), {tally[OK]} ok, {tally[SKIPPED]} skipped '
        f'-> exit {exit_status(sections)}'
    )


def to_json(sections: Sequence[Section]) -> Dict[str, Any]:
    """The report as ``--json`` prints it: exit status, counts per status, and every section's findings."""
    return {
        'exit_status': exit_status(sections),
        'counts': counts(sections),
        'sections': [{'title': s.title, 'findings': [asdict(f) for f in s.findings]} for s in sections],
    }


def render_table(sections: Sequence[Section], width: int = 120) -> str:
    """The console table: one row per finding (status, check, message), its fix on the lines below."""
    text_width = max(40, width - STATUS_WIDTH - CHECK_WIDTH - 4)
    indent = ' ' * (STATUS_WIDTH + CHECK_WIDTH + 4)

    def wrapped(text: str) -> List[str]:
        return textwrap.wrap(text, text_width, break_long_words=False, break_on_hyphens=False) or ['']

    lines: List[str] = []
    for section in sections:
        lines.append(section.title)
        for finding in section.findings:
            message = wrapped(finding.message)
            lines.append(f'  {finding.status:<{STATUS_WIDTH}} {finding.check:<{CHECK_WIDTH}} {message[0]}')
            lines.extend(indent + line for line in message[1:])
            if finding.fix:
                lines.extend(indent + line for line in wrapped(f'fix: {finding.fix}'))
        lines.append('')
    lines.append(summary_line(sections))
    return '\n'.join(lines)


def format_bytes(size: float) -> str:
    """``size`` in binary units: 512 B, 32.0 KiB, 1.5 GiB."""
    units = ('B', 'KiB', 'MiB', 'GiB', 'TiB')
    index = 0
    while abs(size) >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f'{size:.0f} B' if index == 0 else f'{size:.1f} {units[index]}'


def plural(count: int, noun: str) -> str:
    """'1 module', '3 modules'."""
    return f'{count} {noun}' if count == 1 else f'{count} {noun}s'
