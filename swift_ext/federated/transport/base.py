"""The contract between the round loop (the server) and its clients, whatever carries the messages.

A round is a list of :class:`ClientTask` (one per sampled client); a transport runs them and yields one
:class:`ClientUpdate` per task, in any order, as each finishes. The server validates every update (finite tensors,
keys and shapes of the global state) before it reaches the aggregation, so a transport never filters.

A transport that only ever hands the server a round's SUM (secure aggregation) says so with ``sums_only = True`` and
implements ``train_summed``: the round loop then gets one :class:`SummedUpdate` per round instead of the updates.
"""

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence

from ...strategies.dp import ClientDp
from ..client import ClientResult
from ..state import State, state_nbytes


@dataclass
class ClientTask:
    """What the server sends one client for one round.

    Attributes:
        round_number: 1-based round.
        client: the client id (``CENTRAL_CLIENT`` for ``--fed_alg central``).
        seed_offset: added to ``seed`` and ``data_seed`` of the client's trainer (``sampling.client_seed_offset``).
        global_state: x_t, the global trainable state the client starts from.
        proximal_mu: FedProx's mu; the client adds mu/2 ||w - x_t||^2 to its loss (0: no term).
        server_control: SCAFFOLD's c (None for other algorithms).
        control_round: SCAFFOLD: the round whose c_i of this client the server accepted last (None: c_i = 0). The
            client keeps its c_i; the server only says which version counts, so a rejected update or a resumed run
            never uses a c_i the server did not account for.
        dp: distributed client-level DP (``--dp_mode distributed``): the clip norm and the client's noise shares.
            The client then replies with its clipped, noised Delta_k = y_k - x instead of y_k (and its noised clip
            bit with adaptive clipping), see :class:`swift_ext.strategies.dp.ClientDp`. None otherwise.
    """

    round_number: int
    client: int
    seed_offset: int
    global_state: State
    proximal_mu: float = 0.0
    server_control: Optional[State] = None
    control_round: Optional[int] = None
    dp: Optional[ClientDp] = None


@dataclass
class ClientUpdate:
    """What a client returns: its log record, and (when it trained) y_k and SCAFFOLD's Delta c_i.

    ``result.samples`` (n_k) and ``result.episodes`` come from the client: the server weighs the update with them
    (``--fed_weighting``) and never reads a training row itself.

    Under distributed DP (``task.dp``) ``state`` is the clipped, noised Delta_k (not y_k) and ``clip_bit`` the
    noised b_k - 1/2 of adaptive clipping: the two values the server only sums (secure aggregation can sum them).
    """

    result: ClientResult
    state: Optional[State] = None
    control_delta: Optional[State] = None
    clip_bit: Optional[float] = None


@dataclass
class SummedUpdate:
    """A round under secure aggregation, as the server sees it: the weighted sum of the clients' vectors and each
    client's clear record, never one client's update.

    Attributes:
        results: one record per task, in task order: ``ok`` for every client in the sum (with its weight w_k, n_k and
            log numbers), ``timeout`` / ``failed`` for the others (dropped out, or refused to add its update).
        delta_sum: sum_k w_k Delta_k over the summed clients (float64), Delta_k = y_k - x, or under distributed DP
            the client's clipped, noised Delta_k (w_k = 1); None when nothing could be summed.
        weight_sum: sum_k w_k over the summed clients.
        count: m', the number of summed clients.
        clip_bit_sum: sum_k of the noised b_k - 1/2 (distributed DP with adaptive clipping), else None.
        report: the round's ``secure_aggregation`` log row (clients summed, ranges, reconstruction error bound, the
            audit of the replies).
    """

    results: List[ClientResult]
    delta_sum: Optional[State]
    weight_sum: float
    count: int
    clip_bit_sum: Optional[float]
    report: Dict[str, Any]


class ClientTransport(Protocol):
    """Runs a round's tasks on the clients; the round loop does not know which transport it talks to."""

    def train(self, tasks: Sequence[ClientTask]) -> Iterator[ClientUpdate]:
        """Yield one update per task as each client finishes. A client that does not answer yields an update with
        status ``timeout``; a client whose training raised yields status ``failed`` with the error in ``detail``.
        ``result.bytes_sent`` / ``bytes_received`` are what travelled for that client."""
        ...


class SummingTransport(ClientTransport, Protocol):
    """A transport under secure aggregation (``sums_only`` true): the round's tasks give one :class:`SummedUpdate`."""

    sums_only: bool

    def train_summed(self, tasks: Sequence[ClientTask]) -> SummedUpdate: ...


def task_nbytes(task: ClientTask) -> int:
    """Tensor bytes of a task: x_t, plus SCAFFOLD's c."""
    return state_nbytes(task.global_state) + state_nbytes(task.server_control or {})


def update_nbytes(update: ClientUpdate) -> int:
    """Tensor bytes of an update: y_k, plus SCAFFOLD's Delta c_i."""
    return state_nbytes(update.state or {}) + state_nbytes(update.control_delta or {})
