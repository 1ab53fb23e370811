"""The server's memory does not grow with a round's clients: the round loop folds each update into one running sum
and frees it before the next client trains (a streaming mean), whatever the number of clients."""

import gc
import weakref

import pytest
import torch

from swift_ext.federated.checkpoint import CheckpointStore
from swift_ext.federated.client import ClientResult
from swift_ext.federated.round_loop import RoundLoop, RoundPlan
from swift_ext.federated.run_log import FedRunLog
from swift_ext.federated.transport import InProcessTransport
from swift_ext.federated.transport.base import ClientUpdate
from swift_ext.strategies import FedAvg
from tests.conftest import NamingGlobalModel, read_jsonl


class LiveUpdateCounter:
    """A node whose k-th client turn returns x + k; before each turn it counts the earlier turns' states that are still
    alive somewhere in the process."""

    def __init__(self) -> None:
        self.refs = []
        self.alive_before_client = []

    def train(self, task):
        gc.collect()
        self.alive_before_client.append(sum(ref() is not None for ref in self.refs))
        state = {'w': task.global_state['w'] + (len(self.refs) + 1)}
        self.refs.append(weakref.ref(state['w']))
        return ClientUpdate(ClientResult(client=task.client, samples=task.client + 1, loss=0.5), state)


@pytest.mark.parametrize('clients', [3, 24])
def test_no_earlier_client_state_is_alive_while_the_next_client_trains(tmp_path, clients):
    plan = RoundPlan(fed_alg='fedavg', rounds=1, client_num=clients, client_sample=clients, seed=0,
                     weighting='samples', save_every=1, client_failure='skip', output_dir=str(tmp_path))  # fmt: skip
    node = LiveUpdateCounter()
    run_log = FedRunLog(str(tmp_path), str(tmp_path / 'runs'))
    loop = RoundLoop(
        plan, FedAvg(), InProcessTransport(node), NamingGlobalModel(), CheckpointStore(str(tmp_path)), run_log
    )
    loop.run({'w': torch.zeros(1000)})
    run_log.close()

    # Every earlier update has been folded into the running sum and freed before the next client trains.
    assert node.alive_before_client == [0] * clients
    # And the running sum is the weighted mean: client c (its k-th turn) has n = c + 1 rows and sent k + 1.
    order = clients_in_log_order(tmp_path)
    expected = sum((c + 1) * (k + 1) for k, c in enumerate(order)) / sum(c + 1 for c in order)
    state = loop.store.load_latest().global_state
    assert torch.allclose(state['w'], torch.full((1000,), expected))


def clients_in_log_order(output_dir):
    return [row['client'] for row in read_jsonl(output_dir / 'fed_log.jsonl') if row['type'] == 'client']
