"""Whose local step a per-step log row is.

A client trainer logs through ms-swift's own callbacks, which append each row to ``logging.jsonl``; the trainer puts
``round`` and ``client`` at the front of the row before they run (``client_trainer``), so nothing is logged twice.
When the run reports to TensorBoard (``--report_to tensorboard``, ms-swift's default), the row's numeric values are
also written as ``train/<name>`` under ``<logging_dir>/client_<k>`` (``central`` for ``--fed_alg central``): one
TensorBoard run per client, so a client's loss and learning-rate curves sit side by side with the others'. Their
step is (round - 1) * S + s, with S the client's optimiser steps per round and s the local step, so a client's
curve runs on over the rounds it trained in and round r covers steps ((r - 1) S, r S].
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .sampling import CENTRAL_CLIENT

TAGS = ('round', 'client')


def client_run_name(client: int) -> str:
    return 'central' if client == CENTRAL_CLIENT else f'client_{client}'


@dataclass
class ClientStepLog:
    """The step log of one client's turn in one round."""

    round_number: int
    client: int
    tensorboard_dir: Optional[str] = None  # None: no TensorBoard scalars
    _writer: Any = field(default=None, repr=False)

    @classmethod
    def for_turn(cls, training_args: Any, round_number: int, client: int) -> 'ClientStepLog':
        """The step log of a turn under the run's training arguments (TensorBoard when they report to it)."""
        report_to = training_args.report_to or []
        tensorboard = 'tensorboard' in report_to or 'all' in report_to
        directory = os.path.join(training_args.logging_dir, client_run_name(client)) if tensorboard else None
        return cls(round_number, client, directory)

    def tag(self, logs: Dict[str, Any]) -> None:
        """Put ``round`` and ``client`` first in ``logs`` (in place: the callbacks log this very dict)."""
        rest = {key: value for key, value in logs.items() if key not in TAGS}
        logs.clear()
        logs.update({'round': self.round_number, 'client': self.client, **rest})

    def write_scalars(self, logs: Dict[str, Any], local_step: int, steps_per_round: int) -> None:
        """The row's numeric values as TensorBoard scalars ``train/<name>`` (nothing without a directory)."""
        if self.tensorboard_dir is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.tensorboard_dir)
        step = (self.round_number - 1) * steps_per_round + local_step
        for name, value in logs.items():
            if name not in TAGS and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f'train/{name}', value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
