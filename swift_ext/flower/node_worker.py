"""The node's training worker: a long-lived process that holds the model, template and encoded rows, so the model is
loaded once per node and run, not once per message.

Flower 1.41's deployment runtime starts a fresh ``flwr-clientapp`` process for every message. swift_ext's ClientApp
therefore only forwards each message's records over a Unix socket (``worker-socket`` in the node config) to this
worker, which answers through :class:`~swift_ext.flower.node_service.NodeService` (frames: JSON + safetensors, see
:mod:`.payload`; nothing is unpickled). Requests are served one at a time, as a SuperNode sends them.

    python -m swift_ext.flower.node_worker --socket /run/site3/worker.sock --state-dir /data/site3/swift_state

The state directory keeps the node's files per run (``{state-dir}/{run key}/``: SCAFFOLD's ``client_state/``, the
dataset check's reports) and ``worker_status.json`` ({pid, builds and tasks per run key}, rewritten after every
request). The socket file is created with mode 0600.
"""

import argparse
import json
import os
import signal
import socket
import traceback
from typing import Optional

from swift.utils import get_logger

from .node_service import NodeService
from .payload import Payload, receive_frame, send_frame

logger = get_logger()

STATUS_FILE = 'worker_status.json'


class NodeWorker:
    """Serves one Unix socket with a :class:`NodeService` until stopped."""

    def __init__(self, socket_path: str, state_dir: str) -> None:
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.service = NodeService(state_dir)
        self._server: Optional[socket.socket] = None

    def serve(self) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        if os.path.exists(self.socket_path):
            os.remove(self.socket_path)  # a previous worker's socket (it is gone: it would hold the lock otherwise)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            server.bind(self.socket_path)
        finally:
            os.umask(old_umask)
        server.listen(8)
        self._server = server
        self._write_status()
        logger.info(f'[swift_ext] node worker {os.getpid()} listening on {self.socket_path} (state: {self.state_dir})')
        try:
            while True:
                connection, _ = server.accept()
                with connection:
                    self._answer(connection)
                self._write_status()
        finally:
            server.close()
            if os.path.exists(self.socket_path):
                os.remove(self.socket_path)

    def _answer(self, connection: socket.socket) -> None:
        try:
            header, payload = receive_frame(connection)
        except (ConnectionError, ValueError) as error:
            logger.warning(f'[swift_ext] node worker: unreadable request ({error}); ignored')
            return
        try:
            reply_header, reply = (
                {},
                self.service.handle(header['type'], header['run-config'], header['node-config'], payload),
            )
        except Exception as error:  # noqa: BLE001 -- reported to the server through the ClientApp
            logger.error(f'[swift_ext] node worker: {header.get("type")} failed:\n{traceback.format_exc()}')
            reply_header, reply = {'error': f'{type(error).__name__}: {error}'}, Payload()
        try:
            send_frame(connection, reply_header, reply)
        except OSError as error:  # the ClientApp is gone (its SuperNode was stopped): the next request goes on
            logger.warning(f'[swift_ext] node worker: the reply could not be delivered ({error})')

    def _write_status(self) -> None:
        path = os.path.join(self.state_dir, STATUS_FILE)
        status = {'pid': os.getpid(), 'builds': self.service.builds, 'tasks': self.service.tasks}
        with open(f'{path}.tmp', 'w', encoding='utf-8') as f:
            json.dump(status, f)
        os.replace(f'{path}.tmp', path)


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(0)  # unwinds ``serve``, which removes the socket file


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='swift_ext node training worker (see swift_ext/flower/node_worker.py)')
    parser.add_argument('--socket', required=True, help='Unix socket path (= worker-socket in the node config)')
    parser.add_argument('--state-dir', required=True, help="directory for the node's files (per run key)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    NodeWorker(os.path.abspath(args.socket), os.path.abspath(args.state_dir)).serve()


if __name__ == '__main__':
    main()
