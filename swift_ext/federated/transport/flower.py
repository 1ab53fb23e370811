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

With secure aggregation (``secure``: :class:`~swift_ext.flower.secagg_server.SecAggSettings`) the transport is
``sums_only``: :meth:`FlowerTransport.train_summed` runs the round through Flower's SecAgg+ (each sampled client on
its own SuperNode) and returns the survivors' weighted sum as one ``SummedUpdate``; ``train`` is not used then.

The transport never filters: the round loop validates every update. This module imports flwr; the package's
``__init__`` does not import it, so in-process runs never load Flower.
"""

import time
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from flwr.app import Message, MessageType
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from swift.utils import get_logger

from ...flower.payload import Payload
from ...flower.protocol import RunIdentity, decode_update, encode_task
from ...flower.registration import NodeDirectory
from ...flower.secagg_client import SECAGG_TASK, clear_reply
from ...flower.secagg_server import (
    SecAggSettings,
    SecureRound,
    check_modulus,
    mean_error_bound,
    message_nbytes,
    secure_round,
)
from ..client import EXCLUDED, FAILED, OK, TIMEOUT, ClientResult
from ..state import State
from .base import ClientTask, ClientUpdate, SummedUpdate

logger = get_logger()

UNREACHABLE = {ErrorCode.MESSAGE_UNAVAILABLE, ErrorCode.REPLY_MESSAGE_UNAVAILABLE, ErrorCode.NODE_UNAVAILABLE}


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
        secure: Optional[SecAggSettings] = None,
        weighting: str = 'samples',
    ) -> None:
        self.grid = grid
        self.directory = directory
        self.run = run
        self.wire_dtype = wire_dtype
        self.client_timeout = client_timeout
        self.poll_interval = poll_interval
        self.secure = secure
        self.weighting = weighting  # w_k under secure aggregation (--fed_weighting, resolved)

    @property
    def sums_only(self) -> bool:
        return self.secure is not None

    def train(self, tasks: Sequence[ClientTask]) -> Iterator[ClientUpdate]:
        messages = [self._message(task) for task in tasks]
        sent = {id(message): message_nbytes(message) for message in messages}
        ids = list(self.grid.push_messages(messages))
        pending: Dict[str, ClientTask] = dict(zip(ids, tasks))
        sent_bytes = {message_id: sent[id(message)] for message_id, message in zip(ids, messages)}
        del messages  # pushed: the round holds no copy of the global state per client
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
                del update  # folded into the round's mean by now
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

    def train_summed(self, tasks: Sequence[ClientTask]) -> SummedUpdate:
        """The round through SecAgg+: the weighted sum of the surviving clients' Delta_k (see the module
        docstring); raises ``ValueError`` when two sampled clients share a SuperNode (SecAgg+ masks per node)."""
        nodes = {task.client: self.directory.node_of(task.client) for task in tasks}
        if len(set(nodes.values())) < len(nodes):
            raise ValueError(
                f'secure aggregation: round {tasks[0].round_number} samples clients {sorted(nodes)} hosted by '
                f'SuperNodes {[nodes[k] for k in sorted(nodes)]}; SecAgg+ masks per node, so each sampled client '
                'needs its own SuperNode (use --supernodes equal to --client_num).'
            )
        check_modulus(len(tasks), self.secure.quantization_range)
        max_weight = max(self._weight(task.client) for task in tasks)
        clipping_range = self.secure.clipping_range_for(tasks[0].dp)
        contents = {}
        for task in tasks:
            payload = encode_task(task, self.run, self.wire_dtype)
            payload.configs[SECAGG_TASK] = {'weighting': self.weighting, 'noised-delta': task.dp is not None}
            contents[nodes[task.client]] = payload.to_record_dict()
        secure = secure_round(
            self.grid, contents, max_weight, self.secure, clipping_range, self.client_timeout, tasks[0].round_number
        )
        results = [self._secure_result(task, nodes[task.client], secure) for task in tasks]
        summed = [result for result in results if result.status == OK]
        report = {
            'type': 'secure_aggregation',
            'round': tasks[0].round_number,
            'protocol': 'secaggplus',
            'clients_summed': [result.client for result in summed],
            'num_shares': secure.num_shares,
            'reconstruction_threshold': secure.threshold,
            'clipping_range': clipping_range,
            'quantization_range': self.secure.quantization_range,
            'mean_error_bound': None,
            'replies_inspected': secure.grid.replies,  # none carried an array in the clear (AuditedGrid)
        }
        if not summed:
            return SummedUpdate(results, None, 0.0, 0, None, report)
        weights = [result.weight for result in summed]
        report['mean_error_bound'] = mean_error_bound(weights, max_weight, clipping_range, report['quantization_range'])
        return self._summed(tasks[0], secure.mean, results, sum(weights), len(summed), report)

    def _secure_result(self, task: ClientTask, node: int, secure: SecureRound) -> ClientResult:
        """The client's record: ``ok`` with its clear numbers and weight when it is in the sum, else why not."""
        if node in secure.clear and secure.mean is not None:
            weight, metrics = secure.clear[node]
            result = decode_update(clear_reply(metrics), task.client).result
            result.weight = float(weight)
        elif node in secure.grid.errors:  # the node raised, e.g. it refused a NaN update
            result = self._unanswered(task, FAILED, f'SuperNode {node}: {secure.grid.errors[node]}').result
        elif node in secure.grid.masked:
            reason = 'its masked update arrived, but SecAgg+ halted: too few clients left to unmask the sum'
            result = self._unanswered(task, EXCLUDED, reason).result
        else:
            reason = f'SuperNode {node}: no masked update within --client_timeout {self.client_timeout:g}s'
            result = self._unanswered(task, TIMEOUT, reason).result
        result.bytes_sent, result.bytes_received = secure.grid.sent.get(node, 0), secure.grid.received.get(node, 0)
        return result

    def _weight(self, client: int) -> float:
        """w_k as the server knows it from the node's registration: n_k, the episodes, or 1."""
        samples, episodes = self.directory.client_sizes(client)
        if self.weighting == 'episodes' and episodes is None:
            raise ValueError(
                f'--fed_weighting episodes (or --fed_alg avg-epi): client {client} has no `episode_id` column in its '
                'data. Add the column or choose --fed_weighting samples|uniform.'
            )
        return {'samples': samples, 'episodes': episodes, 'uniform': 1}[self.weighting]

    @staticmethod
    def _summed(
        task: ClientTask, mean: List[np.ndarray], results: List[ClientResult], weight_sum: float, count: int, report
    ) -> SummedUpdate:
        """sum_k w_k Delta_k = mean * sum_k w_k, split back into the global state's tensors (and the clip bit)."""
        names = list(task.global_state)
        delta_sum: State = {
            name: torch.from_numpy(np.asarray(array, dtype=np.float64) * weight_sum).reshape(
                task.global_state[name].shape
            )
            for name, array in zip(names, mean)
        }
        clip_bit_sum = float(mean[len(names)][0]) * weight_sum if len(mean) > len(names) else None
        return SummedUpdate(results, delta_sum, weight_sum, count, clip_bit_sum, report)

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
