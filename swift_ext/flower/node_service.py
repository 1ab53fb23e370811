"""A node's side of a Flower run: answers ``query`` and ``train`` payloads with one
:class:`~swift_ext.federated.client_node.ClientNode` per run, built on the first message and kept.

The node runs the same set-up as the in-process path on its own data (``FedSwiftSft.prepare_node``: dataset check,
preprocessing, encoding, model and tuner) and trains through ``ClientNode.train``. Its arguments are the run's
swift arguments with only the node's own parts replaced: its output directory (``{state_dir}/{run key}``, or the
server's run directory for a node without a state directory, i.e. on the server's machine), its data
(:mod:`.node_data`), and no resume, validation set or evaluation (those are the server's). SCAFFOLD's c_i live under
that directory's ``client_state/``, so a resumed server (same run key) finds them.

The built node is keyed by (swift arguments, data files, run key): in the simulation engine one process serves many
virtual nodes that differ only in the clients they host, and builds once.
"""

import gc
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from swift.utils import get_logger

from data_tools.partition import assign_client_ids

from ..federated.client import FAILED, ClientResult
from ..federated.client_node import ClientNode
from ..federated.pipeline import CLIENT_STATE_DIR, FedSwiftSft
from ..federated.transport.base import ClientUpdate
from .node_data import NodeData
from .payload import Payload
from .protocol import NodeRegistration, RunIdentity, decode_task, encode_update
from .run_config import replace_flags, swift_argv

logger = get_logger()

BuildKey = Tuple[str, Tuple[Optional[str], Optional[int]], str]


class BuiltNode:
    """A node's model and rows for one run: the ClientNode plus what registration reports."""

    def __init__(self, node: ClientNode, client_num: int, dataset_checks: List[str]) -> None:
        self.node = node
        self.client_num = client_num
        self.dataset_checks = dataset_checks

    def registration(self, data: NodeData) -> NodeRegistration:
        clients = {
            client: (len(self.node.data.rows(client)), self.node.data.episodes(client))
            for client in data.hosted_clients(self.client_num)
        }
        return NodeRegistration(clients, data.describe(), self.dataset_checks)


class NodeService:
    """Builds and keeps one node (the latest run's) and turns message payloads into reply payloads.

    ``builds`` counts model builds per run key (the tests assert one per node and run).
    """

    def __init__(self, state_dir: Optional[str] = None) -> None:
        self.state_dir = state_dir
        self.builds: Dict[str, int] = {}
        self.tasks: Dict[str, int] = {}
        self._key: Optional[BuildKey] = None
        self._built: Optional[BuiltNode] = None

    @property
    def node(self) -> Optional[ClientNode]:
        """The node built for the latest run (None before the first message)."""
        return None if self._built is None else self._built.node

    def handle(
        self, message_type: str, run_config: Mapping[str, Any], node_config: Mapping[str, Any], payload: Payload
    ) -> Payload:
        """The reply payload to a ``query`` or ``train`` message's payload."""
        run = RunIdentity.from_payload(payload)
        data = NodeData.from_node_config(node_config)
        built = self._node(swift_argv(run_config), data, run)
        if message_type == 'query':
            return built.registration(data).to_payload()
        if message_type != 'train':
            raise ValueError(f'unexpected message type {message_type!r} (swift_ext sends query and train)')
        task, wire_dtype = decode_task(payload)
        self.tasks[run.key] = self.tasks.get(run.key, 0) + 1
        if task.client not in data.hosted_clients(built.client_num):
            result = ClientResult(client=task.client, status=FAILED)
            result.detail = [f'client {task.client} is not hosted by this node ({data.describe()})']
            return encode_update(ClientUpdate(result), wire_dtype)
        return encode_update(built.node.train(task), wire_dtype)

    def node_dir(self, run: RunIdentity) -> str:
        return os.path.join(self.state_dir, run.key) if self.state_dir else run.dir

    def _node(self, argv: List[str], data: NodeData, run: RunIdentity) -> BuiltNode:
        key = (' '.join(argv), data.build_key, run.key)
        if key != self._key:
            self._built = self._key = None
            gc.collect()  # the previous run's model goes before the next one loads
            self._built = self._build(argv, data, run)
            self._key = key
            self.builds[run.key] = self.builds.get(run.key, 0) + 1
        return self._built

    def _build(self, argv: List[str], data: NodeData, run: RunIdentity) -> BuiltNode:
        start = time.perf_counter()
        node_dir = self.node_dir(run)
        data.check_site_file()
        overrides = {
            '--output_dir': [node_dir],
            '--add_version': ['false'],
            '--resume': None,
            '--val_dataset': None,
            '--fed_eval_every': ['0'],
            '--fed_eval_generation_rows': ['0'],
        }
        if data.dataset is not None:
            overrides['--dataset'] = [data.dataset]
        pipeline = FedSwiftSft(replace_flags(argv, overrides))
        client_data = pipeline.prepare_node(data.partitioner(assign_client_ids))
        node = pipeline.build_client_node(client_data, os.path.join(node_dir, CLIENT_STATE_DIR))
        logger.info(
            f'[swift_ext] node built for run {run.key} in {time.perf_counter() - start:.1f}s: {data.describe()}, '
            f'files in {node_dir}'
        )
        return BuiltNode(node, pipeline.args.client_num, pipeline.dataset_checks)
