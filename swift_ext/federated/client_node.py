"""Where clients train: a node holds the model, the trainer recipe and its clients' encoded rows, built once, and
turns each :class:`ClientTask` into a :class:`ClientUpdate`.

Every transport ends here (in-process: the node lives in the server's process; Flower: one node per SuperNode), so
the client side of every algorithm exists once:

- rows: all of the client's rows with ``--max_steps`` > 0, else FedMABench's ceil(n_k / round_per_epoch) subset
  (``sampling.rows_for_round``);
- FedProx: the trainer adds mu/2 ||w - x_t||^2 (``client_trainer``);
- SCAFFOLD: the gradient is corrected by c - c_i before every optimiser step, then option II gives
  c_i+ = c_i - c + (x - y_i) / sum_k eta_k; c_i stays in the node's :class:`ControlStore` and only
  Delta c_i = c_i+ - c_i travels. A client whose steps all had learning rate 0 did not move and has no
  information for c_i: it keeps c_i (Delta c_i = 0) and says so in ``detail``.
- distributed DP (``task.dp``): the client clips Delta_k = y_k - x, adds its noise share and replies with that
  instead of y_k (``strategies.dp.ClientDp``); its seeded noise comes from (seed, round, client), never the global
  RNGs.

Anything raised while a client trains becomes a ``failed`` update carrying the error, so the server's
``--client_failure`` decides, whatever the transport.
"""

import traceback
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, Callable, Dict, Optional

import numpy as np
from datasets import Dataset as HfDataset
from swift.utils import get_logger
from torch import nn
from torch.utils.data import Dataset

from ..strategies.scaffold import client_control_update
from .client import EMPTY, FAILED, ClientResult, client_training_args, train_client
from .client_controls import ControlStore
from .client_trainer import ScaffoldCorrection
from .dataset import ClientMembership
from .node_loader import NodeDataLoader
from .sampling import CENTRAL_CLIENT, rows_for_round
from .state import State, load_trainable_state
from .transport.base import ClientTask, ClientUpdate

logger = get_logger()


@dataclass(frozen=True)
class LocalTraining:
    """How each client trains in a round (from the run's arguments)."""

    max_steps: int  # > 0: exactly this many optimiser steps over all the client's rows
    num_train_epochs: float  # with max_steps <= 0: passes over the round's subset
    round_per_epoch: int  # with max_steps <= 0: the subset is ceil(n_k / round_per_epoch) rows
    seed: int
    nonfinite_loss: str  # 'stop' | 'skip' (client_trainer)


@dataclass
class ClientData:
    """A node's training rows (encoded lazily by ``encode``) and the clients that own them."""

    train: HfDataset
    membership: ClientMembership
    encode: Callable[[HfDataset], Dataset]

    def rows(self, client: int) -> np.ndarray:
        """Positions of the client's rows; every row for ``CENTRAL_CLIENT``."""
        if client == CENTRAL_CLIENT:
            return self.membership.pooled()
        return self.membership.positions.get(client, np.zeros(0, dtype=np.int64))

    def turn_dataset(self, rows: np.ndarray) -> Dataset:
        """The rows at positions ``rows``, encoded lazily: what a client trains on in one turn."""
        return self.encode(self.train.select(rows))

    def episodes(self, client: int) -> Optional[int]:
        """Distinct ``episode_id`` values among the client's rows; None when the data has no such column."""
        if self._episode_ids is None:
            return None
        return len(set(self._episode_ids[self.rows(client)].tolist()))

    @cached_property
    def _episode_ids(self) -> Optional[np.ndarray]:
        if 'episode_id' not in self.train.column_names:
            return None
        return np.asarray(self.train['episode_id'], dtype=object)

    @property
    def clients(self) -> Dict[int, int]:
        """Client id -> n_k for every client this node holds rows of."""
        return {client: len(rows) for client, rows in self.membership.positions.items() if len(rows)}


