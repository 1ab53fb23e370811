"""swift_ext's Flower ClientApp: hands each ``query`` / ``train`` message to the node's training and returns the reply.

- Deployment (node config ``worker-socket='/path/worker.sock'``): the message's records go to the node's persistent
  training worker (:mod:`.node_worker`) over that Unix socket. Flower starts a fresh ClientApp process per message,
  so this module imports neither torch nor the model code: it only moves records.
- Simulation engine (no ``worker-socket``): Flower's Ray actors are long-lived processes, so the node is built in the
  actor itself on its first message and kept in this process (one build per actor).

With ``--secure_aggregation secaggplus`` Flower's ``secaggplus_mod`` wraps the train handler (for train messages
that carry its stage record, :mod:`.secagg_client`): the handler's reply becomes the client's vector, which leaves the
node only masked.

The handlers stay thin; what the records mean is :mod:`.protocol`, where clients train is
``swift_ext.federated.client_node``.
"""

import socket
from typing import Any, Dict, Mapping, Optional

from flwr.app import Context, Message, MessageType
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from .payload import Payload, receive_frame, send_frame
from .secagg_client import SECAGG_TASK, fitres_content, optional_secaggplus_mod

app = ClientApp(mods=[optional_secaggplus_mod])

_in_process_service = None  # the simulation engine's per-actor node (see the module docstring)


@app.query()
def query(message: Message, context: Context) -> Message:
    """Registration: which clients this node hosts, their n_k and episodes, and its dataset check."""
    return _answer(MessageType.QUERY, message, context)


@app.train()
def train(message: Message, context: Context) -> Message:
    """One client's round."""
    return _answer(MessageType.TRAIN, message, context)


def _answer(message_type: str, message: Message, context: Context) -> Message:
    payload = Payload.from_record_dict(message.content)
    payload.configs.pop(RECORD_KEY_CONFIGS, None)  # SecAgg+'s own stage record, read by its mod
    run_config, node_config = dict(context.run_config), dict(context.node_config)
    socket_path: Optional[str] = node_config.get('worker-socket')
    if socket_path:
        reply = ask_worker(str(socket_path), message_type, run_config, node_config, payload)
    else:
        reply = _service().handle(message_type, run_config, node_config, payload)
    if SECAGG_TASK in payload.configs:  # secure aggregation: SecAgg+'s mod masks the vector, clears the arrays
        return Message(fitres_content(payload, reply), reply_to=message)
    return Message(reply.to_record_dict(), reply_to=message)


def ask_worker(
    socket_path: str,
    message_type: str,
    run_config: Mapping[str, Any],
    node_config: Mapping[str, Any],
    payload: Payload,
) -> Payload:
    """Send one request to the node's training worker and wait for its reply; raises ``RuntimeError`` with the
    worker's error (Flower returns it to the server as the message's error)."""
    header: Dict[str, Any] = {'type': message_type, 'run-config': run_config, 'node-config': node_config}
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            connection.connect(socket_path)
        except OSError as error:
            raise RuntimeError(
                f'no swift_ext training worker answers at {socket_path} ({error}). Start it on this node with: '
                f'python -m swift_ext.flower.node_worker --socket {socket_path} --state-dir DIR'
            ) from None
        send_frame(connection, header, payload)
        reply_header, reply = receive_frame(connection)
    finally:
        connection.close()
    if 'error' in reply_header:
        raise RuntimeError(f'node training worker: {reply_header["error"]}')
    return reply


def _service():
    global _in_process_service
    if _in_process_service is None:
        from .ms_swift_ray import run_ms_swift_locally

        run_ms_swift_locally()  # Ray is Flower's here (see .ms_swift_ray)
        from .node_service import NodeService

        _in_process_service = NodeService(state_dir=None)
    return _in_process_service
