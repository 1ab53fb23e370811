"""The in-process transport: the round's clients train one after another on a :class:`ClientNode` in this process.

Only the node's model is shared with the server; each update is yielded as soon as its client finishes and let go
before the next client trains, so the server holds no client state while a client trains.
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
            del update  # the round loop has folded it into its mean: not alive while the next client trains
