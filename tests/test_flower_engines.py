"""The Flower engines end to end on the tiny model, with real processes on 127.0.0.1 (TLS, SuperNode authentication,
ephemeral ports): same adapters as in-process, one model build per node, the faults of issue 9, and no process left
behind. Every test has a hard time limit (SIGALRM) and tears its federation down whatever happens.

Expected adapters come from the in-process engine (``--fed_engine in_process``, the default) with the same seed and
command line: the Flower engines must reproduce them to 1e-5 (they do exactly on one machine). On the deployment
engine, fedavg and fedadam run in one federation; scaffold runs through ``swift sft --fed_engine flower`` with the
server killed after round 1 and resumed, which shows its equality, and its c_i kept on the nodes, across a restart."""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Dict, List

import psutil
import pytest
import torch

from swift_ext.arguments.parsing import parse_fed_sft_argv
from swift_ext.federated.transport.base import ClientTask
from swift_ext.flower.launcher import LocalFederation, free_port
from swift_ext.flower.server_app import run_key
from swift_ext.template import register_checked_templates
from tests.conftest import (
    BIN_DIR,
    OFFLINE_ENV,
    as_argv,
    load_adapter,
    read_jsonl,
    run_cli,
    run_dir,
    tiny_lora_options,
)

ALGORITHMS = ('fedavg', 'fedadam', 'scaffold')
DEPLOYED_IN_ONE_FEDERATION = ('fedavg', 'fedadam')  # scaffold: the server-kill test below
NODES = CLIENTS = 4
ROUNDS = 3
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@contextmanager
def hard_limit(seconds: int):
    """Fail the test (and so leave every ``with`` block, tearing federations down) after ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f'test exceeded its hard limit of {seconds}s')

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def command(model_dir, dataset, output_dir, fed_alg, *extra) -> List[str]:
    options = {
        **tiny_lora_options(model_dir, dataset, str(output_dir)),
        'fed_alg': fed_alg, 'round': ROUNDS, 'client_num': CLIENTS, 'client_sample': 2, 'save_every': ROUNDS,
    }  # fmt: skip
    return [*as_argv(options), *extra]


def flower_command(model_dir, dataset, output_dir, fed_alg, engine='flower', *extra) -> List[str]:
    return command(
        model_dir, dataset, output_dir, fed_alg,
        '--fed_engine', engine, '--supernodes', str(NODES), '--client_timeout', '900', *extra,
    )  # fmt: skip


def parsed(argv: List[str]):
    register_checked_templates()
    return parse_fed_sft_argv(argv)


def final_adapter(output_dir) -> Dict[str, torch.Tensor]:
    return load_adapter(os.path.join(run_dir(str(output_dir)), f'global_lora_{ROUNDS}'))


def assert_same_adapter(actual, expected, what):
    assert actual.keys() == expected.keys()
    worst = max((actual[k] - expected[k]).abs().max().item() for k in expected)
    assert worst <= 1e-5, f'{what}: max |difference| to the in-process adapter is {worst}'


def client_rows(run) -> List[dict]:
    return [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'client']


@pytest.fixture(scope='module')
def in_process(tiny_model_dir, sample_jsonl, tmp_path_factory):
    """fed_alg -> (final adapter, fed_log client rows) of the in-process engine, run by ``swift-fed sft`` in a fresh
    process as every Flower process is: a process's first Qwen-VL processor fixes its image resolution from the
    environment of that moment (ms-swift), so a reference trained inside this test process would depend on which
    tests ran in it before (e.g. one that set MAX_PIXELS)."""
    references = {}
    for fed_alg in ALGORITHMS:
        output = tmp_path_factory.mktemp(f'in_process_{fed_alg}')
        run_cli(['swift-fed', 'sft', *command(tiny_model_dir, sample_jsonl, output, fed_alg)])
        references[fed_alg] = final_adapter(output), client_rows(run_dir(str(output)))
    return references


def test_deployment_matches_in_process_and_loads_each_model_once(in_process, tiny_model_dir, sample_jsonl, tmp_path):
    # Submitted as a Flower user would from this repository: flwr run <repository> <connection> --run-config ...
    federation = LocalFederation(
        'flower', NODES, CLIENTS, log_dir=str(tmp_path / 'federation'), app_dir=os.path.dirname(TESTS_DIR)
    )
    with hard_limit(2400), federation:
        assert len(federation.marked_processes()) >= 1 + 2 * NODES  # SuperLink, workers, SuperNodes (+ SuperExecs)
        for fed_alg in DEPLOYED_IN_ONE_FEDERATION:
            output = tmp_path / fed_alg
            argv = flower_command(tiny_model_dir, sample_jsonl, output, fed_alg)
            federation.run_command(parsed(argv), argv)
            run = run_dir(str(output))
            assert_same_adapter(final_adapter(output), in_process[fed_alg][0], f'flower deployment, {fed_alg}')
            rows = client_rows(run)
            expected_rows = in_process[fed_alg][1]
            assert [(r['round'], r['client'], r['status']) for r in rows] == [
                (r['round'], r['client'], 'ok') for r in expected_rows
            ]
            assert all(r['loss'] == pytest.approx(e['loss'], abs=1e-6) for r, e in zip(rows, expected_rows))
            # What travelled: the serialized reply, i.e. the float32 tensors (what in-process counts) plus records.
            # (Requests may be smaller: identical chunks, like LoRA B's zeros in round 1, travel once.)
            assert all(r['bytes_received'] > e['bytes_received'] for r, e in zip(rows, expected_rows))
            assert all(r['bytes_sent'] > 0 for r in rows)
            key = run_key(run)
            for node in range(NODES):
                status = json.load(open(os.path.join(federation.log_dir, f'node_{node}', 'worker_status.json')))
                served = sum(1 for row in rows if row['client'] == node)  # node i hosts client i (4 nodes, 4 clients)
                assert status['builds'][key] == 1, f'node {node} built its model {status["builds"][key]} times'
                assert status['tasks'].get(key, 0) == served
    assert federation.marked_processes() == []


def test_simulation_engine_matches_in_process(in_process, tiny_model_dir, sample_jsonl, tmp_path):
    federation = LocalFederation(
        'simulation', NODES, CLIENTS, log_dir=str(tmp_path / 'federation'),
        client_resources={'num_cpus': 1, 'num_gpus': 0.0},
    )  # fmt: skip
    with hard_limit(2400), federation:
        for fed_alg in ALGORITHMS:
            output = tmp_path / fed_alg
            argv = flower_command(tiny_model_dir, sample_jsonl, output, fed_alg, 'simulation')
            federation.run_command(parsed(argv), argv)
            assert_same_adapter(final_adapter(output), in_process[fed_alg][0], f'flower simulation, {fed_alg}')
            if fed_alg == 'scaffold':  # simulated nodes share the server's machine: c_i where in-process keeps them
                assert glob.glob(os.path.join(run_dir(str(output)), 'client_state', 'client_*', 'round_*.safetensors'))
    assert federation.marked_processes() == []


def test_a_site_file_trains_its_client_like_the_shared_file(tiny_model_dir, sample_jsonl, tmp_path):
    """The node side without Flower processes: a node given its site's own file (node config dataset + client-id)
    registers that client with the file's rows and returns the same update as a node reading the shared file."""
    from swift_ext.federated.state import get_trainable_state
    from swift_ext.flower.node_service import NodeService
    from swift_ext.flower.protocol import NodeRegistration, RunIdentity, decode_update, encode_query, encode_task
    from swift_ext.flower.run_config import run_config_value

    rows = [row for row in read_jsonl(sample_jsonl) if row['client_id'] == 3]
    site = tmp_path / 'site3.jsonl'
    site.write_text(''.join(json.dumps({k: v for k, v in row.items() if k != 'client_id'}) + '\n' for row in rows))
    # ms-swift shuffles the loaded rows (--dataset_shuffle), so client 3's rows come in another order out of the
    # 32-row shared file than out of its own 8-row file; in file order both nodes must train identically.
    argv = command(tiny_model_dir, sample_jsonl, tmp_path / 'unused', 'fedavg', '--dataset_shuffle', 'false')
    run_config = {'swift-args': run_config_value(argv)}
    run = RunIdentity('v0-test-0000', str(tmp_path / 'server_run'))
    with hard_limit(1200):
        nodes = {}
        for name, node_config in (('site', {'dataset': str(site), 'client-id': 3}), ('shared', {'clients': '3'})):
            service = NodeService(str(tmp_path / name))
            registration = NodeRegistration.from_payload(
                service.handle('query', run_config, node_config, encode_query(run))
            )
            nodes[name] = service, node_config, registration
        x = get_trainable_state(nodes['site'][0].node.model)
        task = encode_task(ClientTask(round_number=1, client=3, seed_offset=0, global_state=x), run, 'float32')
        updates = {
            name: decode_update(service.handle('train', run_config, node_config, task), client=3)
            for name, (service, node_config, _) in nodes.items()
        }
        assert nodes['site'][2].clients == nodes['shared'][2].clients == {3: (len(rows), len(rows))}
        assert all(service.builds == {run.key: 1} for service, _, _ in nodes.values())
        assert updates['site'].result.status == updates['shared'].result.status == 'ok'
        assert all(torch.equal(updates['site'].state[k], updates['shared'].state[k]) for k in x)
        assert not all(torch.equal(updates['site'].state[k], x[k]) for k in x)  # it trained

        wrong = tmp_path / 'wrong.jsonl'
        labelled = [{**row, 'client_id': 1 if i == 1 else 3} for i, row in enumerate(rows)]
        wrong.write_text(''.join(json.dumps(row) + '\n' for row in labelled))
        with pytest.raises(ValueError, match=rf'{wrong}:2 \(client_id=1\)'):
            NodeService(str(tmp_path / 'wrong')).handle(
                'query', run_config, {'dataset': str(wrong), 'client-id': 3}, encode_query(run)
            )


