"""The in-process transport: the round's clients train one after another on a :class:`ClientNode` in this process.

Only the node's model is shared with the server; each update is yielded as soon as its client finishes, so the
round loop holds one client state at a time.
"""

from typing import TYPE_CHECKING, Iterator, Sequence

from .base import ClientTask, ClientUpdate, task_nbytes, update_nbytes

if TYPE_CHECKING:
    from ..client_node import ClientNode


class InProcessTransport:
    """Hands each task to ``node`` in order; bytes are the tensor bytes a remote client would exchange."""

    def __init__(self, node: 'ClientNode') -> None:
        self.node = node

    def train(self, tasks: Sequence[ClientTask]) -> Iterator[ClientUpdate]:
        for task in tasks:
            update = self.node.train(task)
            update.result.bytes_sent = task_nbytes(task)
            update.result.bytes_received = update_nbytes(update)
            yield update
