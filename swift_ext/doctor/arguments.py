"""The training command line given to the doctor, parsed as federated ``swift sft`` parses it (ms-swift 2.x names
translated, unknown names rejected with the closest known ones), so every check sees the values the run will see,
ms-swift's defaults included.
"""

import contextlib
import io
from dataclasses import dataclass, fields
from typing import List

from swift.utils import parse_args

from ..arguments.sft import FedSftArguments
from ..legacy_args import translate_legacy_argv, unknown_argument_hint, unknown_flags
from ..template import register_checked_templates


@dataclass
class DoctorArguments(FedSftArguments):
    """``FedSftArguments`` that leave the disk alone: ms-swift's ``_add_version`` creates the run's versioned output
    directory (``output/v0-...``), which would also shift the real run's version number. ``output_dir`` stays the
    absolute path the run will version."""

    def _add_version(self) -> None:
        return None


def parse_training_arguments(argv: List[str]) -> DoctorArguments:
    """The run's arguments; ValueError for unknown names or malformed values. ms-swift's own errors while it
    resolves the arguments (a model directory that is not there, ...) propagate: the run would stop on them too."""
    register_checked_templates()  # before ms-swift resolves --template while parsing, as the pipeline does
    argv = translate_legacy_argv(argv)
    known = [f'--{field.name}' for field in fields(DoctorArguments)]
    unknown = unknown_flags(argv, known)
    if unknown:
        raise ValueError(unknown_argument_hint(unknown, known))
    usage_errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage_errors):
            parsed, remaining = parse_args(DoctorArguments, argv)
    except SystemExit:  # argparse prints the whole usage and its error for a malformed value, then exits
        raise ValueError(usage_errors.getvalue().strip().splitlines()[-1].split('error: ', 1)[-1]) from None
    if remaining:
        raise ValueError(unknown_argument_hint(remaining, known))
    return parsed
