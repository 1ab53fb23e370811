"""Secure aggregation (Flower's SecAgg+) without processes: the glue's numbers, and whole SecAgg+ rounds between the
real server workflow and the real ClientApp (with Flower's secaggplus_mod) over an in-memory grid that hands every
message to the addressed node's app and records every reply the server gets.

Expected values are computed here with numpy from the clients' known updates: sum_k w_k (y_k - x), and the
reconstruction error bound of ``secagg_server`` written out by hand for the test's numbers."""

import copy
import json
import math
from typing import Dict, List

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Context, Error, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common.constant import ErrorCode

import swift_ext.flower.client_app as client_app
from swift_ext.arguments.federated import FederatedArguments
from swift_ext.federated.client import ClientResult
from swift_ext.federated.transport.base import ClientTask, ClientUpdate, SummedUpdate
from swift_ext.federated.transport.flower import FlowerTransport
from swift_ext.flower.payload import Payload
from swift_ext.flower.protocol import NodeRegistration, RunIdentity, encode_update
from swift_ext.flower.registration import NodeDirectory
from swift_ext.flower.secagg_client import SECAGG_TASK, clear_reply, secure_vector, secure_weight
from swift_ext.flower.secagg_server import (
    AuditedGrid,
    PlainUpdateError,
    SecAggSettings,
    mean_error_bound,
    quantised_weight,
)
from swift_ext.strategies.dp import ClientDp, NoisySum
from tests.conftest import NamingGlobalModel

Q = 2**16  # coarse on purpose: the quantisation error is visible and must stay within the stated bound
R = 1.0
GLOBAL = {'a': np.array([[0.5, -0.25], [0.0, 1.0]], dtype=np.float32), 'b': np.array([0.125, -0.5], dtype=np.float32)}
SAMPLES = {0: 10, 1: 30, 2: 20}  # n_k
NODE_OF = {0: 101, 1: 102, 2: 103}


def client_state(client: int) -> Dict[str, np.ndarray]:
    """y_k: the global state plus a client-specific move within [-R, R]."""
    rng = np.random.default_rng(client)
    return {key: (x + rng.uniform(-0.4, 0.4, x.shape)).astype(np.float32) for key, x in GLOBAL.items()}


# ------------------------------------------------------------------------------------------------ the glue, alone


def test_vector_weight_and_clear_reply_of_one_client():
    task = Payload(arrays={'global': GLOBAL}, configs={SECAGG_TASK: {'weighting': 'samples', 'noised-delta': False}})
    state = client_state(1)
    result = ClientResult(client=1, samples=30, episodes=None, round_samples=3, steps=2, loss=0.75)
    reply = encode_update(ClientUpdate(result, {k: torch.from_numpy(v) for k, v in state.items()}), 'float32')
    vector = secure_vector(task, reply)
    assert len(vector) == 2
    for array, key in zip(vector, GLOBAL):
        np.testing.assert_array_equal(array, state[key].astype(np.float64) - GLOBAL[key].astype(np.float64))
    assert secure_weight(task, reply) == 30
    task.configs[SECAGG_TASK]['weighting'] = 'uniform'
    assert secure_weight(task, reply) == 1
    # Under distributed DP the reply already is the noised Delta_k, and the clip bit rides in the vector.
    task.configs[SECAGG_TASK]['noised-delta'] = True
    reply.metrics['result']['clip-bit'] = 0.375
    vector = secure_vector(task, reply)
    np.testing.assert_array_equal(vector[0], state['a'].astype(np.float64))
    assert vector[2].tolist() == [0.375]
    # A NaN never enters the masked sum: the node refuses (and so drops out of the round).
    reply.arrays['state']['b'] = np.array([np.nan, 0.0], dtype=np.float32)
    with pytest.raises(ValueError, match='NaN/Inf'):
        secure_vector(task, reply)
    clear = {'result.samples': 30, 'result.round-samples': 3, 'result.steps': 2, 'result.seconds': 1.5}
    clear.update({'result.train-seconds': 1.0, 'result.skipped-steps': 0, 'result.episodes': -1, 'result.loss': 0.75})
    back = clear_reply({**clear, 'status': 'ok', 'detail': 'first\nsecond'})
    assert back.arrays == {} and back.metrics['result']['loss'] == 0.75
    assert back.configs['status'] == {'status': 'ok', 'detail': ['first', 'second']}


