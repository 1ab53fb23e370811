"""``--fed_engine flower|simulation``: run a federated ``swift sft`` command line as a Flower run on this machine.

:class:`LocalFederation` starts, on 127.0.0.1 only and on free (ephemeral) ports:

- ``flower``: a SuperLink with TLS and SuperNode authentication (``--enable-supernode-auth``; every SuperNode's key
  is registered with ``flwr supernode register`` first, so an unregistered node is refused), ``--supernodes``
  training workers (:mod:`.node_worker`, each loads the model once; spread over the visible GPUs, worker ``i`` on
  GPU ``i mod count``) and as many SuperNodes, node ``i`` hosting
  clients ``k % supernodes == i`` of the run's ``--dataset`` (node config ``clients=...``, so results equal the
  in-process run's). Runtime dependency installation is off everywhere (nothing is fetched).
- ``simulation``: a SuperLink in simulation mode (TLS on); Flower's Ray backend runs ``--supernodes`` virtual nodes
  with ``--client_resources`` each.

:meth:`LocalFederation.submit` runs the command line with ``flwr run`` (the swift arguments in the run config, see
:mod:`.run_config`), streams the run's log, and raises when the run does not complete. Leaving the ``with`` block
stops everything -- on success, on an exception, on Ctrl-C or SIGTERM: every process the federation started carries
``SWIFT_EXT_FEDERATION=<id>`` in its environment, and teardown terminates each process that has it (SIGTERM, then
SIGKILL after a grace period), wherever it was re-parented. On Linux each direct child also gets SIGTERM should the
launcher itself be killed. A SuperNode or worker that exits while the run goes on is restarted (a killed node
rejoins later rounds; its registered key keeps its node id).

Files: TLS certificates, node keys, ``FLWR_HOME`` and sockets live in a private temporary directory removed at the
end (never in the output; if the launcher itself was killed, the next launcher removes it); logs and node state in
``{run_dir}/flower/`` (``superlink.log``, ``node_{i}/{supernode,worker}.log``, ``node_{i}/{run key}/client_state``).
"""

import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import psutil
import tomli_w
from swift.utils import get_logger

from .certificates import Credentials, write_credentials
from .node_data import hosted_by
from .run_config import SWIFT_ARGS_KEY, replace_flags, run_config_value

logger = get_logger()

MARKER = 'SWIFT_EXT_FEDERATION'
CONNECTION = 'swift-ext-local'
APP_NAME = 'swift-ext-run'
SERVER_APP = 'swift_ext.flower.server_app:app'
CLIENT_APP = 'swift_ext.flower.client_app:app'
START_TIMEOUT = 300.0  # seconds for a SuperLink to answer and for workers to import their libraries
STOP_GRACE = 15.0  # seconds between SIGTERM and SIGKILL at teardown
SCRATCH_PREFIX = 'swift-ext-flower-'
OWNER_FILE = 'owner.json'  # the launcher that owns a scratch directory: {pid, started}
MAX_RESTARTS = 12  # with back-off (1, 2, 4, 8, then every 10 s): a node is retried for about 100 s
MAX_RESTART_DELAY = 10.0


class FederationRunError(RuntimeError):
    """The Flower run did not complete."""


def free_port() -> int:
    """A port that is free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def app_pyproject() -> str:
    """The ``pyproject.toml`` of the Flower app ``flwr run`` submits. The app carries no code (its FAB holds only
    this file): the ServerApp and ClientApp are imported from the installed swift_ext, the same code the training
    workers run. The repository's own ``pyproject.toml`` declares the same components for ``flwr run .``."""
    return tomli_w.dumps(
        {
            'project': {
                'name': APP_NAME,
                'version': '1.0.0',
                'description': 'swift_ext federated run',
                'license': 'Apache-2.0',
                'dependencies': ['flwr==1.41.*'],
            },
            'tool': {
                'flwr': {
                    'app': {
                        'publisher': 'swift-ext',
                        'fab-include': ['pyproject.toml'],
                        'components': {'serverapp': SERVER_APP, 'clientapp': CLIENT_APP},
                        'config': {SWIFT_ARGS_KEY: ''},
                    }
                }
            },
        }
    )


