"""The training command line given to the doctor, parsed as federated ``swift sft`` parses it (ms-swift 2.x names
translated, unknown names rejected with the closest known ones), so every check sees the values the run will see,
ms-swift's defaults included.
"""

from dataclasses import dataclass
from typing import List

from ..arguments.parsing import parse_fed_sft_argv
from ..arguments.sft import FedSftArguments
from ..template import register_checked_templates


@dataclass
class DoctorArguments(FedSftArguments):
    """``FedSftArguments`` that leave the disk alone: ms-swift's ``_add_version`` creates the run's versioned output
    directory (``output/v0-...``), which would also shift the real run's version number. ``output_dir`` stays the
    absolute path the run will version."""

    def _add_version(self) -> None:
        return None


def parse_training_arguments(argv: List[str]) -> DoctorArguments:
    """The run's arguments, parsed by the run's own parser; :class:`UsageError` (a ValueError) for unknown names or
    malformed values. ms-swift's own errors while it resolves the arguments (a model directory that is not there,
    ...) propagate: the run would stop on them too."""
    register_checked_templates()  # before ms-swift resolves --template while parsing, as the pipeline does
    return parse_fed_sft_argv(argv, DoctorArguments)
