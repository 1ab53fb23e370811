"""The Flower transport: each task becomes a ``train`` Message to the SuperNode that hosts the client, sent through
Flower's Grid (deployment or simulation engine); replies stream back into the round as they arrive.

- All of a round's messages are pushed at once (``Grid.push_messages``), so nodes train in parallel; replies are
  pulled every ``poll_interval`` seconds and each is yielded as soon as it is in, so the round loop folds updates
  into its running mean one at a time.
- A client whose reply has not arrived ``client_timeout`` seconds after the push yields an update with status
  ``timeout`` (its late reply is ignored); an error reply yields ``failed`` (the ClientApp or worker raised) or
  ``timeout`` (Flower reports the node or message unavailable), with Flower's reason in ``detail``.
- ``bytes_sent`` / ``bytes_received`` are the serialized sizes of every object of the message and of its reply (what
  the node pulls and pushes: arrays, records, metadata), in ``wire_dtype``.

The transport never filters: the round loop validates every update. This module imports flwr; the package's
``__init__`` does not import it, so in-process runs never load Flower.
"""

import time
from typing import Dict, Iterator, Sequence

from flwr.app import Message, MessageType
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from swift.utils import get_logger

from ...flower.payload import Payload
from ...flower.protocol import RunIdentity, decode_update, encode_task
from ...flower.registration import NodeDirectory
from ..client import FAILED, TIMEOUT, ClientResult
from .base import ClientTask, ClientUpdate

logger = get_logger()

UNREACHABLE = {ErrorCode.MESSAGE_UNAVAILABLE, ErrorCode.REPLY_MESSAGE_UNAVAILABLE, ErrorCode.NODE_UNAVAILABLE}


def message_nbytes(message: Message) -> int:
    """Serialized bytes of ``message`` and everything it carries (Flower sends each object as its deflated form)."""
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values())


class FlowerTransport:
    """:class:`~swift_ext.federated.transport.base.ClientTransport` over a Flower ``Grid``."""

    def __init__(
        self,
        grid: Grid,
        directory: NodeDirectory,
        run: RunIdentity,
        wire_dtype: str,
        client_timeout: float,
        poll_interval: float = 0.1,
    ) -> None:
        self.grid = grid
        self.directory = directory
        self.run = run
        self.wire_dtype = wire_dtype
        self.client_timeout = client_timeout
        self.poll_interval = poll_interval

    def train(self, tasks: Sequence[ClientTask]) -> Iterator[ClientUpdate]:
        messages = [self._message(task) for task in tasks]
        sent = {id(message): message_nbytes(message) for message in messages}
        ids = list(self.grid.push_messages(messages))
        pending: Dict[str, ClientTask] = dict(zip(ids, tasks))
        sent_bytes = {message_id: sent[id(message)] for message_id, message in zip(ids, messages)}
        deadline = time.monotonic() + self.client_timeout
        while pending:
            for reply in self.grid.pull_messages(list(pending)):
                message_id = reply.metadata.reply_to_message_id
                task = pending.pop(message_id, None)
                if task is None:
                    continue
                update = self._decode(reply, task)
                update.result.bytes_sent = sent_bytes[message_id]
                update.result.bytes_received = message_nbytes(reply)
                yield update
            if pending and time.monotonic() >= deadline:
                break
            if pending:
                time.sleep(self.poll_interval)
        for task in pending.values():
            node = self.directory.node_of(task.client)
            logger.error(
                f'[swift_ext] round {task.round_number}: client {task.client} (SuperNode {node}) did not answer within '
                f'--client_timeout {self.client_timeout:g}s; the round goes on without it.'
            )
            yield self._unanswered(task, TIMEOUT, f'no reply from SuperNode {node} within {self.client_timeout:g}s')

    def _message(self, task: ClientTask) -> Message:
        payload = encode_task(task, self.run, self.wire_dtype)
        return Message(
            payload.to_record_dict(),
            self.directory.node_of(task.client),
            MessageType.TRAIN,
            group_id=str(task.round_number),
            ttl=self.client_timeout,
        )

    def _decode(self, reply: Message, task: ClientTask) -> ClientUpdate:
        node = reply.metadata.src_node_id
        if reply.has_error():
            status = TIMEOUT if reply.error.code in UNREACHABLE else FAILED
            return self._unanswered(task, status, f'SuperNode {node}: {reply.error.reason}')
        try:
            return decode_update(Payload.from_record_dict(reply.content), task.client)
        except (KeyError, TypeError, ValueError) as error:
            return self._unanswered(task, FAILED, f'SuperNode {node} sent an unreadable reply: {error!r}')

    def _unanswered(self, task: ClientTask, status: str, detail: str) -> ClientUpdate:
        """An update without a state: the client's n_k and episodes as registered, ``status`` and ``detail``."""
        samples, episodes = self.directory.client_sizes(task.client)
        result = ClientResult(task.client, samples=samples, episodes=episodes, status=status, detail=[detail])
        return ClientUpdate(result)


__all__ = ['FlowerTransport', 'message_nbytes']
