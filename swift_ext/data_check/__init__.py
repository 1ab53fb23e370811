"""The conversations dataset check run before training (``--check_dataset_strategy none|warning|discard|error``).

``check_conversations_file`` checks a raw JSON-lines file row by row and returns a :class:`CheckReport`;
``apply_strategy`` acts on it; ``write_kept_rows`` copies the good rows for training.
"""

from .check import check_conversations_file, check_row, template_inputs, write_kept_rows
from .report import BadRow, CheckReport
from .rules import RULES
from .strategy import STRATEGIES, apply_strategy

__all__ = [
    'RULES',
    'STRATEGIES',
    'BadRow',
    'CheckReport',
    'apply_strategy',
    'check_conversations_file',
    'check_row',
    'template_inputs',
    'write_kept_rows',
]
