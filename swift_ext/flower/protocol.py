"""What the records of swift_ext's Flower messages mean, both ways: the server's side (tasks out, updates in) and the
node's side (tasks in, updates out) use the same functions.

Two message types, each a :class:`~swift_ext.flower.payload.Payload`:

``query`` (registration, once per run)
    server -> node: ConfigRecord ``run`` {run-key, run-dir}
    node -> server: MetricRecord ``clients`` {ids, samples, episodes (-1: no episode_id column)},
    ConfigRecord ``node`` {data (what the node trains on), dataset-checks (one summary line per checked file)}

``train`` (one client's round)
    server -> node: ArrayRecord ``global`` (x_t) and, for SCAFFOLD, ``server-control`` (c); ConfigRecord ``run``;
    ConfigRecord ``task`` {round, client, seed-offset, proximal-mu, control-round (-1: none), wire-dtype}; with
    distributed DP, ConfigRecord ``dp`` {clip-norm, noise-stddev, secure-rng, clip-bit-stddev (adaptive clipping)}
    node -> server: ArrayRecord ``state`` (y_k; the clipped, noised Delta_k under distributed DP) and, for SCAFFOLD,
    ``control-delta`` (Delta c_i); MetricRecord ``result`` (the ClientResult's numbers; ``loss`` absent when there
    is none; ``clip-bit`` under distributed DP with adaptive clipping); ConfigRecord ``status`` {status, detail}

States travel in ``--wire_dtype``: float32 (exact), float16, or bfloat16 carried as its uint16 bit pattern (numpy has
no bfloat16). A receiver decodes by the arrays' own dtype into float32 tensors; it never filters: the round loop
validates keys, shapes and finiteness of every update.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..federated.client import ClientResult
from ..federated.state import State
from ..federated.transport.base import ClientTask, ClientUpdate
from ..strategies.dp import ClientDp
from .payload import Payload

WIRE_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
NO_VALUE = -1  # integer fields that may be None (control round, episodes) travel as -1


@dataclass(frozen=True)
class RunIdentity:
    """Which run a message belongs to: ``key`` names the node's files for it (stable across ``--resume``), ``dir`` is
    the server's run directory (used as the node's directory only by nodes without their own ``state-dir``)."""

    key: str
    dir: str

    def record(self) -> Dict[str, str]:
        return {'run-key': self.key, 'run-dir': self.dir}

    @classmethod
    def from_payload(cls, payload: Payload) -> 'RunIdentity':
        record = payload.configs['run']
        return cls(str(record['run-key']), str(record['run-dir']))


def state_to_wire(state: State, wire_dtype: str) -> Dict[str, np.ndarray]:
    """``state`` as numpy arrays in ``wire_dtype`` (bfloat16 as uint16 bit patterns)."""
    dtype = WIRE_DTYPES[wire_dtype]
    arrays = {}
    for name, tensor in state.items():
        wire = tensor.detach().to('cpu', dtype).contiguous()
        arrays[name] = wire.view(torch.int16).numpy().view(np.uint16) if dtype == torch.bfloat16 else wire.numpy()
    return arrays


def state_from_wire(arrays: Dict[str, np.ndarray]) -> State:
    """float32 tensors from arrays of any numeric dtype (uint16 = bfloat16 bit patterns)."""
    state = {}
    for name, array in arrays.items():
        if array.dtype == np.uint16:
            state[name] = torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16).float()
        else:
            state[name] = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
    return state


# --------------------------------------------------------------------------------------------------- registration


def encode_query(run: RunIdentity) -> Payload:
    return Payload(configs={'run': run.record()})


@dataclass
class NodeRegistration:
    """A node's answer to ``query``: the clients it hosts with n_k and episodes, what it trains on, and its
    dataset check summaries."""

    clients: Dict[int, Tuple[int, Optional[int]]]  # client -> (samples, episodes or None)
    data: str
    dataset_checks: List[str]

    def to_payload(self) -> Payload:
        ids = sorted(self.clients)
        return Payload(
            metrics={
                'clients': {
                    'ids': ids,
                    'samples': [self.clients[k][0] for k in ids],
                    'episodes': [NO_VALUE if self.clients[k][1] is None else self.clients[k][1] for k in ids],
                }
            },
            configs={'node': {'data': self.data, 'dataset-checks': list(self.dataset_checks)}},
        )

    @classmethod
    def from_payload(cls, payload: Payload) -> 'NodeRegistration':
        record = payload.metrics['clients']
        clients = {
            int(k): (int(samples), None if episodes == NO_VALUE else int(episodes))
            for k, samples, episodes in zip(record['ids'], record['samples'], record['episodes'])
        }
        node = payload.configs['node']
        return cls(clients, str(node['data']), [str(line) for line in node['dataset-checks']])


# ----------------------------------------------------------------------------------------------------------- train


def encode_task(task: ClientTask, run: RunIdentity, wire_dtype: str) -> Payload:
    payload = Payload(
        arrays={'global': state_to_wire(task.global_state, wire_dtype)},
        configs={
            'run': run.record(),
            'task': {
                'round': task.round_number,
                'client': task.client,
                'seed-offset': task.seed_offset,
                'proximal-mu': float(task.proximal_mu),
                'control-round': NO_VALUE if task.control_round is None else task.control_round,
                'wire-dtype': wire_dtype,
            },
        },
    )
    if task.server_control is not None:
        payload.arrays['server-control'] = state_to_wire(task.server_control, wire_dtype)
    if task.dp is not None:
        dp = task.dp
        payload.configs['dp'] = {
            'clip-norm': float(dp.clip_norm),
            'noise-stddev': float(dp.noise_stddev),
            'secure-rng': bool(dp.secure_rng),
        }
        if dp.clip_bit_stddev is not None:
            payload.configs['dp']['clip-bit-stddev'] = float(dp.clip_bit_stddev)
    return payload


def _client_dp(record: Optional[Dict]) -> Optional[ClientDp]:
    if record is None:
        return None
    bit = record.get('clip-bit-stddev')
    return ClientDp(
        clip_norm=float(record['clip-norm']),
        noise_stddev=float(record['noise-stddev']),
        clip_bit_stddev=None if bit is None else float(bit),
        secure_rng=bool(record['secure-rng']),
    )


def decode_task(payload: Payload) -> Tuple[ClientTask, str]:
    """(the task, the wire dtype its reply must use)."""
    record = payload.configs['task']
    control_round = int(record['control-round'])
    server_control = payload.arrays.get('server-control')
    task = ClientTask(
        round_number=int(record['round']),
        client=int(record['client']),
        seed_offset=int(record['seed-offset']),
        global_state=state_from_wire(payload.arrays['global']),
        proximal_mu=float(record['proximal-mu']),
        server_control=None if server_control is None else state_from_wire(server_control),
        control_round=None if control_round == NO_VALUE else control_round,
        dp=_client_dp(payload.configs.get('dp')),
    )
    return task, str(record['wire-dtype'])


RESULT_METRICS = ('samples', 'round_samples', 'steps', 'seconds', 'train_seconds', 'skipped_steps')


def encode_update(update: ClientUpdate, wire_dtype: str) -> Payload:
    result = update.result
    metrics = {name.replace('_', '-'): getattr(result, name) for name in RESULT_METRICS}
    metrics['episodes'] = NO_VALUE if result.episodes is None else result.episodes
    if result.loss is not None:
        metrics['loss'] = float(result.loss)
    if update.clip_bit is not None:
        metrics['clip-bit'] = float(update.clip_bit)
    payload = Payload(
        metrics={'result': metrics}, configs={'status': {'status': result.status, 'detail': list(result.detail)}}
    )
    if update.state is not None:
        payload.arrays['state'] = state_to_wire(update.state, wire_dtype)
    if update.control_delta is not None:
        payload.arrays['control-delta'] = state_to_wire(update.control_delta, wire_dtype)
    return payload


def decode_update(payload: Payload, client: int) -> ClientUpdate:
    """The update of ``client`` (the server's task names the client; a reply cannot speak for another one)."""
    metrics, status = payload.metrics['result'], payload.configs['status']
    result = ClientResult(client=client, status=str(status['status']), detail=[str(line) for line in status['detail']])
    for name in RESULT_METRICS:
        setattr(result, name, type(getattr(result, name))(metrics[name.replace('_', '-')]))
    result.episodes = None if metrics['episodes'] == NO_VALUE else int(metrics['episodes'])
    result.loss = float(metrics['loss']) if 'loss' in metrics else None
    state = state_from_wire(payload.arrays['state']) if 'state' in payload.arrays else None
    delta = state_from_wire(payload.arrays['control-delta']) if 'control-delta' in payload.arrays else None
    clip_bit = float(metrics['clip-bit']) if 'clip-bit' in metrics else None
    return ClientUpdate(result, state, delta, clip_bit)
