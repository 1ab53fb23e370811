"""Registration, at the start of a Flower run: which SuperNode hosts which client.

The server waits for ``--supernodes`` SuperNodes to connect, sends each a ``query`` (which builds the node's model
and data, runs its dataset check), and maps client id -> node id from the replies. It stops with an error naming the
nodes when a client is hosted twice, when a client the run will sample has no node, when a node does not answer
within ``--client_timeout`` or answers with an error (e.g. its data failed the dataset check).
"""

import time
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from flwr.app import Message, MessageType
from flwr.serverapp import Grid
from swift.utils import get_logger

from .payload import Payload
from .protocol import NodeRegistration, RunIdentity, encode_query

logger = get_logger()

POLL_SECONDS = 0.5


@dataclass
class NodeDirectory:
    """What the nodes registered: node id -> registration, and client id -> node id."""

    nodes: Dict[int, NodeRegistration]
    client_nodes: Dict[int, int]

    def node_of(self, client: int) -> int:
        return self.client_nodes[client]

    def client_sizes(self, client: int) -> Tuple[int, Optional[int]]:
        """(n_k, episodes) of ``client`` as its node registered them."""
        return self.nodes[self.client_nodes[client]].clients[client]

    @classmethod
    def from_registrations(cls, nodes: Dict[int, NodeRegistration], required: Iterable[int]) -> 'NodeDirectory':
        """Map clients to nodes; raise ``ValueError`` for a client hosted twice or a required client without node."""
        client_nodes: Dict[int, int] = {}
        for node_id, registration in sorted(nodes.items()):
            for client in registration.clients:
                if client in client_nodes:
                    raise ValueError(
                        f'client {client} is hosted by two SuperNodes, {client_nodes[client]} and {node_id}. Give each '
                        'client to exactly one node (node config client-id=K or clients=...).'
                    )
                client_nodes[client] = node_id
        missing = sorted(set(required) - set(client_nodes))
        if missing:
            raise ValueError(
                f'clients {missing} will be sampled but no SuperNode hosts them (hosted: {sorted(client_nodes)}). '
                'Start SuperNodes for them or lower --client_num.'
            )
        return cls(nodes, client_nodes)


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> list:
    """The ids of the connected SuperNodes once at least ``count`` are connected; ``TimeoutError`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        node_ids = sorted(grid.get_node_ids())
        if len(node_ids) >= count:
            return node_ids
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f'only {len(node_ids)} of --supernodes {count} SuperNodes connected within --client_timeout '
                f'{timeout:g}s.'
            )
        time.sleep(POLL_SECONDS)


def register_nodes(grid: Grid, run: RunIdentity, count: int, timeout: float, required: Iterable[int]) -> NodeDirectory:
    """Query every connected SuperNode (see the module docstring) and log the client -> node map."""
    node_ids = wait_for_nodes(grid, count, timeout)
    messages = [Message(encode_query(run).to_record_dict(), node, MessageType.QUERY, ttl=timeout) for node in node_ids]
    pending = dict(zip(grid.push_messages(messages), node_ids))
    nodes: Dict[int, NodeRegistration] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for reply in grid.pull_messages(list(pending)):
            node_id = pending.pop(reply.metadata.reply_to_message_id)
            if reply.has_error():
                raise RuntimeError(f'SuperNode {node_id} could not register: {reply.error.reason}')
            nodes[node_id] = NodeRegistration.from_payload(Payload.from_record_dict(reply.content))
        time.sleep(POLL_SECONDS if pending else 0)
    if pending:
        raise TimeoutError(
            f'SuperNodes {sorted(pending.values())} did not register within --client_timeout {timeout:g}s '
            '(registration builds their model and data).'
        )
    directory = NodeDirectory.from_registrations(nodes, required)
    for node_id, registration in sorted(nodes.items()):
        sizes = ', '.join(f'{client}: n_k={samples}' for client, (samples, _) in sorted(registration.clients.items()))
        checks = '; '.join(registration.dataset_checks) or 'not run'
        logger.info(
            f'[swift_ext] SuperNode {node_id} hosts clients {{{sizes}}} ({registration.data}); dataset check: {checks}'
        )
    return directory
