"""What a SuperNode trains on, from its node config (``flower-supernode --node-config "..."``).

Three forms, one per deployment style:

``dataset='/data/site3.jsonl' client-id=3`` -- a site's own file
    Every row of the file is client 3's. A ``client_id`` (or ``client_number``) column is allowed and must say 3 on
    every row; any other value stops the node with an error naming ``file:line``.
``clients='0,4'`` (optionally with ``dataset='/data/all.jsonl'``) -- a shared file
    The node reads the run's ``--dataset`` (or its own copy of the whole file given as ``dataset``), assigns clients
    exactly as the in-process run does (the client column, else the run's ``--partition`` over the whole file), and
    trains only the listed clients. The loopback launcher uses this form, so its results equal the in-process run's.
``partition-id=1 num-partitions=4`` -- Flower's simulation engine sets these
    A shared file whose clients are ``k`` with ``k % num-partitions == partition-id`` (the launcher's rule too).

Nothing else in the node config is about data (``worker-socket`` names the node's training worker).
"""

import json
import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

CLIENT_COLUMNS = ('client_id', 'client_number')


def hosted_by(node_index: int, nodes: int, client_num: int) -> List[int]:
    """The clients node ``node_index`` of ``nodes`` hosts: ``k`` with ``k % nodes == node_index``."""
    return [client for client in range(client_num) if client % nodes == node_index]


def _client_list(value: Any) -> Tuple[int, ...]:
    items = [value] if isinstance(value, int) else str(value).replace(' ', '').split(',')
    try:
        clients = tuple(int(item) for item in items if item != '')
    except ValueError:
        raise ValueError(f"node config clients={value!r}: expected client ids like clients='0,4'.") from None
    if not clients:
        raise ValueError("node config clients='': list at least one client id, e.g. clients='0,4'.")
    return clients


@dataclass(frozen=True)
class NodeData:
    """A node's data: ``dataset`` (None: the run's ``--dataset``), and either ``site_client`` (a site's own file),
    ``clients`` (a shared file) or ``partition`` (partition-id, num-partitions: the simulation engine)."""

    dataset: Optional[str] = None
    site_client: Optional[int] = None
    clients: Optional[Tuple[int, ...]] = None
    partition: Optional[Tuple[int, int]] = None

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> 'NodeData':
        dataset = node_config.get('dataset')
        dataset = None if dataset in (None, '') else str(dataset)
        has_site, has_clients = 'client-id' in node_config, 'clients' in node_config
        has_partition = 'partition-id' in node_config and 'num-partitions' in node_config
        if has_site and has_clients:
            raise ValueError('node config: give either client-id (a site file) or clients (a shared file), not both.')
        if has_site:
            if dataset is None:
                raise ValueError("node config client-id needs the site's file: dataset='/path/site.jsonl'.")
            return cls(dataset=dataset, site_client=int(node_config['client-id']))
        if has_clients:
            return cls(dataset=dataset, clients=_client_list(node_config['clients']))
        if has_partition:
            partition = (int(node_config['partition-id']), int(node_config['num-partitions']))
            return cls(dataset=dataset, partition=partition)
        raise ValueError(
            "node config names no data: use dataset='/path/site.jsonl' client-id=K (a site's own file) or "
            "clients='0,4' (clients of the run's --dataset). See swift_ext/flower/node_data.py."
        )

    @property
    def build_key(self) -> Tuple[Optional[str], Optional[int]]:
        """What the node's loaded rows depend on (the hosted clients only select among them)."""
        return self.dataset, self.site_client

    def hosted_clients(self, client_num: int) -> List[int]:
        """The clients this node trains; every id must be in [0, client_num)."""
        if self.site_client is not None:
            clients = [self.site_client]
        elif self.clients is not None:
            clients = sorted(set(self.clients))
        else:
            index, count = self.partition
            clients = hosted_by(index, count, client_num)
        bad = [client for client in clients if not 0 <= client < client_num]
        if bad:
            raise ValueError(f'node config names clients {bad} outside [0, {client_num}) (--client_num {client_num}).')
        return clients

    def partitioner(self, default):
        """Clients of rows without a client column: all ``site_client`` for a site file, else ``default`` (the run's
        partition, as in-process)."""
        if self.site_client is None:
            return default
        client = self.site_client
        return lambda dataset, client_num, partition, seed: [client] * len(dataset)

    def check_site_file(self) -> None:
        """A site file must be a local JSON-lines file whose client column, if any, is ``site_client`` on every row;
        raises ``ValueError`` naming each disagreeing ``file:line`` (10, then a count)."""
        if self.site_client is None:
            return
        if not (self.dataset.endswith('.jsonl') and os.path.isfile(self.dataset)):
            raise ValueError(f"node config dataset={self.dataset!r}: a site's file must be a local .jsonl file.")
        bad = []
        with open(self.dataset, encoding='utf-8') as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the dataset check reports unreadable lines
                for column in CLIENT_COLUMNS:
                    if isinstance(row, dict) and column in row and row[column] != self.site_client:
                        bad.append(f'{self.dataset}:{number} ({column}={row[column]!r})')
        if bad:
            more = f' and {len(bad) - 10} more' if len(bad) > 10 else ''
            raise ValueError(
                f'node config client-id={self.site_client}, but rows of its file name another client: '
                f'{", ".join(bad[:10])}{more}. Remove the column or fix the rows.'
            )

    def describe(self) -> str:
        source = self.dataset or "the run's --dataset"
        if self.site_client is not None:
            return f'site file {source} (client {self.site_client})'
        if self.clients is not None:
            return f'shared file {source}, clients {list(self.clients)}'
        return f'shared file {source}, partition {self.partition[0]} of {self.partition[1]}'
