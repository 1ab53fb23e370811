"""The run's record: ``fed_log.jsonl`` (one row per client per round, one per round, one per evaluation, one
``privacy`` row per round under client-level DP), TensorBoard scalars per round, and a PNG of training/eval loss per
round drawn from ``fed_log.jsonl``.

``fed_log.jsonl`` is the authority: a resumed run first drops rows of rounds after its checkpoint (and a partial
last line, see :mod:`.jsonl_log`), and the plot is drawn from the file, so a killed-and-resumed run has one
consistent record.
"""

import os
from typing import Any, Dict, List, Optional

from torch.utils.tensorboard import SummaryWriter

from .client import OK, ClientResult
from .jsonl_log import append_row, read_rows, rewrite_rows


def round_row(round_number: int, results: List[ClientResult], seconds: float) -> Dict[str, Any]:
    """The per-round summary. ``loss`` is the weight-averaged loss of the clients whose update was aggregated."""
    accepted = [result for result in results if result.status == OK]
    total_weight = sum(result.weight for result in accepted)
    loss = sum(result.loss * result.weight for result in accepted) / total_weight if accepted else None
    return {
        'type': 'round',
        'round': round_number,
        'status': 'ok' if accepted else 'failed',
        'clients': [result.client for result in results],
        'aggregated': [result.client for result in accepted],
        'samples': sum(result.samples for result in accepted),
        'steps': sum(result.steps for result in results),
        'loss': loss,
        'seconds': round(seconds, 4),
        'bytes_sent': sum(result.bytes_sent for result in results),
        'bytes_received': sum(result.bytes_received for result in results),
    }


def plot_round_losses(rows: List[Dict[str, Any]], path: str) -> Optional[str]:
    """Training loss (and eval loss, when evaluated) per round as a PNG; None when there is nothing to draw."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    train = [(row['round'], row['loss']) for row in rows if row['type'] == 'round' and row['loss'] is not None]
    evals = [(row['round'], row['eval_loss']) for row in rows if row['type'] == 'eval']
    if not train and not evals:
        return None
    figure, axis = plt.subplots(figsize=(8, 5), dpi=100)
    for points, label, marker in ((train, 'train loss (clients, weighted)', 'o'), (evals, 'eval loss (global)', 's')):
        if points:
            axis.plot(*zip(*points), marker=marker, label=label)
    axis.set_xlabel('round')
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel('loss')
    axis.set_title('Federated training: loss per round')
    axis.legend()
    axis.grid(alpha=0.3)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


class FedRunLog:
    """Appends rows to ``{output_dir}/fed_log.jsonl`` and per-round scalars to TensorBoard under ``logging_dir``."""

    def __init__(self, output_dir: str, logging_dir: str) -> None:
        self.path = os.path.join(output_dir, 'fed_log.jsonl')
        self.plot_path = os.path.join(output_dir, 'images', 'fed_loss.png')
        self._writer = SummaryWriter(logging_dir)

    def truncate_after(self, round_number: int) -> None:
        """Drop rows of rounds after ``round_number`` (written by a run killed before its checkpoint) and an
        incomplete last line; the file is replaced atomically."""
        if os.path.isfile(self.path):
            rewrite_rows(self.path, [row for row in read_rows(self.path) if row.get('round', 0) <= round_number])

    def write(self, row: Dict[str, Any]) -> None:
        append_row(self.path, row)

    def log_round(self, round_number: int, results: List[ClientResult], seconds: float) -> Dict[str, Any]:
        for result in results:
            self.write(result.log_row(round_number))
        row = round_row(round_number, results, seconds)
        self.write(row)
        if row['loss'] is not None:
            self._writer.add_scalar('fed/train_loss', row['loss'], round_number)
        for key in ('samples', 'bytes_sent', 'bytes_received', 'seconds'):
            self._writer.add_scalar(f'fed/{key}', row[key], round_number)
        self._writer.add_scalar('fed/clients_aggregated', len(row['aggregated']), round_number)
        self._writer.flush()
        return row

    def log_eval(self, round_number: int, eval_loss: float, actions: Optional[Dict[str, Any]] = None) -> None:
        """The global model's validation loss and, when scored, its action metrics (``overall`` of
        ``swift_ext.evaluation.score``) under ``actions``."""
        self.write(
            {
                'type': 'eval',
                'round': round_number,
                'eval_loss': eval_loss,
                **({'actions': actions} if actions is not None else {}),
            }
        )
        self._writer.add_scalar('fed/eval_loss', eval_loss, round_number)
        for name, value in (actions or {}).items():
            if isinstance(value, (int, float)) and value is not None:
                self._writer.add_scalar(f'fed/eval_{name}', value, round_number)
        self._writer.flush()

    def log_privacy(self, row: Dict[str, Any]) -> None:
        """A ``privacy`` row (epsilon spent after the round, clip norm) or the ``privacy_stop`` row of a run stopped
        by its budget; epsilon also to TensorBoard (``fed/dp_epsilon``; null, and no scalar, when infinite)."""
        self.write(row)
        if row['type'] == 'privacy':
            for key in ('epsilon', 'clip_norm', 'noisy_unclipped_fraction'):
                if row[key] is not None:
                    self._writer.add_scalar(f'fed/dp_{key}', row[key], row['round'])
            self._writer.flush()

    def close(self) -> Optional[str]:
        """Flush TensorBoard and draw ``images/fed_loss.png``; return its path."""
        self._writer.close()
        return plot_round_losses(read_rows(self.path), self.plot_path)