def test_error_bound_and_quantised_weights_by_hand():
    # Uniform weights are exact (r_k = 1): the bound is one quantum 2R/Q.
    assert mean_error_bound([1, 1, 1], 1, R, Q) == pytest.approx(2 * R / Q)
    # Weights 10, 30, 20 of max 30: r = round(w/30 * Q)/Q.
    r = [round(10 / 30 * Q) / Q, 1.0, round(20 / 30 * Q) / Q]
    assert [quantised_weight(w, 30, Q) for w in (10, 30, 20)] == r
    by_hand = (3 * 2 * R / Q + (abs(r[0] - 1 / 3) + abs(r[2] - 2 / 3)) * 2 * R) / sum(r)
    assert mean_error_bound([10, 30, 20], 30, R, Q) == pytest.approx(by_hand)


def test_clipping_range_follows_the_dp_settings():
    settings = SecAggSettings()
    assert settings.clipping_range_for(None) == 8.0
    assert settings.clipping_range_for(ClientDp(clip_norm=0.5, noise_stddev=0.1)) == pytest.approx(0.5 + 0.6)
    with_bit = ClientDp(clip_norm=0.1, noise_stddev=0.01, clip_bit_stddev=0.2)
    assert settings.clipping_range_for(with_bit) == pytest.approx(0.5 + 6 * 0.2)
    assert SecAggSettings(clipping_range=3.0).clipping_range_for(with_bit) == 3.0
    assert SecAggSettings().shares(3) == (3, 2) and SecAggSettings().shares(5) == (5, 4)
    assert SecAggSettings(num_shares=3, reconstruction_threshold=2).shares(5) == (3, 2)


def test_noisy_sum_takes_one_summed_reply():
    global_state = {'w': torch.zeros(3)}
    aggregator = NoisySum(global_state, expected_clients=4)
    aggregator.add_sum({'w': torch.tensor([3.0, -6.0, 1.5], dtype=torch.float64)}, count=3, bit_sum=0.5)
    assert aggregator.count == 3
    torch.testing.assert_close(aggregator.mean()['w'], torch.tensor([0.75, -1.5, 0.375]))  # / m = 4, not m' = 3
    assert aggregator.unclipped_fraction() == pytest.approx(0.5 / 4 + 0.5)
    with pytest.raises(ValueError, match='whole round'):
        aggregator.add_sum({'w': torch.zeros(3)}, count=1)


def test_arguments_refuse_what_secure_aggregation_cannot_do():
    base = dict(fed_engine='flower', client_num=4, client_sample=3, supernodes=4, secure_aggregation='secaggplus')
    FederatedArguments(**base)._check_federated()  # fine as it is
    refused = {
        'scaffold': dict(fed_alg='scaffold'),
        'in_process': dict(fed_engine='in_process'),
        'fewer than 3': dict(client_sample=2),
        'own \\(--supernodes': dict(supernodes=2),
        'distributed': dict(dp_clip_norm=1.0, dp_noise_multiplier=1.0, dp_delta=1e-3),
        'save_client_updates': dict(save_client_updates=True),
        'wire_dtype': dict(wire_dtype='bfloat16'),
        'secagg_reconstruction_threshold': dict(secagg_reconstruction_threshold=3),
        'modulo 2\\^32': dict(secagg_quantization_range=2**31),
    }
    for reason, change in refused.items():
        with pytest.raises(ValueError, match=reason):
            FederatedArguments(**{**base, **change})._check_federated()
    with pytest.raises(ValueError, match='only with --secure_aggregation secaggplus'):
        FederatedArguments(secagg_clipping_range=2.0)._check_federated()


