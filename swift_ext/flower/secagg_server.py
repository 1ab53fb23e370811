"""The server's half of secure aggregation: one round of Flower's SecAgg+ (``SecAggPlusWorkflow``, used as it is)
over the round's train messages, returning the weighted mean of the surviving clients' vectors, never one of them.

SecAgg+ (Bell et al. 2020, Flower's implementation): each client quantises ``r_k * v_k`` with
``r_k = q_k / Q``, ``q_k = round(w_k / max_weight * Q)`` (v_k clipped to [-R, R], stochastic rounding onto Q levels),
adds pairwise and private masks modulo ``modulus_range`` and uploads only that; the server sums the masked vectors,
asks the survivors for the Shamir shares that remove the masks (a dropped client's pairwise masks are rebuilt from
its shares: the round survives as long as every client keeps ``reconstruction_threshold`` live neighbours) and gets

    mean = sum_k r_k v_k / sum_k r_k          over the clients whose masked vector arrived (the survivors)

Reconstruction error (what :func:`mean_error_bound` reports, per element of ``mean``): stochastic rounding moves each
client's entry by less than one quantum 2R/Q, and the quantised weights r_k differ from w_k / max_weight by at most
1 / (2Q) (0 for uniform weights, which are exact), each such difference moving the mean by at most 2R:

    |mean - sum_k w_k v_k / sum_k w_k| < (m' * 2R / Q + sum_k |r_k - w_k / max_weight| * 2R) / sum_k r_k

Entries outside [-R, R] are clipped by the quantiser (a bias the bound does not cover); R must cover the updates.

The round's replies pass through :class:`AuditedGrid`: any reply that carries a non-empty ArrayRecord (an individual
update in the clear) stops the run, and the count of inspected replies goes to the log.
"""

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import FitIns, Parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

from ..strategies.dp import CLIP_BIT_SHIFT, ClientDp

DEFAULT_CLIPPING_RANGE = 8.0  # Flower's default R without DP
DEFAULT_QUANTIZATION_RANGE = 2**22  # Flower's default Q
MODULUS_RANGE = 2**32  # Flower's default (and largest) modulus; the masked sum of m' clients needs m' * Q below it
NOISE_TAILS = 6.0  # under distributed DP, R covers the clip norm plus this many noise standard deviations


class PlainUpdateError(RuntimeError):
    """A reply reached the server with an individual update in the clear while secure aggregation was on."""


@dataclass(frozen=True)
class SecAggSettings:
    """``--secagg_*``: neighbours per client (0: every sampled client), shares needed to unmask (0: one fewer than
    the neighbours, so one dropout is tolerated), R (None: from the round's DP settings, else 8.0) and Q."""

    num_shares: int = 0
    reconstruction_threshold: int = 0
    clipping_range: Optional[float] = None
    quantization_range: int = DEFAULT_QUANTIZATION_RANGE

    def shares(self, sampled: int) -> Tuple[int, int]:
        """(num_shares, reconstruction_threshold) for a round of ``sampled`` clients."""
        shares = self.num_shares or sampled
        return shares, self.reconstruction_threshold or max(2, shares - 1)

    def clipping_range_for(self, dp: Optional[ClientDp]) -> float:
        """R: ``--secagg_clipping_range``; under distributed DP by default the larger of C + 6 sigma (an entry of a
        clipped update plus its noise share) and 1/2 + 6 sigma_b (the noised clip bit); else 8.0."""
        if self.clipping_range is not None:
            return self.clipping_range
        if dp is None:
            return DEFAULT_CLIPPING_RANGE
        update = dp.clip_norm + NOISE_TAILS * dp.noise_stddev
        bit = CLIP_BIT_SHIFT + NOISE_TAILS * dp.clip_bit_stddev if dp.clip_bit_stddev is not None else 0.0
        return max(update, bit)


def quantised_weight(weight: float, max_weight: float, quantization_range: int) -> float:
    """r_k = round(w_k / max_weight * Q) / Q, the weight a SecAgg+ client actually applies."""
    return round(weight / max_weight * quantization_range) / quantization_range


def mean_error_bound(
    weights: Iterable[float], max_weight: float, clipping_range: float, quantization_range: int
) -> float:
    """The bound of the module docstring on |secure mean - exact weighted mean| per element, for the survivors'
    weights ``weights``."""
    weights = list(weights)
    ratios = [quantised_weight(w, max_weight, quantization_range) for w in weights]
    span = 2 * clipping_range
    rounding = len(weights) * span / quantization_range
    weighting = sum(abs(r - w / max_weight) for r, w in zip(ratios, weights)) * span
    return (rounding + weighting) / sum(ratios)


