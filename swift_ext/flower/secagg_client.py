"""The node's half of secure aggregation (``--secure_aggregation secaggplus``): what a client puts into Flower's
SecAgg+ and what it leaves in the clear. Imports numpy and flwr only (the ClientApp process never loads torch).

Flower's ``secaggplus_mod`` runs around the ClientApp's train handler. In its ``collect_masked_vectors`` stage it
calls the handler, reads the reply as a legacy ``FitRes`` (``fitres.parameters``, ``fitres.num_examples``,
``fitres.metrics``, ``fitres.status``), quantises ``num_examples / max_weight * parameters``, masks them, and
*clears every ArrayRecord of the reply* before it leaves the node. This module builds that reply
(:func:`fitres_content`):

- ``fitres.parameters``: the client's vector (:func:`secure_vector`): Delta_k = y_k - x per tensor, in the order of
  the task's ``global`` record (under ``--dp_mode distributed`` the node's reply already is its clipped, noised
  Delta_k), then, with adaptive clipping, the noised clip bit as a one-element array. Only its masked, quantised
  form leaves the node.
- ``fitres.num_examples``: w_k per the task's ``secagg`` record: n_k, the episode count, or 1 (uniform).
- ``fitres.metrics`` (in the clear): the log numbers of the turn (samples, steps, loss, seconds) and its status, never
  a tensor or the clip bit.

A reply that cannot be summed (no state: the client failed or has no rows; a NaN/Inf; a key or shape that differs
from the task's global state) raises ``ValueError``: the node answers with an error and SecAgg+ treats the client as
dropped out, so one bad client never corrupts the masked sum.
"""

from typing import Any, Dict, List

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from .payload import Payload

SECAGG_TASK = 'secagg'  # the task's ConfigRecord under secure aggregation: {weighting, noised-delta}
REQUIRE_SECURE = 'secure-aggregation'  # node config key; 'required' refuses every train message without SecAgg+
CLEAR_RESULT = ('samples', 'round-samples', 'steps', 'seconds', 'train-seconds', 'skipped-steps', 'episodes', 'loss')


def optional_secaggplus_mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``secaggplus_mod`` for train messages that carry its stage record; others pass through, unless the
    node config says ``secure-aggregation='required'`` (then a plain train message is refused)."""
    if message.metadata.message_type == MessageType.TRAIN:
        if RECORD_KEY_CONFIGS in message.content.config_records:
            return secaggplus_mod(message, context, call_next)
        if str(context.node_config.get(REQUIRE_SECURE, '')) == 'required':
            raise ValueError(
                f"this SuperNode's node config has {REQUIRE_SECURE}='required' and the server asked for a plain "
                'update: run the server with --secure_aggregation secaggplus.'
            )
    return call_next(message, context)


def secure_vector(task: Payload, reply: Payload) -> List[np.ndarray]:
    """The client's vector for the masked sum (see the module docstring); raises ``ValueError`` when the reply cannot
    be summed."""
    status = reply.configs['status']
    if 'state' not in reply.arrays:
        raise ValueError(f'the client has no update to sum (status {status["status"]}: {status["detail"]})')
    global_arrays, state = task.arrays['global'], reply.arrays['state']
    if list(state) != list(global_arrays) or any(state[k].shape != global_arrays[k].shape for k in global_arrays):
        raise ValueError('the client update does not have the keys and shapes of the global state')
    noised_delta = bool(task.configs[SECAGG_TASK]['noised-delta'])
    vector = [
        state[key].astype(np.float64) - (0.0 if noised_delta else global_arrays[key].astype(np.float64))
        for key in global_arrays
    ]
    if 'clip-bit' in reply.metrics['result']:
        vector.append(np.array([float(reply.metrics['result']['clip-bit'])]))
    bad = [key for key, array in zip(global_arrays, vector) if not np.isfinite(array).all()]
    if bad or not np.isfinite(vector[-1]).all():
        raise ValueError(f'the client update holds NaN/Inf ({bad[:5] or "clip bit"}); it is not added to the sum')
    return vector


def secure_weight(task: Payload, reply: Payload) -> int:
    """w_k: n_k ('samples'), the distinct episodes ('episodes') or 1 ('uniform'), per the task's ``secagg`` record."""
    weighting = task.configs[SECAGG_TASK]['weighting']
    if weighting == 'uniform':
        return 1
    value = int(reply.metrics['result'][weighting])
    if value <= 0:
        raise ValueError(f'--fed_weighting {weighting}: the client has weight {value} (no {weighting})')
    return value


def fitres_content(task: Payload, reply: Payload) -> RecordDict:
    """The train reply as the legacy ``FitRes`` records SecAgg+ masks (see the module docstring)."""
    vector = secure_vector(task, reply)
    result, status = reply.metrics['result'], reply.configs['status']
    clear: Dict[str, Any] = {f'result.{key}': result[key] for key in CLEAR_RESULT if key in result}
    clear.update({'status': str(status['status']), 'detail': '\n'.join(str(line) for line in status['detail'])})
    return RecordDict(
        {
            'fitres.parameters': ArrayRecord({str(index): Array(array) for index, array in enumerate(vector)}),
            'fitres.num_examples': MetricRecord({'num_examples': secure_weight(task, reply)}),
            'fitres.metrics': ConfigRecord(clear),
            'fitres.status': ConfigRecord({'code': 0, 'message': 'Success'}),
        }
    )


def clear_reply(metrics: Dict[str, Any]) -> Payload:
    """The server's view of a summed client's turn: its clear ``fitres.metrics`` as the ``result`` / ``status``
    records of an ordinary train reply without arrays (``protocol.decode_update`` reads it)."""
    result = {key[len('result.') :]: value for key, value in metrics.items() if key.startswith('result.')}
    detail = str(metrics['detail'])
    status = {'status': str(metrics['status']), 'detail': detail.split('\n') if detail else []}
    return Payload(metrics={'result': result}, configs={'status': status})


__all__ = ['SECAGG_TASK', 'clear_reply', 'fitres_content', 'optional_secaggplus_mod', 'secure_vector']
