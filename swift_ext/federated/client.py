"""Local training of one client: a fresh ms-swift trainer over the client's rows, on the shared model.

The model, template and dataset are built once per run by the pipeline; per client only the trainer (and with it
the optimizer and LR schedule, fresh every round as in FedMABench/OpenFedLLM) is created.
"""

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch import nn
from torch.utils.data import Dataset
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .console import prints_to_run_log
from .state import State, get_trainable_state

OK, FAILED, EXCLUDED, EMPTY, TIMEOUT = 'ok', 'failed', 'excluded', 'empty', 'timeout'


@dataclass
class ClientResult:
    """What the run log records about a client's turn (its state travels separately, see ``train_client``)."""

    client: int
    samples: int = 0  # n_k, the client's training rows
    episodes: int = 0  # the client's distinct episode_id values (0 when the data has none)
    weight: float = 0.0  # its weight in the server average (--fed_weighting), set by the server
    round_samples: int = 0  # rows it was given this round
    steps: int = 0
    loss: Optional[float] = None
    seconds: float = 0.0  # wall time of the whole turn (trainer build + training + state copy)
    train_seconds: float = 0.0  # wall time inside trainer.train()
    bytes_sent: int = 0  # server -> client: the global state (+ SCAFFOLD's c)
    bytes_received: int = 0  # client -> server: its state (+ SCAFFOLD's delta c)
    skipped_steps: int = 0  # micro-batches with a non-finite loss skipped (--nonfinite_loss skip)
    # ok | failed (training raised) | excluded (unusable update) | empty (no rows) | timeout (no answer in time)
    status: str = OK
    detail: List[str] = field(default_factory=list)  # the error, or the tensors that made the update unusable

    def log_row(self, round_number: int) -> Dict[str, Any]:
        row = {'type': 'client', 'round': round_number, **asdict(self)}
        row['seconds'], row['train_seconds'] = round(self.seconds, 4), round(self.train_seconds, 4)
        return row


def client_training_args(base: Any, *, seed_offset: int, max_steps: int, num_train_epochs: float) -> Any:
    """A shallow copy of ms-swift's training arguments for one client turn.

    Per-client trainers do not report to TensorBoard or save checkpoints (the pipeline logs per round and saves the
    global model), skip ms-swift's hub check for newer model files, and do not keep data-loader workers alive: a
    trainer lives for one client turn, and tearing down persistent workers costs ~5 s per client (measured). The
    node keeps one set of workers for all its turns instead (``node_loader``).
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
    result: ClientResult,
    **trainer_kwargs: Any,
) -> Tuple[State, ClientResult]:
    """Train ``model`` in place on ``dataset`` with a fresh trainer; return its trainable state and ``result`` filled
    in with the turn's statistics. Exceptions from training propagate (the pipeline applies --client_failure).

    What the trainer prints (ms-swift prints every logged step) goes to the run's full log, not the console: the
    rows are in ``logging.jsonl`` and the round's line sums them up.
    """
    start = time.perf_counter()
    trainer = trainer_factory(model=model, args=training_args, train_dataset=dataset, **trainer_kwargs)
    train_start = time.perf_counter()
    with prints_to_run_log():
        output = trainer.train()
    result.train_seconds = time.perf_counter() - train_start
    state = get_trainable_state(model)
    result.round_samples = len(dataset)
    result.steps = trainer.state.global_step
    result.loss = float(output.training_loss)
    result.skipped_steps = trainer.skipped_steps
    result.seconds = time.perf_counter() - start
    return state, result
