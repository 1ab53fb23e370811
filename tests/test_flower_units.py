"""The Flower engine's parts without processes: payload frames, what the records mean (wire dtypes, tasks, updates,
registration), node data semantics, argument overrides, registration errors, the transport's streaming and timeouts
over an in-memory grid, certificates, and the app declaration."""

import io
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from swift_ext.arguments.federated import FederatedArguments
from swift_ext.federated.client import FAILED, OK, TIMEOUT, ClientResult
from swift_ext.federated.transport.base import ClientTask, ClientUpdate
from swift_ext.flower.node_data import NodeData, hosted_by
from swift_ext.flower.payload import LENGTH, Payload, decode_frame, encode_frame, receive_frame, send_frame
from swift_ext.flower.protocol import (
    NodeRegistration,
    RunIdentity,
    decode_task,
    decode_update,
    encode_task,
    encode_update,
    state_from_wire,
    state_to_wire,
)
from swift_ext.flower.registration import NodeDirectory
from swift_ext.flower.run_config import replace_flags, run_config_value, swift_argv

RUN = RunIdentity('v0-20260101-000000-0123abcd', '/runs/v0-20260101-000000')


def sample_payload() -> Payload:
    return Payload(
        arrays={
            'global': {
                'a.lora_A.weight': np.arange(12, dtype=np.float32).reshape(3, 4),
                'b.lora_B.weight': np.full((2,), 7, dtype=np.float16),
            },
            'bits': {'x': np.array([1, 65535], dtype=np.uint16), 'scalar': np.array(3, dtype=np.int64)},
        },
        configs={'task': {'round': 2, 'name': 'x', 'flag': True, 'detail': ['a', 'b'], 'mu': 0.5}},
        metrics={'result': {'steps': 4, 'loss': 1.25, 'ids': [1, 2]}},
    )


def assert_same_payload(left: Payload, right: Payload) -> None:
    assert left.configs == right.configs and left.metrics == right.metrics
    assert {name: list(arrays) for name, arrays in left.arrays.items()} == {
        name: list(arrays) for name, arrays in right.arrays.items()
    }
    for name, arrays in left.arrays.items():
        for key, value in arrays.items():
            assert value.dtype == right.arrays[name][key].dtype and np.array_equal(value, right.arrays[name][key])


def test_payload_survives_a_frame_a_socket_and_a_record_dict():
    payload = sample_payload()
    frame = encode_frame({'type': 'train', 'n': 1}, payload)
    meta_length = LENGTH.unpack(frame[: LENGTH.size])[0]
    meta = frame[LENGTH.size : LENGTH.size + meta_length]
    blob = frame[2 * LENGTH.size + meta_length :]
    header, decoded = decode_frame(meta, blob)
    assert header == {'type': 'train', 'n': 1}
    assert_same_payload(payload, decoded)

    left, right = socket.socketpair()
    with left, right:
        sender = threading.Thread(target=send_frame, args=(left, {'k': 'v'}, payload))
        sender.start()
        header, received = receive_frame(right)
        sender.join()
    assert header == {'k': 'v'}
    assert_same_payload(payload, received)

    assert_same_payload(payload, Payload.from_record_dict(payload.to_record_dict()))


def test_nothing_is_unpickled_from_a_message():
    from flwr.app import Array, ArrayRecord, RecordDict

    buffer = io.BytesIO()
    np.save(buffer, np.array([{'code': 'would run on load'}], dtype=object), allow_pickle=True)
    pickled = Array(dtype='object', shape=(1,), stype='numpy.ndarray', data=buffer.getvalue())
    with pytest.raises(ValueError, match='allow_pickle'):
        Payload.from_record_dict(RecordDict({'global': ArrayRecord({'x': pickled})}))