def remove_orphaned_scratch_dirs() -> None:
    """Remove the scratch directories (keys, sockets) of launchers that were killed before they could: a launcher
    killed with SIGKILL (e.g. by a parent on Ctrl-C) cannot clean up, so the next one does."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f'{SCRATCH_PREFIX}*')):
        try:
            with open(os.path.join(path, OWNER_FILE), encoding='utf-8') as f:
                owner = json.load(f)
            alive = psutil.Process(owner['pid']).create_time() == owner['started']
        except FileNotFoundError:
            continue  # being created right now
        except (psutil.Error, OSError, ValueError, KeyError):
            alive = False
        if not alive:
            shutil.rmtree(path, ignore_errors=True)


def visible_gpus() -> List[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries; the training workers are spread over them
    (worker i gets GPU i mod count)."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [gpu.strip() for gpu in visible.split(',') if gpu.strip() and gpu.strip() != '-1']
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def _die_with_parent() -> None:
    """In a child before exec (Linux): receive SIGTERM when the process that started it dies."""
    if sys.platform.startswith('linux'):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ManagedProcess:
    """One process the federation runs, restarted by the watchdog when ``restart`` is set and it exits."""

    name: str
    command: List[str]
    log_path: str
    restart: bool = False
    extra_env: Dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    restart_at: Optional[float] = None  # monotonic time of the pending restart
    process: Optional[subprocess.Popen] = None

    def start(self, env: Dict[str, str], cwd: str) -> None:
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**env, **self.extra_env}, cwd=cwd,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip

    def exited(self) -> Optional[int]:
        return None if self.process is None else self.process.poll()


@dataclass
class LocalFederation:
    """SuperLink, SuperNodes and training workers (``engine='flower'``) or a simulation SuperLink
    (``engine='simulation'``) on 127.0.0.1; see the module docstring. Use as a context manager."""

    engine: str
    supernodes: int
    client_num: int
    log_dir: str
    client_resources: Dict[str, float] = field(default_factory=lambda: {'num_cpus': 1, 'num_gpus': 0.0})
    cwd: str = field(default_factory=os.getcwd)
    app_dir: Optional[str] = None  # the Flower app flwr run submits; None: a generated one (see app_pyproject)
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    processes: List[ManagedProcess] = field(default_factory=list)

    # --------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> 'LocalFederation':
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        self._stopping = threading.Event()
        remove_orphaned_scratch_dirs()
        self.scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)  # mode 0700: keys, FLWR_HOME, sockets
        with open(os.path.join(self.scratch, OWNER_FILE), 'w', encoding='utf-8') as f:
            json.dump({'pid': os.getpid(), 'started': psutil.Process().create_time()}, f)
        self.port = free_port()
        self.credentials: Credentials = write_credentials(
            os.path.join(self.scratch, 'certs'), ['127.0.0.1', 'localhost'], self.supernodes
        )
        self.env = self._environment()
        self._write_flower_config()
        superlink = self._add('superlink', self.superlink_command(), os.path.join(self.log_dir, 'superlink.log'))
        if self.engine == 'flower':
            gpus = visible_gpus()
            workers = [
                self._add(
                    f'worker {i}', self.worker_command(i), self._node_path(i, 'worker.log'), restart=True,
                    extra_env={'CUDA_VISIBLE_DEVICES': gpus[i % len(gpus)]} if gpus else {},
                )
                for i in range(self.supernodes)
            ]  # fmt: skip
        self._wait(self._superlink_ready, f'the SuperLink on 127.0.0.1:{self.port}', [superlink])
        if self.engine == 'flower':
            self._register_supernode_keys()
            for i in range(self.supernodes):
                log_path = self._node_path(i, 'supernode.log')
                self._add(f'SuperNode {i}', self.supernode_command(i), log_path, restart=True)
            self._wait(self._workers_ready, f'{self.supernodes} training workers', workers)
        self._watchdog = threading.Thread(target=self._watch, name='swift-ext-federation-watchdog', daemon=True)
        self._watchdog.start()
        logger.info(f'[swift_ext] Flower {self.engine}: SuperLink 127.0.0.1:{self.port}, logs in {self.log_dir}')

    def stop(self) -> None:
        """Terminate every process carrying this federation's marker (SIGTERM, then SIGKILL), remove the scratch
        directory. Safe to call more than once."""
        stopping = getattr(self, '_stopping', None)
        if stopping is not None:
            stopping.set()
        watchdog = getattr(self, '_watchdog', None)
        if watchdog is not None:
            watchdog.join()  # no restart after this point
        survivors = self.marked_processes()
        for process in survivors:
            _signal(process, signal.SIGTERM)
        _, alive = psutil.wait_procs(survivors, timeout=STOP_GRACE)
        for process in alive:
            _signal(process, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=STOP_GRACE)
        for managed in self.processes:
            if managed.process is not None and managed.process.poll() is None:
                managed.process.wait(timeout=STOP_GRACE)
        late = self.marked_processes()  # started by a dying parent while we were stopping
        for process in late:
            _signal(process, signal.SIGKILL)
        psutil.wait_procs(late, timeout=STOP_GRACE)
        if getattr(self, 'scratch', None):
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def marked_processes(self) -> List[psutil.Process]:
        """Every live process started by this federation (directly or not): its environment carries the marker."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.pid != os.getpid() and process.environ().get(MARKER) == self.marker:
                    found.append(process)
            except (psutil.Error, OSError):
                continue
        return found

    # ------------------------------------------------------------------------------------------------ commands

    def superlink_command(self) -> List[str]:
        command = [
            self._bin('flower-superlink'),
            '--ssl-ca-certfile', self.credentials.ca_certificate,
            '--ssl-certfile', self.credentials.server_certificate,
            '--ssl-keyfile', self.credentials.server_key,
            '--disable-runtime-dependency-installation',
            '--host', '127.0.0.1', '--port', str(self.port),
        ]  # fmt: skip
        return command + (['--simulation'] if self.engine == 'simulation' else ['--enable-supernode-auth'])

    def worker_command(self, index: int) -> List[str]:
        """Node ``index``'s training worker (tests replace it to simulate a misbehaving node)."""
        return [
            sys.executable, '-m', 'swift_ext.flower.node_worker',
            '--socket', self.socket_path(index), '--state-dir', self._node_path(index, ''),
        ]  # fmt: skip

    def supernode_command(self, index: int) -> List[str]:
        clients = ','.join(str(client) for client in hosted_by(index, self.supernodes, self.client_num))
        return [
            self._bin('flower-supernode'),
            '--root-certificates', self.credentials.ca_certificate,
            '--superlink', f'127.0.0.1:{self.port}',
            '--auth-supernode-private-key', self.credentials.supernode_keys[index],
            '--node-config', f"worker-socket='{self.socket_path(index)}' clients='{clients}'",
            '--host', '127.0.0.1', '--port', str(free_port()),
            '--ssl-certfile', self.credentials.server_certificate,
            '--ssl-keyfile', self.credentials.server_key,
            '--ssl-ca-certfile', self.credentials.ca_certificate,
        ]  # fmt: skip

    def socket_path(self, index: int) -> str:
        return os.path.join(self.scratch, f'node_{index}.sock')

    def flwr(self, *arguments: str) -> List[str]:
        """A ``flwr`` CLI command against this federation's SuperLink connection."""
        return [self._bin('flwr'), *arguments]

    # ---------------------------------------------------------------------------------------------------- runs

    def run_command(self, args, argv: List[str]) -> Dict[str, Any]:
        """Run a ``swift sft`` command line (``args``: its parsed arguments, which fixed the run directory) and
        return the run summary the server appended to ``logging.jsonl``. The ServerApp gets ``argv`` with that run
        directory, so it writes where an in-process run would."""
        run_dir = args.output_dir
        resume = [run_dir] if args.resume else None
        self.submit(replace_flags(argv, {'--output_dir': [run_dir], '--add_version': ['false'], '--resume': resume}))
        with open(os.path.join(run_dir, 'logging.jsonl'), encoding='utf-8') as f:
            return json.loads(f.read().strip().splitlines()[-1])

    def submit(self, argv: List[str]) -> str:
        """Run ``argv`` (swift sft arguments) as a Flower run, streaming its log to stdout; returns the run id.
        Raises :class:`FederationRunError` when the run does not finish as completed."""
        run_config = os.path.join(self.scratch, f'run_{uuid.uuid4().hex[:8]}.toml')
        with open(run_config, 'w', encoding='utf-8') as f:
            f.write(tomli_w.dumps({SWIFT_ARGS_KEY: run_config_value(argv)}))
        command = self.flwr('run', self.app_dir, CONNECTION, '--stream', '--run-config', run_config)
        if self.engine == 'simulation':
            resources = self.client_resources
            command += [
                '--federation-config',
                f'num-supernodes={self.supernodes} client-resources-num-cpus={int(resources["num_cpus"])} '
                f'client-resources-num-gpus={float(resources["num_gpus"])}',
            ]
        run_id = None
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, text=True,
            start_new_session=True, preexec_fn=_die_with_parent,
        ) as stream:  # fmt: skip
            for line in stream.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                match = re.search(r'Successfully started run (\d+)', line)
                run_id = match.group(1) if match and run_id is None else run_id
        if run_id is None:
            raise FederationRunError(f'flwr run did not start a run (exit code {stream.returncode}); see above.')
        status, details = self.run_status(run_id)
        if not status.endswith('completed'):
            raise FederationRunError(f'Flower run {run_id} ended {status}: {details}. Logs: {self.log_dir}')
        return run_id

    def run_status(self, run_id: str) -> tuple:
        """(status, details) of a run as ``flwr ls`` reports it (e.g. 'finished:completed')."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            listing = subprocess.run(
                self.flwr('ls', CONNECTION, '--run-id', run_id, '--format', 'json'),
                capture_output=True, text=True, env=self.env, cwd=self.cwd,
            )  # fmt: skip
            runs = _json_tail(listing.stdout).get('runs', [])
            if runs and runs[0]['status'].startswith('finished') or time.monotonic() > deadline:
                return (runs[0]['status'], runs[0].get('status-details', '')) if runs else ('unknown', listing.stdout)
            time.sleep(1.0)

    # ----------------------------------------------------------------------------------------------- internals

    def _bin(self, name: str) -> str:
        return os.path.join(os.path.dirname(sys.executable), name)

    def _node_path(self, index: int, name: str) -> str:
        return os.path.join(self.log_dir, f'node_{index}', name)

    def _environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                MARKER: self.marker,
                'FLWR_HOME': os.path.join(self.scratch, 'flwr_home'),
                'FLWR_TELEMETRY_ENABLED': '0',  # nothing leaves the machine
                'FLWR_DISABLE_UPDATE_CHECK': '1',
                'FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION': '1',
                'FLWR_SUPEREXEC_TASK_POLL_INTERVAL': '0.1',  # start a node's ClientApp within 0.1 s of a message
                'PYTHONUNBUFFERED': '1',
                'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''),
            }
        )
        return env

    def _write_flower_config(self) -> None:
        home = self.env['FLWR_HOME']
        os.makedirs(home, exist_ok=True)
        connection = {'address': f'127.0.0.1:{self.port}', 'root-certificates': self.credentials.ca_certificate}
        with open(os.path.join(home, 'config.toml'), 'w', encoding='utf-8') as f:
            f.write(tomli_w.dumps({'superlink': {'default': CONNECTION, CONNECTION: connection}}))
        if self.app_dir is None:
            self.app_dir = os.path.join(self.scratch, APP_NAME)
            os.makedirs(self.app_dir)
            with open(os.path.join(self.app_dir, 'pyproject.toml'), 'w', encoding='utf-8') as f:
                f.write(app_pyproject())

    def _add(
        self, name: str, command: List[str], log_path: str, restart: bool = False, extra_env=None
    ) -> ManagedProcess:
        managed = ManagedProcess(name, command, log_path, restart, extra_env or {})
        managed.start(self.env, self.cwd)
        self.processes.append(managed)
        return managed

    def _wait(self, ready: Callable[[], bool], what: str, watched: List[ManagedProcess]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            for managed in watched:
                if managed.exited() is not None:
                    raise RuntimeError(
                        f'{managed.name} exited with code {managed.exited()} while starting; see {managed.log_path}'
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(f'{what} not ready after {START_TIMEOUT:g}s; see the logs in {self.log_dir}')
            time.sleep(0.2)

    def _superlink_ready(self) -> bool:
        context = ssl.create_default_context(cafile=self.credentials.ca_certificate)
        try:
            with urllib.request.urlopen(f'https://127.0.0.1:{self.port}/health', context=context, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def _workers_ready(self) -> bool:
        return all(os.path.exists(self.socket_path(i)) for i in range(self.supernodes))

    def _register_supernode_keys(self) -> None:
        """``flwr supernode register`` for every node key (in parallel); only these nodes may connect."""
        registrations = [
            subprocess.Popen(
                self.flwr('supernode', 'register', self.credentials.supernode_public_key(i), CONNECTION),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                text=True,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            for i in range(self.supernodes)
        ]
        for i, registration in enumerate(registrations):
            output, _ = registration.communicate(timeout=START_TIMEOUT)
            if registration.returncode != 0:
                raise RuntimeError(f'flwr supernode register failed for node {i}:\n{output}')

    def _watch(self) -> None:
        """Restart a SuperNode or worker that exits while the federation runs, after 1, 2, 4, 8, then 10 s (at most
        MAX_RESTARTS times): a killed SuperNode's key stays active on the SuperLink until its heartbeat expires
        (about a minute), and its reactivation is refused until then."""
        while not self._stopping.wait(0.5):
            for managed in self.processes:
                code = managed.exited()
                if code is None or not managed.restart or managed.restarts >= MAX_RESTARTS:
                    continue
                if managed.restart_at is None:
                    managed.restart_at = time.monotonic() + min(2.0**managed.restarts, MAX_RESTART_DELAY)
                    logger.warning(
                        f'[swift_ext] {managed.name} exited with code {code}; restarting it in '
                        f'{managed.restart_at - time.monotonic():.0f}s ({managed.restarts + 1} of {MAX_RESTARTS}). '
                        f'Log: {managed.log_path}'
                    )
                elif time.monotonic() >= managed.restart_at and not self._stopping.is_set():
                    managed.restarts += 1
                    managed.restart_at = None
                    managed.start(self.env, self.cwd)


def _signal(process: psutil.Process, signum: int) -> None:
    try:
        process.send_signal(signum)
    except psutil.Error:
        pass


def _json_tail(text: str) -> Dict[str, Any]:
    """The JSON object printed last by a ``flwr ... --format json`` command (it may print notices before)."""
    start = text.find('{')
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


def launch(args, argv: List[str]) -> Dict[str, Any]:
    """``swift sft ... --fed_engine flower|simulation``: start a local federation, run ``argv`` on it, stop it (also
    on Ctrl-C or SIGTERM). Returns the run summary."""
    from swift.utils import get_dist_setting

    if get_dist_setting()[2] > 1:  # world size
        raise ValueError(
            f'--fed_engine {args.fed_engine} starts its own processes: run it once (not under torchrun / '
            'NPROC_PER_NODE); the training workers are spread over the visible GPUs.'
        )
    federation = LocalFederation(
        engine=args.fed_engine,
        supernodes=args.supernodes,
        client_num=args.client_num,
        log_dir=os.path.join(args.output_dir, 'flower'),
        client_resources=args.parsed_client_resources(),
    )
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with federation:
            return federation.run_command(args, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f'signal {signum}')