class FederationWithBrokenNode(LocalFederation):
    """Node 3's worker returns NaN / wrongly shaped / Inf states (tests/flower_fake_worker.py)."""

    def worker_command(self, index: int) -> List[str]:
        if index == 3:
            return [sys.executable, os.path.join(TESTS_DIR, 'flower_fake_worker.py'), '--socket', self.socket_path(3)]
        return super().worker_command(index)


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.2)


def test_faults_killed_node_broken_node_and_unregistered_node(tiny_model_dir, sample_jsonl, tmp_path):
    federation = FederationWithBrokenNode('flower', NODES, CLIENTS, log_dir=str(tmp_path / 'federation'))
    output = tmp_path / 'run'
    # Every client trains every round, for 4 rounds: the killed node's client must come back. (Its key stays active
    # on the SuperLink until the heartbeat expires, about a minute, so the restarted node rejoins within 2 rounds.)
    argv = command(
        tiny_model_dir, sample_jsonl, output, 'fedavg',
        '--round', '4', '--client_sample', str(CLIENTS), '--fed_engine', 'flower', '--supernodes', str(NODES),
        '--client_timeout', '150',
    )  # fmt: skip
    failures = []
    with hard_limit(2400), federation:
        runner = threading.Thread(target=lambda: _capture(failures, federation.run_command, parsed(argv), argv))
        runner.start()
        node_log = os.path.join(federation.log_dir, 'node_0', 'supernode.log')
        wait_for(lambda: 'Receiving: train message' in open(node_log).read(), 1200, "node 0's first train message")
        supernode = next(p for p in federation.processes if p.name == 'SuperNode 0')
        supernode.process.kill()  # mid-round: the message is in, the reply never leaves
        intruder_code, intruder_log = _unregistered_supernode(federation, tmp_path)
        runner.join()
        assert not failures, failures
    assert federation.marked_processes() == []  # none left, although a SuperNode crashed and was restarted

    assert intruder_code != 0 and 'Failed to activate SuperNode' in intruder_log, intruder_log[-3000:]
    run = run_dir(str(output))
    rows = {(row['round'], row['client']): row for row in client_rows(run)}
    assert rows[1, 0]['status'] == 'timeout' and rows[1, 0]['detail']
    assert {rows[r, 0]['status'] for r in (2, 3)} <= {'timeout', 'ok'}
    assert rows[4, 0]['status'] == 'ok'  # the restarted node rejoined
    assert all(rows[r, c]['status'] == 'ok' for r in (1, 2, 3, 4) for c in (1, 2))
    first_tensor = sorted(load_adapter(os.path.join(run, 'global_lora_4')))[0]  # PEFT's file drops '.default'
    assert [rows[r, 3]['status'] for r in (1, 2, 3, 4)] == ['excluded'] * 4
    for r in (1, 3, 4):  # NaN, then Inf: the non-finite tensor is named
        assert [name.replace('.default', '') for name in rows[r, 3]['detail']] == [first_tensor]
    assert 'shape (513,)' in rows[2, 3]['detail'][0] and first_tensor in rows[2, 3]['detail'][0].replace('.default', '')
    rounds = [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'round']
    assert rounds[0]['aggregated'] == [1, 2] and rounds[3]['aggregated'] == [0, 1, 2]
    assert all(torch.isfinite(t).all() for t in load_adapter(os.path.join(run, 'global_lora_4')).values())


