"""What ``--check_dataset_strategy`` does with a :class:`CheckReport`: none, warning, discard or error."""

import logging
from typing import Callable, Dict, Optional

from .report import CheckReport

logger = logging.getLogger('swift_ext.data_check')
MAX_LISTED = 50  # bad rows named in an error or warning; the rest are counted


def _listing(report: CheckReport) -> str:
    shown = '\n'.join(f'  {row.describe(report.path)}' for row in report.bad[:MAX_LISTED])
    more = f'\n  ... and {len(report.bad) - MAX_LISTED} more' if len(report.bad) > MAX_LISTED else ''
    return shown + more


def _none(report: CheckReport, report_path: Optional[str]) -> None:
    return None


def _warning(report: CheckReport, report_path: Optional[str]) -> None:
    logger.warning(f'[swift_ext] dataset check: {report.summary()}; training on the rest:\n{_listing(report)}')


def _discard(report: CheckReport, report_path: Optional[str]) -> None:
    if report_path is None:
        raise ValueError('--check_dataset_strategy discard needs a report path to list the dropped rows in.')
    report.write(report_path)
    logger.warning(f'[swift_ext] dataset check: {report.summary()}; dropped rows listed in {report_path}')


def _error(report: CheckReport, report_path: Optional[str]) -> None:
    raise ValueError(
        f'Dataset check failed: {report.summary()}.\n{_listing(report)}\nFix these rows, or use '
        '--check_dataset_strategy discard (drop them, with a report) or warning (log them and train on the rest).'
    )


STRATEGIES: Dict[str, Callable[[CheckReport, Optional[str]], None]] = {
    'none': _none,
    'warning': _warning,
    'discard': _discard,
    'error': _error,
}


def apply_strategy(report: CheckReport, strategy: str, report_path: Optional[str] = None) -> None:
    """Act on ``report``: 'error' raises ValueError listing every bad line (up to 50, then a count); 'discard'
    writes ``report_path``; 'warning' logs; 'none' does nothing. Nothing happens for a clean report. The caller
    drops ``report.dropped_rows()`` for 'discard' and 'warning'."""
    if strategy not in STRATEGIES:
        raise ValueError(f'--check_dataset_strategy {strategy!r}: choose one of {", ".join(STRATEGIES)}.')
    if report.bad:
        STRATEGIES[strategy](report, report_path)