def test_wire_dtypes_round_like_torch_and_halve_the_bytes():
    state = {'w': torch.randn(64, 33), 'v': torch.tensor([1.0, 1e-8, -3.14159, 65504.0])}
    exact = state_from_wire(state_to_wire(state, 'float32'))
    assert all(torch.equal(exact[k], state[k]) for k in state)
    for wire in ('bfloat16', 'float16'):
        arrays = state_to_wire(state, wire)
        assert sum(a.nbytes for a in arrays.values()) * 2 == sum(t.numel() * 4 for t in state.values())
        decoded = state_from_wire(arrays)
        expected = {k: t.to(getattr(torch, wire)).float() for k, t in state.items()}  # torch's own rounding
        assert all(decoded[k].dtype == torch.float32 and torch.equal(decoded[k], expected[k]) for k in state)
    assert state_to_wire(state, 'bfloat16')['w'].dtype == np.uint16  # numpy has no bfloat16: its bit pattern


def test_task_and_update_round_trip():
    x = {'a': torch.randn(3, 2), 'b': torch.zeros(4)}
    c = {'a': torch.ones(3, 2), 'b': torch.full((4,), -2.0)}
    task = ClientTask(round_number=3, client=5, seed_offset=7, global_state=x, proximal_mu=0.01, server_control=c)
    decoded, wire = decode_task(encode_task(task, RUN, 'float32'))
    assert wire == 'float32' and decoded.control_round is None and decoded.proximal_mu == pytest.approx(0.01)
    assert (decoded.round_number, decoded.client, decoded.seed_offset) == (3, 5, 7)
    assert all(torch.equal(decoded.global_state[k], x[k]) and torch.equal(decoded.server_control[k], c[k]) for k in x)
    assert RunIdentity.from_payload(encode_task(task, RUN, 'float32')) == RUN

    task.control_round, task.server_control = 2, None
    decoded, _ = decode_task(encode_task(task, RUN, 'bfloat16'))
    assert decoded.control_round == 2 and decoded.server_control is None

    result = ClientResult(client=5, samples=8, episodes=None, round_samples=4, steps=2, loss=None, seconds=1.5)
    result.detail = ['SCAFFOLD: c_i kept']
    update = decode_update(encode_update(ClientUpdate(result, x, c), 'float32'), client=5)
    assert update.result.episodes is None and update.result.loss is None
    assert (update.result.samples, update.result.round_samples, update.result.steps) == (8, 4, 2)
    assert update.result.seconds == 1.5 and update.result.detail == ['SCAFFOLD: c_i kept']
    assert all(torch.equal(update.state[k], x[k]) and torch.equal(update.control_delta[k], c[k]) for k in x)
    # The server's task names the client: a reply cannot speak for another one.
    assert decode_update(encode_update(ClientUpdate(result, x), 'float32'), client=9).result.client == 9


def test_distributed_dp_travels_with_the_task_and_the_clip_bit_with_the_update():
    from swift_ext.strategies.dp import ClientDp

    x = {'a': torch.randn(3)}
    for dp in (ClientDp(clip_norm=0.5, noise_stddev=0.01), ClientDp(0.5, 0.01, clip_bit_stddev=0.2, secure_rng=True)):
        task = ClientTask(round_number=1, client=0, seed_offset=0, global_state=x, dp=dp)
        assert decode_task(encode_task(task, RUN, 'float32'))[0].dp == dp
    assert decode_task(encode_task(ClientTask(1, 0, 0, x), RUN, 'float32'))[0].dp is None
    update = ClientUpdate(ClientResult(client=0, samples=8, loss=1.0), x, clip_bit=-0.37)
    assert decode_update(encode_update(update, 'float32'), client=0).clip_bit == pytest.approx(-0.37)
    assert decode_update(encode_update(ClientUpdate(update.result, x), 'float32'), client=0).clip_bit is None


def test_registration_round_trip():
    registration = NodeRegistration({0: (8, 8), 4: (3, None)}, 'shared file data.jsonl, clients [0, 4]', ['ok'])
    decoded = NodeRegistration.from_payload(Payload.from_record_dict(registration.to_payload().to_record_dict()))
    assert decoded == registration


@pytest.mark.parametrize(
    'config, expected',
    [
        ({'dataset': '/d/site.jsonl', 'client-id': 3}, NodeData(dataset='/d/site.jsonl', site_client=3)),
        ({'clients': '0, 4', 'worker-socket': '/s'}, NodeData(clients=(0, 4))),
        ({'clients': 2, 'dataset': '/d/all.jsonl'}, NodeData(dataset='/d/all.jsonl', clients=(2,))),
        ({'partition-id': 1, 'num-partitions': 4}, NodeData(partition=(1, 4))),
    ],
)
def test_node_config_forms(config, expected):
    assert NodeData.from_node_config(config) == expected


