"""Section 5, data: the conversations check of every ``--dataset`` file, as the run performs it before loading
(``swift_ext.data_check`` with the run's template, ``--max_length`` and pixel limits), summarised per file.

How bad rows weigh follows ``--dataset_check_strategy``: with ``warning`` / ``discard`` the run trains on the rest
(a warning); with ``error`` it stops, and with ``none`` ms-swift meets the bad rows itself (both blocking).
"""

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..data_check import CheckReport, check_conversations_file
from .report import Section

SHOWN_BAD_ROWS = 5  # bad lines named in the table; --json lists up to MAX_LISTED_BAD_ROWS
MAX_LISTED_BAD_ROWS = 50


@dataclass(frozen=True)
class DatasetSpec:
    """One ``--dataset`` entry: ``path`` and ms-swift's ``#N`` row sample ('' when absent)."""

    spec: str
    path: str
    sample: str


def dataset_specs(specs: Sequence[str]) -> List[DatasetSpec]:
    return [DatasetSpec(spec, *spec.partition('#')[::2]) for spec in specs]


def first_kept_row_with_images(report: CheckReport) -> Optional[Tuple[str, Dict[str, Any]]]:
    """('path:line', row) of the first row the check kept that has images, or None."""
    bad = {row.row for row in report.bad}
    with open(report.path, encoding='utf-8') as f:
        numbered = ((number, line) for number, line in enumerate(f, start=1) if line.strip())
        for row_index, (line_number, line) in enumerate(numbered):
            if row_index not in bad:
                row = json.loads(line)
                if row.get('images'):
                    return f'{report.path}:{line_number}', row
    return None


def _bad_rows_finding(section: Section, report: CheckReport, strategy: str, message: str, details: Dict) -> None:
    shown = '; '.join(row.describe(report.path) for row in report.bad[:SHOWN_BAD_ROWS])
    more = f' (and {len(report.bad) - SHOWN_BAD_ROWS} more)' if len(report.bad) > SHOWN_BAD_ROWS else ''
    message = f'{message}. First bad lines: {shown}{more}'
    fix_rows = 'fix or remove the rows named (file:line: reason: detail)'
    if strategy in ('warning', 'discard'):
        section.warning(
            'dataset', f'{message}. The run leaves them out (--dataset_check_strategy {strategy})', fix_rows, **details
        )
    elif strategy == 'error':
        section.blocking(
            'dataset',
            f'{message}. The run stops on them (--dataset_check_strategy error)',
            f'{fix_rows}, or use --dataset_check_strategy discard / warning to train on the rest',
            **details,
        )
    else:
        section.blocking(
            'dataset',
            f'{message}. The run does not check its data (--dataset_check_strategy none): ms-swift meets these rows '
            'itself and stops or drops them unreported',
            f'{fix_rows}, or use --dataset_check_strategy warning',
            **details,
        )


def _check_file(section: Section, spec: DatasetSpec, args: Any, template: Optional[Any]) -> Optional[CheckReport]:
    if not os.path.isfile(spec.path):
        section.blocking(
            'dataset',
            f'{spec.path}: no such file. Federated runs read local dataset files only',
            'give --dataset the path of a local conversations .jsonl file',
            path=spec.path,
        )
        return None
    if not spec.path.endswith('.jsonl'):
        section.warning(
            'dataset',
            f'{spec.path}: not checked, and its rows are not counted in the federated plan (the conversations check '
            'reads .jsonl files)',
            'convert the file to conversations JSON lines (.jsonl)',
            path=spec.path,
        )
        return None
    start = time.perf_counter()
    max_length = args.max_length if template is not None else None
    report = check_conversations_file(spec.path, template=template, max_length=max_length)
    details = {
        'path': spec.path,
        'rows_read': report.rows_read,
        'rows_kept': report.rows_kept,
        'dropped_by_reason': report.dropped_by_reason(),
        'bad_rows': [asdict(row) for row in report.bad[:MAX_LISTED_BAD_ROWS]],
        'seconds': round(time.perf_counter() - start, 2),
    }
    message = report.summary()
    if spec.sample:
        message += f'; ms-swift then samples {spec.sample} rows ({spec.spec})'
    if report.bad:
        _bad_rows_finding(section, report, args.dataset_check_strategy, message, details)
    else:
        section.ok('dataset', message, **details)
    return report


def check_data(args: Any, template: Optional[Any]) -> Tuple[Section, List[CheckReport]]:
    """The Data section and the report of every checked file (the federated plan counts their kept rows)."""
    section = Section('Data')
    if template is None:
        section.skipped(
            'length check', 'structure and images only: the template was not built (see Model and template)'
        )
    else:
        limits = getattr(template, 'pixel_limits', None)  # the checked templates' resize limits
        pixels = (
            f', images resized with IMAGE_FACTOR {limits.image_factor}, MIN_PIXELS {limits.min_pixels}, '
            f'MAX_PIXELS {limits.max_pixels}'
            if limits
            else ''
        )
        section.ok(
            'settings',
            f'rows encoded with {args.template} up to --max_length {args.max_length}{pixels}',
            max_length=args.max_length,
            **(asdict(limits) if limits else {}),
        )
    reports = [_check_file(section, spec, args, template) for spec in dataset_specs(args.dataset)]
    return section, [report for report in reports if report is not None]
