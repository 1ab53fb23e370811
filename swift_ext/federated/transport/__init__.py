"""How the round loop reaches its clients: one interface, two transports side by side.

- :mod:`.base`: :class:`ClientTask` (server -> client), :class:`ClientUpdate` (client -> server) and the
  :class:`ClientTransport` protocol the round loop talks to.
- :mod:`.in_process`: the clients train one after another in this process, on the model the server also holds.
- :mod:`.flower`: the clients train on Flower SuperNodes (deployment or simulation engine); imports flwr lazily.

Both transports hand each task to the same :class:`swift_ext.federated.client_node.ClientNode`, so local training
exists once.
"""

from .base import ClientTask, ClientTransport, ClientUpdate, SummedUpdate, SummingTransport, task_nbytes, update_nbytes
from .in_process import InProcessTransport

__all__ = [
    'ClientTask',
    'ClientTransport',
    'ClientUpdate',
    'InProcessTransport',
    'SummedUpdate',
    'SummingTransport',
    'task_nbytes',
    'update_nbytes',
]
