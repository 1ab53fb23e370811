"""The run's record: ``fed_log.jsonl`` (one row per client per round, one per round), TensorBoard scalars per round
and, at the end, PNG plots of every per-round scalar (ms-swift's ``plot_images`` over the TensorBoard file).
"""

import json
import os
from typing import Any, Dict, List

from swift.utils import plot_images
from torch.utils.tensorboard import SummaryWriter

from .client import ClientResult


def round_row(round_number: int, results: List[ClientResult], seconds: float) -> Dict[str, Any]:
    """The per-round summary: sample-weighted mean client loss (weights n_k, as in the aggregation)."""
    total_rows = sum(result.num_rows for result in results)
    loss = sum(result.loss * result.num_rows for result in results) / total_rows if total_rows else None
    return {
        'type': 'round',
        'round': round_number,
        'clients': [result.client for result in results],
        'samples': total_rows,
        'steps': sum(result.steps for result in results),
        'loss': loss,
        'seconds': round(seconds, 4),
        'bytes_received': sum(result.update_bytes for result in results),
    }


class FedRunLog:
    """Appends rows to ``{output_dir}/fed_log.jsonl`` and per-round scalars to TensorBoard under ``logging_dir``."""

    def __init__(self, output_dir: str, logging_dir: str) -> None:
        self.path = os.path.join(output_dir, 'fed_log.jsonl')
        self.images_dir = os.path.join(output_dir, 'images')
        self.logging_dir = logging_dir
        self._writer = SummaryWriter(logging_dir)

    def write(self, row: Dict[str, Any]) -> None:
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(row) + '\n')

    def log_round(self, round_number: int, results: List[ClientResult], seconds: float) -> Dict[str, Any]:
        for result in results:
            self.write(result.log_row(round_number))
        row = round_row(round_number, results, seconds)
        self.write(row)
        if row['loss'] is not None:
            self._writer.add_scalar('fed/train_loss', row['loss'], round_number)
        self._writer.add_scalar('fed/clients', len(results), round_number)
        self._writer.add_scalar('fed/bytes_received', row['bytes_received'], round_number)
        self._writer.add_scalar('fed/seconds', row['seconds'], round_number)
        self._writer.flush()
        return row

    def close(self) -> None:
        """Flush TensorBoard and draw ``images/fed_*.png`` (one plot per per-round scalar)."""
        self._writer.close()
        plot_images(self.images_dir, self.logging_dir)