@pytest.fixture
def flower_identity(monkeypatch):
    """flwr's per-process identity, which creating a Message reads (a ServerApp process has it set)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (('_run_id', 1), ('_node_id', 0), ('_task_id', 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def test_audit_stops_a_reply_with_plain_arrays(flower_identity):
    class LeakyGrid:
        def send_and_receive(self, messages, timeout=None):
            replies = []
            for message in messages:
                message.metadata.__dict__['_message_id'] = 'm'
                received = Message(RecordDict(), dst_node_id=message.metadata.dst_node_id, message_type='train')
                content = RecordDict({'state': ArrayRecord({'w': Array(np.ones(2, dtype=np.float32))})})
                replies.append(Message(content, reply_to=received))
            return replies

    message = Message(RecordDict(), dst_node_id=7, message_type=MessageType.TRAIN)
    with pytest.raises(PlainUpdateError, match='in the clear'):
        AuditedGrid(LeakyGrid()).send_and_receive([message])


# ------------------------------------------------------------------------- whole rounds over an in-memory grid


class FakeNodeService:
    """What a node's training worker answers: y_k of the client named in the task (no model); client ``nan_client``
    returns a NaN."""

    def __init__(self, nan_client=None) -> None:
        self.nan_client = nan_client

    def handle(self, message_type, run_config, node_config, payload):
        client = int(payload.configs['task']['client'])
        result = ClientResult(client=client, samples=SAMPLES[client], episodes=None, round_samples=2, steps=1)
        result.loss = 0.5 + client
        state = {k: torch.from_numpy(v) for k, v in client_state(client).items()}
        if client == self.nan_client:
            state['a'][0, 0] = float('nan')
        return encode_update(ClientUpdate(result, state), 'float32')


def wire_copy(message: Message) -> Message:
    """What the node receives: a new message with copies of the records (arrays and configs)."""
    meta = message.metadata
    content = Payload.from_record_dict(message.content)
    content.configs = copy.deepcopy(content.configs)
    delivered = Message(content.to_record_dict(), meta.dst_node_id, meta.message_type, group_id=meta.group_id)
    delivered.metadata.__dict__['_message_id'] = meta.message_id
    return delivered


class InMemoryGrid:
    """Delivers each message (a copy, as the wire would) to the ClientApp of its node, keeping one Context per node
    across stages; the nodes in ``drop`` go silent from the masking stage on; an app that raises answers with an
    error, as Flower's runtime does. Records every reply."""

    def __init__(self, drop=()) -> None:
        self.contexts = {node: Context(1, node, {}, RecordDict(), {}) for node in NODE_OF.values()}
        self.drop = set(drop)
        self.replies: List[Message] = []
        self.sent = 0

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for message in messages:
            self.sent += 1
            node = message.metadata.dst_node_id
            message.metadata.__dict__['_message_id'] = f'message-{self.sent}'
            delivered = wire_copy(message)
            if node in self.drop and 'task' in message.content.config_records:
                continue  # the node died before uploading its masked vector
            try:
                reply = client_app.app(delivered, self.contexts[node])
            except Exception as error:  # what Flower's runtime does with a ClientApp that raised
                reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, repr(error)), reply_to=delivered)
            replies.append(reply)
        self.replies += replies
        return replies


def transport(grid, weighting='samples') -> FlowerTransport:
    registrations = {NODE_OF[k]: NodeRegistration({k: (n, None)}, '', []) for k, n in SAMPLES.items()}
    directory = NodeDirectory.from_registrations(registrations, SAMPLES)
    settings = SecAggSettings(clipping_range=R, quantization_range=Q)
    return FlowerTransport(grid, directory, RunIdentity('k', '/tmp'), 'float32', 30.0, 0.01, settings, weighting)