def _capture(failures, function, *args):
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 -- reported by the test thread
        failures.append(repr(error))


def _unregistered_supernode(federation: LocalFederation, tmp_path):
    """(exit code, log) of a SuperNode with a key the SuperLink never registered: it must be refused."""
    from swift_ext.flower.certificates import write_supernode_key

    key = write_supernode_key(str(tmp_path / 'intruder_key'))
    log_path = tmp_path / 'intruder.log'
    with open(log_path, 'wb') as log:  # a file, not a pipe: the node's own children would hold a pipe open
        intruder = subprocess.Popen(
            [
                str(BIN_DIR / 'flower-supernode'),
                '--root-certificates', federation.credentials.ca_certificate,
                '--superlink', f'127.0.0.1:{federation.port}', '--auth-supernode-private-key', key,
                '--node-config', "clients='0'", '--max-retries', '1', '--host', '127.0.0.1', '--port', str(free_port()),
            ],
            stdout=log, stderr=subprocess.STDOUT, env=federation.env,
        )  # fmt: skip
    return intruder.wait(timeout=300), log_path.read_text()


def test_server_killed_then_ctrl_c_then_resume_gives_the_same_adapter(
    in_process, tiny_model_dir, sample_jsonl, tmp_path
):
    argv = ['sft', *flower_command(tiny_model_dir, sample_jsonl, tmp_path / 'out', 'scaffold')]
    env = {**os.environ, **OFFLINE_ENV}
    with hard_limit(2400):
        log_path = tmp_path / 'launcher.log'
        launcher = subprocess.Popen(
            [str(BIN_DIR / 'swift-fed'), *argv], env=env, stdout=open(log_path, 'wb'), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        seen = {}
        try:
            checkpoint = os.path.join(str(tmp_path / 'out'), 'v*', 'fed_checkpoint', 'round_1')
            while not glob.glob(checkpoint):
                assert launcher.poll() is None, log_path.read_text()[-5000:]
                _record_descendants(launcher.pid, seen)
                time.sleep(0.5)
            _record_descendants(launcher.pid, seen)
            scratch = {os.path.dirname(a) for p in seen.values() for a in _cmdline(p) if a.endswith('node_0.sock')}
            servers = [p for p in seen.values() if 'flwr-serverapp' in ' '.join(_cmdline(p))]
            assert servers, 'no flwr-serverapp process found'
            for server in servers:
                server.kill()  # the server process dies after round 1's checkpoint
            os.killpg(launcher.pid, signal.SIGINT)  # and the user presses Ctrl-C (the terminal signals the group)
            launcher.wait(timeout=300)
        finally:
            if launcher.poll() is None:
                launcher.kill()
        assert launcher.returncode != 0
        # Every process the command started exits (they may take a few seconds to shut down).
        deadline = time.monotonic() + 120
        while any(_alive(p) for p in seen.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = [p for p in seen.values() if _alive(p)]
        assert alive == [], f'processes left behind: {[(p.pid, _cmdline(p)) for p in alive]}'

        run = run_dir(str(tmp_path / 'out'))
        result = subprocess.run(
            [str(BIN_DIR / 'swift-fed'), *argv, '--resume', 'true'], env=env, capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    # The killed launcher could not remove its keys and sockets; the next launcher did.
    assert scratch and not any(os.path.exists(path) for path in scratch)
    assert_same_adapter(final_adapter(tmp_path / 'out'), in_process['scaffold'][0], 'resumed flower run, scaffold')
    rounds = [row['round'] for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'round']
    assert rounds == [1, 2, 3]
    # c_i stay on the nodes (the launcher's node state directories, per run key), never in the server's run.
    for node in {row['client'] for row in client_rows(run)}:  # node i hosts client i (4 nodes, 4 clients)
        assert glob.glob(os.path.join(run, 'flower', f'node_{node}', run_key(run), 'client_state', '*', '*'))
    assert not os.path.exists(os.path.join(run, 'client_state'))


def _record_descendants(pid: int, seen: Dict[tuple, psutil.Process]) -> None:
    try:
        for child in psutil.Process(pid).children(recursive=True):
            seen.setdefault((child.pid, child.create_time()), child)
    except psutil.Error:
        pass


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(process: psutil.Process) -> List[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []
