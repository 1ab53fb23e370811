"""The node's persistent data-loader workers (swift_ext.federated.node_loader) give every client turn the batches
ms-swift's own per-trainer DataLoader gives, leave the training process's RNG where that loader leaves it, and fork
once per node instead of once per turn."""

import os
import random
from functools import partial

import numpy as np
import pytest
import torch
from swift.dataloader.shard import BatchSamplerShard, DataLoaderShard
from swift.utils.transformers_utils import seed_worker
from torch.utils.data import Dataset

from swift_ext.federated.node_loader import NodeDataLoader
from swift_ext.federated.pipeline import fed_sft_main
from tests.conftest import as_argv, load_adapter, read_jsonl, run_dir, tiny_lora_options


class Fetches(Dataset):
    """Row ``i`` is fetched as (node row, fetches so far by this copy, a draw from each worker RNG, worker pid)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.fetched = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        self.fetched += 1
        draws = (random.random(), float(np.random.rand()), float(torch.rand(())))
        return int(self.rows[index]), self.fetched, draws, os.getpid()


class Template:
    def data_collator(self, items, padding_to=None):
        return list(items)


TEMPLATE = Template()


def ms_swift_loader(rows: np.ndarray, data_seed: int, collate_fn=None) -> DataLoaderShard:
    """What ms-swift's get_train_dataloader builds for a client's rows (batch size 2, one worker, shuffled), with
    a fresh partial of the template's collator as each ms-swift trainer has."""
    sampler = BatchSamplerShard(len(rows), batch_size=2, shuffle=True, drop_last=False, data_seed=data_seed)
    collate_fn = collate_fn or partial(TEMPLATE.data_collator, padding_to=None)
    return DataLoaderShard(
        Fetches(rows), batch_sampler=sampler, collate_fn=collate_fn, num_workers=1, prefetch_factor=2,
        worker_init_fn=partial(seed_worker, num_workers=1, rank=0),
    )  # fmt: skip


def take(loader, epochs: int, batches: int):
    """Batches as a trainer takes them: ``epochs`` passes, each stopped after ``batches`` (max_steps inside)."""
    taken = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for number, batch in enumerate(loader):
            if number == batches:
                break
            taken.append(batch)
    return taken


def without_pids(taken):
    return [[item[:3] for item in batch] for batch in taken]


# (client rows, seed, epochs, batches per epoch): turns of unequal sizes, stopped early, and two epochs
TURNS = [
    (np.array([3, 7, 1, 9, 4]), 11, 1, 2),
    (np.array([0, 2, 5, 6, 8, 10, 12]), 12, 2, 9),
    (np.array([13, 14, 15]), 13, 1, 9),
    (np.array([3, 7, 1, 9, 4]), 14, 1, 1),
]


def test_every_turn_gets_the_batches_and_rng_of_a_fresh_loader_from_one_fork():
    node = None
    node_pids = set()
    for rows, seed, epochs, batches in TURNS:
        torch.manual_seed(seed)
        expected = take(ms_swift_loader(rows, seed), epochs, batches)
        rng_after_expected = torch.get_rng_state()

        torch.manual_seed(seed)
        loader = ms_swift_loader(rows, seed)
        node = node or NodeDataLoader(lambda turn_rows: Fetches(turn_rows), loader)
        assert node.serves(loader)
        actual = take(node.for_turn(rows, loader), epochs, batches)

        assert without_pids(actual) == without_pids(expected)
        assert torch.equal(torch.get_rng_state(), rng_after_expected)
        assert len(node) == len(loader) and len(node.dataset) == len(rows)
        node_pids |= {item[3] for batch in actual for item in batch}
        assert os.getpid() not in node_pids
    assert len(node_pids) == 1  # one worker process served all four turns


def test_a_loader_it_cannot_reproduce_is_not_served():
    rows = np.arange(4)
    first = ms_swift_loader(rows, 1)
    node = NodeDataLoader(lambda turn_rows: Fetches(turn_rows), first)
    assert node.serves(ms_swift_loader(rows, 2))  # new partials of the same functions with the same arguments
    assert not node.serves(ms_swift_loader(rows, 1, collate_fn=partial(TEMPLATE.data_collator, padding_to=64)))
    assert not node.serves(ms_swift_loader(rows, 1, collate_fn=partial(Template().data_collator, padding_to=None)))
    in_process = DataLoaderShard(Fetches(rows), batch_sampler=first.batch_sampler, collate_fn=list, num_workers=0)
    assert not NodeDataLoader.can_replace(in_process)
    sequence_parallel_like = DataLoaderShard(Fetches(rows), batch_size=2, collate_fn=list, num_workers=1)
    assert not NodeDataLoader.can_replace(sequence_parallel_like)
    spawned = ms_swift_loader(rows, 1)
    spawned.multiprocessing_context = 'spawn'
    assert not NodeDataLoader.can_replace(spawned)


def test_a_federated_run_trains_as_with_ms_swifts_own_loaders(tiny_model_dir, sample_jsonl, tmp_path, monkeypatch):
    """2 rounds x 2 of 4 clients, 10 steps over 8 rows (a second epoch, stopped early), LoRA dropout: the run with
    the node's persistent worker equals the run where every trainer keeps ms-swift's own DataLoader."""
    options = {
        **tiny_lora_options(tiny_model_dir, sample_jsonl, ''), 'dataloader_num_workers': 1, 'lora_dropout': 0.1,
        'max_steps': 10, 'fed_alg': 'fedavg', 'round': 2, 'client_num': 4, 'client_sample': 2, 'save_every': 2,
    }  # fmt: skip
    served = []
    for_turn = NodeDataLoader.for_turn
    monkeypatch.setattr(NodeDataLoader, 'for_turn', lambda self, *a: served.append(id(self)) or for_turn(self, *a))
    fed_sft_main(as_argv({**options, 'output_dir': str(tmp_path / 'node_loader')}))
    monkeypatch.setattr(NodeDataLoader, 'can_replace', staticmethod(lambda loader: False))
    fed_sft_main(as_argv({**options, 'output_dir': str(tmp_path / 'ms_swift_loaders')}))

    assert len(served) == 4 and len(set(served)) == 1  # every turn of the first run, on one loader
    runs = {name: run_dir(str(tmp_path / name)) for name in ('node_loader', 'ms_swift_loaders')}
    adapters = {name: load_adapter(os.path.join(run, 'global_lora_2')) for name, run in runs.items()}
    assert adapters['node_loader'].keys() == adapters['ms_swift_loaders'].keys()
    assert all(
        torch.equal(adapters['node_loader'][k], adapters['ms_swift_loaders'][k]) for k in adapters['node_loader']
    )
    losses = {
        name: [(r['round'], r['client'], r['steps'], r['loss']) for r in read_jsonl(os.path.join(run, 'fed_log.jsonl'))
               if r['type'] == 'client']
        for name, run in runs.items()
    }  # fmt: skip
    assert losses['node_loader'] == losses['ms_swift_loaders'] and {s for _, _, s, _ in losses['node_loader']} == {10}


@pytest.fixture(autouse=True)
def no_leftover_rng():
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)
