"""One parser for the federated ``swift sft`` command line, shared by the run (``swift_ext.federated.pipeline``) and
``swift-ext doctor`` (which parses the run's command line into a subclass that leaves the disk alone)."""

from dataclasses import fields
from typing import List, Type, TypeVar

from swift.utils import parse_args

from ..legacy_args import translate_legacy_argv, unknown_argument_hint, unknown_flags
from .errors import UsageError, argparse_errors_raised
from .sft import FedSftArguments

Arguments = TypeVar('Arguments', bound=FedSftArguments)


def parse_fed_sft_argv(argv: List[str], arguments_class: Type[Arguments] = FedSftArguments) -> Arguments:
    """Build the arguments from a command line: ms-swift 2.x names translated (and logged), unknown names rejected
    with the closest known ones. Every error (argparse's, ms-swift's, the federated checks) is a
    :class:`UsageError`. Register the checked templates first: ms-swift resolves ``--template`` while parsing."""
    argv = translate_legacy_argv(argv)
    known = [f'--{field.name}' for field in fields(arguments_class)]
    unknown = unknown_flags(argv, known)
    if unknown:  # checked before parsing: building the arguments already loads the model config
        raise UsageError(unknown_argument_hint(unknown, known))
    try:
        with argparse_errors_raised():
            parsed, remaining = parse_args(arguments_class, argv)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if remaining:
        raise UsageError(unknown_argument_hint(remaining, known))
    return parsed
