"""The checks a federated command line gets before anything heavy is imported (no torch, no ms-swift): they answer
in well under a second where building the arguments takes half a minute.

1. ms-swift 2.x names are translated (``swift_ext.legacy_args``; a 2.x value with no 4.x meaning is an error);
2. no flag reads like a misspelt federated flag (``--client_nun``);
3. the federated values parse with their field types and choices, and pass ``FederatedArguments``' own checks
   (``--client_sample 0``, ``--fed_alg fedsgd``, ...);
4. the client column of every local JSON-lines ``--dataset`` file fits ``--client_num``
   (``swift_ext.federated.client_column``; not with ``--client_column none``).

Unknown ms-swift flags and ms-swift's own checks come later, when ms-swift's argument classes are loaded, and
whether a file without a client column has enough episodes for the clients when it loads. Every failure is a
:class:`~swift_ext.arguments.errors.UsageError`.
"""

import argparse
import os
import typing
from dataclasses import fields
from typing import Any, Dict, List, Sequence

from data_tools.jsonl import iter_jsonl
from swift_ext.arguments.errors import UsageError, argparse_errors_raised
from swift_ext.arguments.federated import FederatedArguments
from swift_ext.federated.client_column import check_client_ids, client_column_in
from swift_ext.legacy_args import split_options, translate_legacy_argv

from .flags import federated_near_misses, near_miss_message

TRUE_WORDS, FALSE_WORDS = ('true', 'yes', 't', 'y', '1'), ('false', 'no', 'f', 'n', '0')


def string_to_bool(value: str) -> bool:
    """The boolean words transformers' HfArgumentParser (which parses ms-swift's arguments) accepts."""
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got {value!r}')


def _value_parsing(annotation: Any) -> Dict[str, Any]:
    """argparse keywords for a field type: Optional[X] parses as X, Literal as its choices, bool as a word."""
    if typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) is typing.Literal:
        return {'choices': typing.get_args(annotation)}
    if annotation is bool:
        return {'type': string_to_bool, 'nargs': '?', 'const': True}
    return {'type': annotation}


def federated_parser() -> argparse.ArgumentParser:
    """An argparse parser of the federated flags only (``--a_b`` and ``--a-b``, as HfArgumentParser accepts)."""
    parser = argparse.ArgumentParser(prog='swift sft', add_help=False, allow_abbrev=False)
    hints = typing.get_type_hints(FederatedArguments)
    for field in fields(FederatedArguments):
        names = dict.fromkeys([f'--{field.name}', f'--{field.name.replace("_", "-")}'])
        parser.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, **_value_parsing(hints[field.name]))
    return parser


def parse_federated(argv: Sequence[str]) -> FederatedArguments:
    """The federated arguments of ``argv`` (other flags ignored), checked by ``FederatedArguments``."""
    with argparse_errors_raised():
        namespace, _ = federated_parser().parse_known_args(list(argv))
    federated = FederatedArguments(**vars(namespace))
    try:
        federated._check_federated()
    except ValueError as error:
        raise UsageError(str(error)) from error
    return federated


def local_jsonl_files(argv: Sequence[str]) -> List[str]:
    """The ``--dataset`` entries that are local JSON-lines files (``PATH#N`` sampling suffix dropped)."""
    options = dict(split_options(argv))
    paths = [spec.partition('#')[0] for spec in options.get('--dataset', [])]
    return [path for path in paths if path.endswith('.jsonl') and os.path.isfile(path)]


def check_client_column(path: str, client_num: int) -> None:
    """Rule 4 of the module docstring for one file (its JSON object rows; the dataset check reports the others)."""
    rows = [(line_no, record) for line_no, record in iter_jsonl(path) if isinstance(record, dict)]
    column = next((c for c in (client_column_in(row) for _, row in rows) if c), None)
    if column is not None:
        line_of = [line_no for line_no, _ in rows]
        values = [row.get(column) for _, row in rows]
        check_client_ids(values, column, client_num, path, lambda row: f'{path}:{line_of[row]}')


def preflight(argv: Sequence[str], log_translations: bool = True) -> List[str]:
    """Run the checks of the module docstring; return ``argv`` with ms-swift 2.x names translated (and logged when
    ``log_translations``: a launcher checks without logging, its worker process checks and logs)."""
    try:
        translated = translate_legacy_argv(argv, log=log_translations)
    except ValueError as error:
        raise UsageError(str(error)) from error
    misses = federated_near_misses(translated)
    if misses:
        raise UsageError(near_miss_message(misses))
    federated = parse_federated(translated)
    if federated.client_column != 'none':
        for path in local_jsonl_files(translated):
            check_client_column(path, federated.client_num)
    return translated