@pytest.mark.parametrize(
    'config, message',
    [
        ({'client-id': 3}, 'needs the site'),
        ({'dataset': 'a.jsonl', 'client-id': 1, 'clients': '1'}, 'not both'),
        ({'clients': 'one'}, 'expected client ids'),
        ({'worker-socket': '/s'}, 'names no data'),
    ],
)
def test_node_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        NodeData.from_node_config(config)


def test_hosted_clients():
    assert hosted_by(1, 4, 10) == [1, 5, 9]
    assert NodeData(partition=(1, 4)).hosted_clients(10) == [1, 5, 9]
    assert NodeData(clients=(4, 0, 4)).hosted_clients(5) == [0, 4]
    with pytest.raises(ValueError, match=r'\[7\] outside \[0, 5\)'):
        NodeData(clients=(0, 7)).hosted_clients(5)


def test_site_file_rows_belong_to_the_site_client(tmp_path):
    site = tmp_path / 'site.jsonl'
    site.write_text('{"client_id": 3}\n{"a": 1}\n\n{"client_id": 5}\n{"client_number": 3}\n', encoding='utf-8')
    data = NodeData(dataset=str(site), site_client=3)
    with pytest.raises(ValueError, match=rf'{site}:4 \(client_id=5\)') as error:
        data.check_site_file()
    assert f'{site}:1' not in str(error.value) and f'{site}:5' not in str(error.value)
    site.write_text('{"client_id": 3}\n{"a": 1}\n', encoding='utf-8')
    data.check_site_file()
    assert data.partitioner(default=None)(['r1', 'r2', 'r3'], 10, 'iid', 42) == [3, 3, 3]
    assert NodeData(clients=(1,)).partitioner(default='run partitioner') == 'run partitioner'


def test_replace_flags_and_run_config():
    argv = ['--dataset', 'a.jsonl', 'b.jsonl#10', '--max_steps', '-1', '--output_dir=out', '--resume', 'true']
    assert replace_flags(argv, {'--dataset': ['c.jsonl'], '--output_dir': ['run'], '--resume': None}) == [
        '--max_steps', '-1', '--dataset', 'c.jsonl', '--output_dir', 'run',
    ]  # fmt: skip
    quoted = ['--model', '/models/my model', '--system', 'say "hi"']
    assert swift_argv({'swift-args': run_config_value(quoted)}) == quoted
    with pytest.raises(ValueError, match='--run-config'):
        swift_argv({'swift-args': ''})


def test_directory_errors_name_the_nodes_and_clients():
    a = NodeRegistration({0: (8, 8), 2: (8, 8)}, 'a', [])
    b = NodeRegistration({1: (8, 8), 2: (8, 8)}, 'b', [])
    with pytest.raises(ValueError, match='client 2 is hosted by two SuperNodes, 11 and 12'):
        NodeDirectory.from_registrations({11: a, 12: b}, required=[0])
    directory = NodeDirectory.from_registrations({11: a}, required=[0, 2])
    assert directory.node_of(2) == 11 and directory.client_sizes(0) == (8, 8)
    with pytest.raises(ValueError, match=r'clients \[1, 3\] will be sampled but no SuperNode hosts them'):
        NodeDirectory.from_registrations({11: a}, required=[0, 1, 3])


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'fed_engine': 'flower', 'supernodes': 5, 'client_num': 4}, 'some SuperNodes would host no client'),
        ({'fed_engine': 'flower', 'fed_alg': 'central'}, 'data stays on the nodes'),
        ({'fed_engine': 'simulation', 'fed_eval_every': 1}, 'needs --val_dataset'),
        ({'fed_engine': 'flower', 'client_timeout': 0}, 'client_timeout must be > 0'),
        ({'fed_engine': 'simulation', 'client_resources': 'num_cpu=2'}, 'expected num_cpus=N,num_gpus=G'),
        ({'fed_engine': 'simulation', 'client_resources': 'num_gpus=-1'}, 'num_gpus must be >= 0'),
    ],
)
def test_engine_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FederatedArguments(**kwargs)._check_federated()