@dataclass
class AuditedGrid:
    """A Grid for the workflow that counts every message's bytes per node, keeps each node's error replies and
    notes whose masked vector arrived, and raises :class:`PlainUpdateError` on a reply carrying a non-empty
    ArrayRecord."""

    grid: object
    sent: Dict[int, int] = field(default_factory=dict)
    received: Dict[int, int] = field(default_factory=dict)
    errors: Dict[int, str] = field(default_factory=dict)
    masked: Set[int] = field(default_factory=set)  # nodes whose masked vector arrived
    replies: int = 0

    def send_and_receive(self, messages: Iterable[Message], *, timeout: Optional[float] = None) -> Iterable[Message]:
        messages = list(messages)
        for message in messages:
            node = message.metadata.dst_node_id
            self.sent[node] = self.sent.get(node, 0) + message_nbytes(message)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        for reply in replies:
            node = reply.metadata.src_node_id
            self.received[node] = self.received.get(node, 0) + message_nbytes(reply)
            self.replies += 1
            if reply.has_error():
                self.errors[node] = f'{reply.error.reason}'
                continue
            plain = [name for name, record in reply.content.array_records.items() if len(record)]
            if plain:
                raise PlainUpdateError(
                    f'SuperNode {node} replied with arrays in the clear ({plain}) under secure aggregation; is its '
                    "ClientApp swift_ext's (with Flower's secaggplus_mod)? The run stops."
                )
            if Key.MASKED_PARAMETERS in reply.content.config_records.get(RECORD_KEY_CONFIGS, {}):
                self.masked.add(node)
        return replies


def message_nbytes(message: Message) -> int:
    """Serialized bytes of ``message`` and everything it carries (Flower sends each object as its deflated form)."""
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values())


@dataclass(frozen=True)
class _Node:
    """What the workflow needs of a client proxy: the node id."""

    node_id: int


@dataclass
class _Collector:
    """The workflow's strategy: selects the round's nodes and keeps what ``aggregate_fit`` receives (the unmasked
    mean, identical in every result, and each survivor's clear weight and metrics)."""

    nodes: List[int]
    mean: Optional[List[np.ndarray]] = None
    clear: Dict[int, Tuple[int, Dict]] = field(default_factory=dict)

    def configure_fit(self, server_round, parameters, client_manager):
        return [(_Node(node), FitIns(Parameters(tensors=[], tensor_type=''), {})) for node in self.nodes]

    def aggregate_fit(self, server_round, results, failures):
        for proxy, fit_res in results:
            self.clear[proxy.node_id] = (int(fit_res.num_examples), dict(fit_res.metrics))
        if results:
            self.mean = parameters_to_ndarrays(results[0][1].parameters)
        return None, {}


class _SwiftSecAggPlus(SecAggPlusWorkflow):
    """Flower's workflow, sending swift_ext's own train records (``contents``: node -> RecordDict) in the
    ``collect_masked_vectors`` stage instead of a legacy FitIns."""

    def __init__(self, contents: Dict[int, RecordDict], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.contents = contents

    def setup_stage(self, grid, context, state) -> bool:
        proceed = super().setup_stage(grid, context, state)
        state.nid_to_fitins = {node: self.contents[node] for node in state.nid_to_fitins}
        return proceed


@dataclass
class SecureRound:
    """What the server learns from one SecAgg+ round: the survivors' weighted mean (None when the protocol halted),
    each survivor's clear (weight, metrics), and the audit of every message."""

    mean: Optional[List[np.ndarray]]
    clear: Dict[int, Tuple[int, Dict]]
    grid: AuditedGrid
    clipping_range: float
    num_shares: int
    threshold: int


def secure_round(
    grid,
    contents: Dict[int, RecordDict],
    max_weight: float,
    settings: SecAggSettings,
    clipping_range: float,
    timeout: float,
    round_number: int,
) -> SecureRound:
    """Run SecAgg+ once over the nodes of ``contents`` (each gets its train records in the masking stage)."""
    num_shares, threshold = settings.shares(len(contents))
    collector = _Collector(list(contents))
    workflow = _SwiftSecAggPlus(
        contents,
        num_shares,
        threshold,
        max_weight=float(max_weight),
        clipping_range=float(clipping_range),
        quantization_range=int(settings.quantization_range),
        modulus_range=MODULUS_RANGE,
        timeout=timeout,
    )
    context = LegacyContext(Context(0, 0, {}, RecordDict(), {}), strategy=collector)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: round_number})
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    audited = AuditedGrid(grid)
    workflow(audited, context)
    return SecureRound(collector.mean, collector.clear, audited, clipping_range, num_shares, threshold)


def check_modulus(clients: int, quantization_range: int) -> None:
    """Raise ``ValueError`` unless the masked sum of ``clients`` quantised vectors fits the modulus."""
    if clients * quantization_range >= MODULUS_RANGE:
        raise ValueError(
            f'--secagg_quantization_range {quantization_range} with {clients} clients per round overflows the '
            f'SecAgg+ modulus 2^32 (clients * Q must stay below it): use Q <= {MODULUS_RANGE // (clients + 1)}.'
        )


__all__ = [
    'AuditedGrid',
    'PlainUpdateError',
    'SecAggSettings',
    'SecureRound',
    'check_modulus',
    'mean_error_bound',
    'message_nbytes',
    'quantised_weight',
    'secure_round',
]