def tasks() -> List[ClientTask]:
    x = {k: torch.from_numpy(v) for k, v in GLOBAL.items()}
    return [ClientTask(round_number=1, client=k, seed_offset=k, global_state=x) for k in SAMPLES]


@pytest.fixture
def fake_nodes(monkeypatch, flower_identity):
    service = FakeNodeService()
    monkeypatch.setattr(client_app, '_service', lambda: service)
    return service


@pytest.mark.parametrize('drop', [None, NODE_OF[1]])
def test_secure_round_gives_the_weighted_sum_and_no_individual_update(fake_nodes, drop):
    grid = InMemoryGrid(drop=[drop] if drop else [])
    summed = transport(grid).train_summed(tasks())
    survivors = [k for k in SAMPLES if NODE_OF[k] != drop]
    expected = {
        key: sum(SAMPLES[k] * (client_state(k)[key].astype(np.float64) - GLOBAL[key]) for k in survivors)
        for key in GLOBAL
    }
    weight_sum = sum(SAMPLES[k] for k in survivors)
    bound = mean_error_bound([SAMPLES[k] for k in survivors], max(SAMPLES.values()), R, Q)
    assert summed.count == len(survivors) and summed.weight_sum == weight_sum
    for key in GLOBAL:
        error = np.abs(summed.delta_sum[key].numpy() / weight_sum - expected[key] / weight_sum).max()
        assert error < bound, (key, error, bound)
    assert summed.report['mean_error_bound'] == pytest.approx(bound)
    assert summed.report['clients_summed'] == survivors
    statuses = {r.client: r.status for r in summed.results}
    assert statuses == {k: ('timeout' if NODE_OF[k] == drop else 'ok') for k in SAMPLES}
    losses = {r.client: r.loss for r in summed.results if r.status == 'ok'}
    assert losses == {k: 0.5 + k for k in survivors}  # the clear log numbers arrive
    # What the server received: 4 stages of replies, none with an array in the clear; the updates only masked.
    assert grid.replies and all(
        not any(len(record) for record in reply.content.array_records.values()) for reply in grid.replies
    )
    assert summed.report['replies_inspected'] == len(grid.replies) == 3 + 3 + len(survivors) + len(survivors)
    masked = [r for r in grid.replies if 'masked_params' in r.content.config_records['secaggplus_configs']]
    assert len(masked) == len(survivors)


# --------------------------------------------------------------------------------- the round loop on one sum


class SummingTransport:
    """A transport that only hands over sums: the round's third client drops out; the others' weighted Delta_k sum
    is fixed, each weighs ``weight``."""

    sums_only = True

    def __init__(self, weight: float) -> None:
        self.rounds = []
        self.weight = weight

    def train_summed(self, round_tasks):
        self.rounds.append([task.client for task in round_tasks])
        results = [ClientResult(client=t.client, samples=4, loss=0.5, weight=self.weight) for t in round_tasks[:2]]
        results.append(ClientResult(client=round_tasks[2].client, status='timeout'))
        delta_sum = {'w': torch.tensor([0.6, -1.2], dtype=torch.float64)}
        return SummedUpdate(results, delta_sum, 2 * self.weight, 2, None, {'type': 'secure_aggregation', 'round': 1})


def summed_round(tmp_path, weight, privacy=None):
    from swift_ext.federated.checkpoint import CheckpointStore
    from swift_ext.federated.round_loop import RoundLoop, RoundPlan
    from swift_ext.federated.run_log import FedRunLog
    from swift_ext.strategies import FedAvg

    plan = RoundPlan(fed_alg='fedavg', rounds=1, client_num=4, client_sample=3, seed=0, weighting='samples',
                     save_every=1, client_failure='skip', output_dir=str(tmp_path))  # fmt: skip
    run_log = FedRunLog(str(tmp_path), str(tmp_path / 'runs'))
    transport = SummingTransport(weight)
    loop = RoundLoop(
        plan, FedAvg(), transport, NamingGlobalModel(), CheckpointStore(str(tmp_path)), run_log, privacy=privacy
    )
    x = {'w': torch.tensor([1.0, 2.0])}
    loop.run(x)
    run_log.close()
    state = loop.store.load_latest().global_state
    rows = [json.loads(line) for line in open(run_log.path, encoding='utf-8')]
    return transport, state, rows