class ClientNode:
    """Trains the clients whose rows it holds, one task at a time, on one model loaded once."""

    def __init__(
        self,
        model: nn.Module,
        trainer_factory: Callable[..., Any],
        training_args: Any,
        data: ClientData,
        local: LocalTraining,
        controls: ControlStore,
    ) -> None:
        self.model = model
        self.trainer_factory = trainer_factory
        self.training_args = training_args
        self.data = data
        self.local = local
        self.controls = controls
        self._loader: Optional[NodeDataLoader] = None  # the data-loader workers every turn shares (node_loader)

    def train(self, task: ClientTask) -> ClientUpdate:
        """One client's round: train from ``task.global_state`` on its rows; never raises for a client's error."""
        result = ClientResult(client=task.client)
        try:
            positions = self.data.rows(task.client)
            result.samples, result.episodes = len(positions), self.data.episodes(task.client)
            if len(positions) == 0:
                logger.warning(f'[swift_ext] round {task.round_number}: client {task.client} has no rows; skipped.')
                result.status = EMPTY
                return ClientUpdate(result)
            return self._train(task, positions, result)
        except Exception as error:  # noqa: BLE001 -- the server applies --client_failure to every client error
            logger.error(
                f'[swift_ext] round {task.round_number}: client {task.client} FAILED:\n{traceback.format_exc()}'
            )
            result.status, result.detail = FAILED, [f'{type(error).__name__}: {error}']
            self._loader = None  # the next turn starts fresh workers, whatever state this failure left them in
            return ClientUpdate(result)

    def _train(self, task: ClientTask, positions: np.ndarray, result: ClientResult) -> ClientUpdate:
        local = self.local
        rows = (
            positions
            if local.max_steps > 0
            else rows_for_round(positions, task.round_number - 1, task.client, local.round_per_epoch, local.seed)
        )
        load_trainable_state(self.model, task.global_state)
        trainer_kwargs: Dict[str, Any] = {
            'nonfinite_loss': local.nonfinite_loss,
            'train_loader_hook': partial(self._shared_loader, rows),
        }
        if task.proximal_mu > 0:
            trainer_kwargs.update(proximal_mu=task.proximal_mu, anchor=task.global_state)
        client_control = correction = None
        if task.server_control is not None:
            client_control = self.controls.load(task.client, task.control_round, like=task.server_control)
            correction = ScaffoldCorrection(
                {name: task.server_control[name] - client_control[name] for name in task.server_control}
            )
            trainer_kwargs['extra_callbacks'] = [correction]
        training_args = client_training_args(
            self.training_args,
            seed_offset=task.seed_offset,
            max_steps=local.max_steps,
            num_train_epochs=local.num_train_epochs,
        )
        state, result = train_client(
            self.model, self.trainer_factory, training_args, self.data.turn_dataset(rows), result, **trainer_kwargs,
        )  # fmt: skip
        if task.dp is not None:
            noised, clip_bit = task.dp.apply(task.global_state, state, local.seed, task.round_number, task.client)
            return ClientUpdate(result, noised, clip_bit=clip_bit)
        if correction is None:
            return ClientUpdate(result, state)
        delta = self._finish_scaffold(task, client_control, state, correction.lr_sum, result)
        return ClientUpdate(result, state, delta)

    def _shared_loader(self, rows: np.ndarray, loader: Any) -> Any:
        """The node's persistent loader pointed at this turn's ``rows`` in place of the trainer's ``loader``, where it
        gives the same batches (``node_loader``); else ``loader``."""
        if self._loader is None and NodeDataLoader.can_replace(loader):
            self._loader = NodeDataLoader(self.data.turn_dataset, loader)
        if self._loader is not None and self._loader.serves(loader):
            return self._loader.for_turn(rows, loader)
        return loader

    def _finish_scaffold(
        self, task: ClientTask, client_control: State, state: State, lr_sum: float, result: ClientResult
    ) -> State:
        """Store c_i+ for this round and return Delta c_i (zero when no step had a positive learning rate)."""
        if lr_sum > 0:
            new_control = client_control_update(client_control, task.server_control, task.global_state, state, lr_sum)
        else:
            new_control = client_control
            result.detail.append(
                'SCAFFOLD: no local step had a positive learning rate (e.g. a single step inside the warm-up); '
                'c_i kept, Delta c_i = 0'
            )
        self.controls.save(task.client, task.round_number, new_control)
        return {name: new_control[name] - client_control[name] for name in new_control}
