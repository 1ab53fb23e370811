"""A node's data-loader workers, forked once and kept for every client turn (``--dataloader_num_workers`` > 0).

Why: each client turn has a fresh trainer, and ms-swift's trainer builds a non-persistent DataLoader whose workers are
forked from the training process on every iteration. Forking a process that holds a model costs more than the fork:
while the worker lives, every page the training process writes is copied first (copy-on-write). Plain ms-swift pays
that once per run; a federated run paid it once per client turn (about 0.75 s of system time per turn at the
``small`` preset on CPU, README "Performance"). :class:`NodeDataLoader` forks its workers on the node's first turn
and hands every later turn to them.

The batches are the ones the trainer's own DataLoader would give. Each iteration (one per epoch of a turn, when a
fresh DataLoader would fork fresh workers) gives the workers what fresh workers would have had:

- the turn's dataset, built in the worker from the node's rows (``build(rows)``, the same call the node makes for
  the trainer), so any state a dataset changes while fetching (LazyLLMDataset's fallback position) starts afresh;
- the seeds: Python, NumPy and torch seeded with base_seed + worker id, then the trainer's ``worker_init_fn``
  (ms-swift's ``seed_worker``). base_seed is drawn from the global torch RNG when the iteration starts, as
  DataLoader draws it, so the training process's RNG stream is unchanged too;
- the trainer's own batch sampler (ms-swift's BatchSamplerShard: order, data seed, drop_last) and collate function.

It serves only loaders it can reproduce: ms-swift's DataLoaderShard over a BatchSamplerShard (not its
sequence-parallel loader), the fork start method, and the same worker count, prefetch, pinning, collate function and
``worker_init_fn`` as the turn that created it; any other loader is used as the trainer built it.
"""

import random
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, List, Optional

import numpy as np
import torch
import torch.multiprocessing as torch_mp
from swift.dataloader.shard import BatchSamplerShard, DataLoaderShard
from torch.utils.data import Dataset, get_worker_info

BuildDataset = Callable[[np.ndarray], Dataset]


@dataclass(frozen=True)
class TurnBatch:
    """One batch of one iteration, as the workers receive it: positions ``indices`` in the dataset of ``rows``."""

    iteration: int
    base_seed: int
    rows: np.ndarray
    indices: List[int]


class TurnDataset(Dataset):
    """Worker side: fetches a :class:`TurnBatch` from its iteration's dataset, built (and the worker reseeded) when
    the iteration's first batch arrives. Parent side: ``len`` is the current turn's row count."""

    def __init__(self, build: BuildDataset, worker_init_fn: Optional[Callable[[int], None]]) -> None:
        self.build = build
        self.worker_init_fn = worker_init_fn
        self.num_rows = 0
        self._iteration: Optional[int] = None
        self._dataset: Optional[Dataset] = None

    def __len__(self) -> int:
        return self.num_rows

    def __getitems__(self, batch: TurnBatch) -> List[Any]:
        if batch.iteration != self._iteration:
            self._dataset = self.build(batch.rows)
            _seed_worker(batch.base_seed, self.worker_init_fn)
            self._iteration = batch.iteration
        return [self._dataset[index] for index in batch.indices]


def _seed_worker(base_seed: int, worker_init_fn: Optional[Callable[[int], None]]) -> None:
    """Seed this worker as DataLoader seeds a freshly started one, then run the loader's ``worker_init_fn``."""
    worker_id = get_worker_info().id
    seed = base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


class TurnBatches:
    """Parent side: the current turn's batch sampler, its batches wrapped as :class:`TurnBatch`."""

    def __init__(self) -> None:
        self.sampler: Any = None  # set with the rows by NodeDataLoader.for_turn before any iteration
        self.rows: Optional[np.ndarray] = None
        self.iteration = 0
        self.base_seed = 0

    def __iter__(self):
        for indices in self.sampler:
            yield TurnBatch(self.iteration, self.base_seed, self.rows, list(indices))

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)


def _same_function(a: Any, b: Any) -> bool:
    """``a == b`` (bound methods of one object are equal), or two partials of the same function with equal arguments
    (ms-swift makes a fresh ``partial(template.data_collator, ...)`` and ``partial(seed_worker, ...)`` per trainer)."""
    if a == b:
        return True
    return (
        isinstance(a, partial)
        and isinstance(b, partial)
        and a.func == b.func
        and a.args == b.args
        and a.keywords == b.keywords
    )


def _forks(loader: Any) -> bool:
    context = loader.multiprocessing_context
    method = context.get_start_method() if context is not None else torch_mp.get_start_method()
    return method == 'fork'


class NodeDataLoader(DataLoaderShard):
    """ms-swift's DataLoaderShard over a node's rows with persistent workers; :meth:`for_turn` points it at a
    turn's rows and batch sampler."""

    def __init__(self, build: BuildDataset, first: DataLoaderShard) -> None:
        self.turns = TurnBatches()
        super().__init__(
            TurnDataset(build, first.worker_init_fn),
            device=first.device,
            batch_sampler=self.turns,
            collate_fn=first.collate_fn,
            num_workers=first.num_workers,
            pin_memory=first.pin_memory,
            timeout=first.timeout,
            prefetch_factor=first.prefetch_factor,
            persistent_workers=True,
            # Its base-seed draws are never used (workers are reseeded per iteration, see the module docstring) and
            # must not consume the global RNG a second time.
            generator=torch.Generator(),
        )

    @staticmethod
    def can_replace(loader: Any) -> bool:
        """Whether ``loader`` is a trainer loader this class reproduces at all (see the module docstring)."""
        return (
            type(loader) is DataLoaderShard
            and isinstance(loader.batch_sampler, BatchSamplerShard)  # not the sequence-parallel sampler
            and loader.num_workers > 0
            and _forks(loader)
        )

    def serves(self, loader: Any) -> bool:
        """Whether ``loader`` would give the same batches as this one pointed at its turn."""
        return (
            self.can_replace(loader)
            and loader.num_workers == self.num_workers
            and loader.prefetch_factor == self.prefetch_factor
            and loader.pin_memory == self.pin_memory
            and loader.timeout == self.timeout
            and loader.device == self.device
            and _same_function(loader.collate_fn, self.collate_fn)
            and _same_function(loader.worker_init_fn, self.dataset.worker_init_fn)
        )

    def for_turn(self, rows: np.ndarray, loader: DataLoaderShard) -> 'NodeDataLoader':
        """Serve the turn of ``rows`` (the node's row positions) in the order of ``loader``'s batch sampler."""
        self.turns.sampler, self.turns.rows = loader.batch_sampler, np.asarray(rows)
        self.dataset.num_rows = len(rows)
        return self

    def __iter__(self):
        self.turns.iteration += 1
        self.turns.base_seed = int(torch.empty((), dtype=torch.int64).random_().item())  # DataLoader's own draw
        yield from super().__iter__()