def test_round_loop_takes_the_transports_sum_as_the_client_mean(tmp_path):
    transport, state, rows = summed_round(tmp_path, weight=3.0)
    assert len(transport.rounds) == 1 and len(transport.rounds[0]) == 3
    # FedAvg: x + sum_k w_k Delta_k / sum_k w_k = [1, 2] + [0.6, -1.2] / 6
    torch.testing.assert_close(state['w'], torch.tensor([1.1, 1.8]))
    kinds = [row['type'] for row in rows]
    assert kinds == ['client', 'client', 'client', 'round', 'secure_aggregation']
    assert rows[3]['aggregated'] == transport.rounds[0][:2]


def test_round_loop_charges_distributed_dp_for_the_clients_summed(tmp_path):
    from swift_ext.privacy import ClientLevelDp, DpConfig

    config = DpConfig(mode='distributed', clip_norm=1.0, delta=1e-3, client_num=4, clients_per_round=3, rounds=1,
                      seed=0, noise_multiplier=1.0)  # fmt: skip
    _, state, rows = summed_round(tmp_path, 1.0, ClientLevelDp(config))
    # Fixed denominator m = 3 (not m' = 2): x + [0.6, -1.2] / 3; charged z sqrt(m'/m) for the 2 summed clients.
    torch.testing.assert_close(state['w'], torch.tensor([1.2, 1.6]))
    privacy = [row for row in rows if row['type'] == 'privacy']
    assert privacy[0]['noise_multiplier'] == pytest.approx(math.sqrt(2 / 3))
    with pytest.raises(ValueError, match='weighs every client 1'):
        summed_round(tmp_path / 'weighted', 3.0, ClientLevelDp(config))


def test_a_node_that_requires_secure_aggregation_refuses_a_plain_train_message(flower_identity):
    from swift_ext.flower.secagg_client import optional_secaggplus_mod

    message = Message(RecordDict(), dst_node_id=7, message_type=MessageType.TRAIN)
    required = Context(1, 7, {'secure-aggregation': 'required'}, RecordDict(), {})
    with pytest.raises(ValueError, match='--secure_aggregation secaggplus'):
        optional_secaggplus_mod(message, required, lambda m, c: m)
    plain = Context(1, 7, {}, RecordDict(), {})
    assert optional_secaggplus_mod(message, plain, lambda m, c: m) is message


def test_a_nan_client_drops_itself_and_two_dropouts_halt_the_round(fake_nodes):
    fake_nodes.nan_client = 2
    summed = transport(InMemoryGrid()).train_summed(tasks())
    statuses = {r.client: r.status for r in summed.results}
    assert statuses == {0: 'ok', 1: 'ok', 2: 'failed'} and summed.count == 2
    assert 'NaN/Inf' in summed.results[2].detail[0]
    expected = sum(SAMPLES[k] * (client_state(k)['b'].astype(np.float64) - GLOBAL['b']) for k in (0, 1))
    bound = mean_error_bound([SAMPLES[0], SAMPLES[1]], max(SAMPLES.values()), R, Q)
    assert np.abs(summed.delta_sum['b'].numpy() - expected).max() / summed.weight_sum < bound
    # Two of three gone after key sharing: the threshold (2) cannot be met, nothing is summed or revealed.
    fake_nodes.nan_client = None
    halted = transport(InMemoryGrid(drop=[NODE_OF[0], NODE_OF[1]])).train_summed(tasks())
    assert halted.count == 0 and halted.delta_sum is None
    assert {r.client: r.status for r in halted.results} == {0: 'timeout', 1: 'timeout', 2: 'excluded'}