def test_client_resources():
    args = FederatedArguments(fed_engine='simulation', client_resources='num_cpus=2, num_gpus=0.5')
    assert args.parsed_client_resources() == {'num_cpus': 2, 'num_gpus': 0.5}
    assert FederatedArguments().parsed_client_resources() == {'num_cpus': 1, 'num_gpus': 0.0}


# ------------------------------------------------------------------------------------------ transport over a grid


class InMemoryGrid:
    """Just enough of flwr's Grid for the transport: each node answers through ``answers[node](message)`` (None:
    never); replies become visible ``delay`` seconds after the push."""

    def __init__(self, answers, delay=0.0):
        from flwr.supercore.task_identity import TaskIdentity

        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1  # flwr's process identity
        self.answers, self.delay, self.replies, self.pushed = answers, delay, {}, []

    def push_messages(self, messages):
        from flwr.supercore.task_identity import TaskIdentity

        ids = []
        for message in messages:
            message.metadata.__dict__['_message_id'] = message.object_id
            self.pushed.append(message)
            answer = self.answers[message.metadata.dst_node_id]
            TaskIdentity.node_id = message.metadata.dst_node_id
            reply = None if answer is None else answer(message)
            TaskIdentity.node_id = 0
            if reply is not None:
                self.replies[message.object_id] = (time.monotonic() + self.delay, reply)
            ids.append(message.object_id)
        return ids

    def pull_messages(self, message_ids):
        now = time.monotonic()
        return [self.replies[i][1] for i in message_ids if i in self.replies and self.replies[i][0] <= now]


def trained_by_node(message):
    from flwr.app import Message

    task, wire = decode_task(Payload.from_record_dict(message.content))
    state = {k: t + 1 for k, t in task.global_state.items()}
    result = ClientResult(client=task.client, samples=8, episodes=8, steps=2, loss=1.0)
    return Message(encode_update(ClientUpdate(result, state), wire).to_record_dict(), reply_to=message)


def error_reply(code, reason):
    def answer(message):
        from flwr.app import Error, Message

        return Message(Error(code=code, reason=reason), reply_to=message)

    return answer


def make_transport(grid, wire='float32', timeout=1.0):
    from swift_ext.federated.transport.flower import FlowerTransport

    registrations = {node: NodeRegistration({node - 10: (8, 8)}, 'test', []) for node in (10, 11, 12, 13)}
    directory = NodeDirectory.from_registrations(registrations, required=[])
    return FlowerTransport(grid, directory, RUN, wire, client_timeout=timeout, poll_interval=0.02)


def test_transport_streams_replies_and_names_failures_and_timeouts():
    from flwr.common.constant import ErrorCode

    from swift_ext.federated.transport.flower import message_nbytes

    grid = InMemoryGrid(
        {
            10: trained_by_node,
            11: error_reply(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, 'RuntimeError: out of memory'),
            12: None,  # never answers
            13: error_reply(ErrorCode.NODE_UNAVAILABLE, 'node went away'),
        }
    )
    x = {'w': torch.randn(128, 64)}
    tasks = [ClientTask(round_number=1, client=k, seed_offset=k, global_state=x) for k in range(4)]
    start = time.monotonic()
    updates = list(make_transport(grid, timeout=0.5).train(tasks))
    assert time.monotonic() - start >= 0.5
    by_client = {update.result.client: update for update in updates}
    assert [update.result.client for update in updates][-1] == 2  # the timed-out client comes last
    assert by_client[0].result.status == OK and torch.equal(by_client[0].state['w'], x['w'] + 1)
    assert by_client[1].result.status == FAILED and 'out of memory' in by_client[1].result.detail[0]
    assert by_client[2].result.status == TIMEOUT and 'within 0.5s' in by_client[2].result.detail[0]
    assert by_client[3].result.status == TIMEOUT and 'node went away' in by_client[3].result.detail[0]
    assert by_client[2].result.samples == 8 and by_client[2].state is None  # n_k as registered
    # Bytes: the serialized message (x in float32 plus records and metadata), and the serialized reply.
    sent = message_nbytes(grid.pushed[0])
    assert by_client[0].result.bytes_sent == sent and sent > x['w'].numel() * 4
    assert by_client[0].result.bytes_received > x['w'].numel() * 4
    assert by_client[2].result.bytes_received == 0


