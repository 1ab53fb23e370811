"""Local training of one client: a fresh ms-swift trainer over the client's rows, on the shared model.

The model, template and dataset are built once per run by the pipeline; per client only the trainer (and with it
the optimizer and LR schedule, fresh every round as in FedMABench/OpenFedLLM) is created.
"""

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from torch import nn
from torch.utils.data import Dataset
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .state import State, get_trainable_state, state_nbytes


@dataclass
class ClientResult:
    """What the run log records about a client's turn (its state travels separately, see ``train_client``)."""

    client: int
    num_rows: int  # n_k, the client's training rows: its aggregation weight
    round_rows: int  # rows it was given this round
    steps: int
    loss: float
    seconds: float  # wall time of the whole client turn (trainer build + training + state copy)
    train_seconds: float  # wall time inside trainer.train()
    update_bytes: int

    def log_row(self, round_number: int) -> Dict[str, Any]:
        return {
            'type': 'client',
            'round': round_number,
            'client': self.client,
            'samples': self.num_rows,
            'round_samples': self.round_rows,
            'steps': self.steps,
            'loss': self.loss,
            'seconds': round(self.seconds, 4),
            'train_seconds': round(self.train_seconds, 4),
            'update_bytes': self.update_bytes,
        }


def client_training_args(base: Any, *, seed_offset: int, max_steps: int, num_train_epochs: float) -> Any:
    """A shallow copy of ms-swift's training arguments for one client turn.

    Per-client trainers do not report to TensorBoard or save checkpoints (the pipeline logs per round and saves the
    global model), skip ms-swift's hub check for newer model files, and do not keep data-loader workers alive: a
    trainer lives for one client turn, and tearing down persistent workers costs ~5 s per client (measured).
    """
    args = copy.copy(base)
    args.seed = base.seed + seed_offset
    if base.data_seed is not None:
        args.data_seed = base.data_seed + seed_offset
    args.max_steps = max_steps
    args.num_train_epochs = num_train_epochs
    args.report_to = []
    args.save_strategy = SaveStrategy.NO
    args.eval_strategy = IntervalStrategy.NO
    args.check_model = False
    args.disable_tqdm = True
    args.dataloader_persistent_workers = False
    return args


def train_client(
    model: nn.Module,
    trainer_factory: Callable[..., Any],
    training_args: Any,
    dataset: Dataset,
    *,
    client: int,
    num_rows: int,
    eval_dataset: Optional[Dataset] = None,
) -> Tuple[State, ClientResult]:
    """Train ``model`` in place on ``dataset`` with a fresh trainer; return its trainable state and statistics."""
    start = time.perf_counter()
    trainer = trainer_factory(model=model, args=training_args, train_dataset=dataset, eval_dataset=eval_dataset)
    train_start = time.perf_counter()
    output = trainer.train()
    train_seconds = time.perf_counter() - train_start
    state = get_trainable_state(model)
    return state, ClientResult(
        client=client,
        num_rows=num_rows,
        round_rows=len(dataset),
        steps=trainer.state.global_step,
        loss=float(output.training_loss),
        seconds=time.perf_counter() - start,
        train_seconds=train_seconds,
        update_bytes=state_nbytes(state),
    )