def test_transport_in_bfloat16_halves_what_travels():
    x = {'w': torch.randn(256, 256)}
    task = ClientTask(round_number=1, client=0, seed_offset=0, global_state=x)
    full = list(make_transport(InMemoryGrid({10: trained_by_node})).train([task]))[0]
    half = list(make_transport(InMemoryGrid({10: trained_by_node}), wire='bfloat16').train([task]))[0]
    tensor_bytes = x['w'].numel() * 4
    assert tensor_bytes < full.result.bytes_sent < tensor_bytes * 1.05
    assert tensor_bytes / 2 < half.result.bytes_sent < tensor_bytes / 2 * 1.05
    assert torch.equal(half.state['w'], (x['w'].to(torch.bfloat16).float() + 1).to(torch.bfloat16).float())


# ------------------------------------------------------------------------------------ certificates and the app


def test_certificates_serve_tls_on_loopback_and_node_keys_load(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

    from swift_ext.flower.certificates import write_credentials

    credentials = write_credentials(str(tmp_path / 'certs'), ['127.0.0.1', 'localhost'], supernodes=2)
    for private in (credentials.server_key, *credentials.supernode_keys, str(tmp_path / 'certs' / 'ca.key')):
        assert os.stat(private).st_mode & 0o077 == 0, f'{private} is readable by others'
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(credentials.server_certificate, credentials.server_key)
    listener = socket.create_server(('127.0.0.1', 0))
    port = listener.getsockname()[1]

    def serve():
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(tls.recv(5))

    thread = threading.Thread(target=serve)
    thread.start()
    client_context = ssl.create_default_context(cafile=credentials.ca_certificate)  # verifies chain and host name
    with socket.create_connection(('127.0.0.1', port)) as raw:
        with client_context.wrap_socket(raw, server_hostname='127.0.0.1') as tls:
            tls.sendall(b'hello')
            assert tls.recv(5) == b'hello'
    thread.join()
    listener.close()
    for index in range(2):
        private = load_ssh_private_key(open(credentials.supernode_keys[index], 'rb').read(), None)
        public = load_ssh_public_key(open(credentials.supernode_public_key(index), 'rb').read())
        assert isinstance(private.curve, ec.SECP384R1) and private.public_key() == public


def test_swift_ext_certs_writes_a_federation_s_credentials(tmp_path, capsys):
    from swift_ext.cli.ext import main

    assert main(['certs', '--output', str(tmp_path / 'c'), '--hosts', '10.0.0.5', 'superlink.example.org',
                 '--supernodes', '2']) == 0  # fmt: skip
    names = sorted(os.listdir(tmp_path / 'c'))
    assert names == sorted(['ca.crt', 'ca.key', 'server.pem', 'server.key', 'supernode_0', 'supernode_0.pub',
                            'supernode_1', 'supernode_1.pub'])  # fmt: skip
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate((tmp_path / 'c' / 'server.pem').read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ['10.0.0.5']
    assert names.get_values_for_type(x509.DNSName) == ['superlink.example.org']
    assert 'register it' in capsys.readouterr().out


def test_the_repository_declares_the_launcher_s_flower_app():
    import tomllib

    from swift_ext.flower import launcher

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'pyproject.toml'), 'rb') as f:
        declared = tomllib.load(f)['tool']['flwr']['app']
    generated = tomllib.loads(launcher.app_pyproject())['tool']['flwr']['app']
    assert declared['components'] == generated['components']
    assert declared['config'] == generated['config'] == {'swift-args': ''}


def test_client_app_process_stays_light():
    code = (
        'import sys, swift_ext.flower.client_app; '
        'print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "swift", "transformers"})))'
    )
    output = subprocess.run([sys.executable, '-c', 'import json; ' + code], capture_output=True, text=True, check=True)
    assert json.loads(output.stdout) == []
