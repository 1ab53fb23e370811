"""Aggregation helpers: the key/shape check that guards every arithmetic step, a streaming weighted mean, the
pseudo-gradient, and the finiteness check applied to every client update."""

from typing import Dict, List, Optional, Protocol

import torch

State = Dict[str, torch.Tensor]


def incompatibilities(reference: State, other: State) -> List[str]:
    """What keeps ``other`` from being combined with ``reference``: missing or unexpected keys and shape mismatches
    (no broadcasting). Empty when they are compatible."""
    missing, unexpected = sorted(reference.keys() - other.keys()), sorted(other.keys() - reference.keys())
    problems = [f'missing {name}' for name in missing] + [f'unexpected {name}' for name in unexpected]
    return problems + [
        f'{name} has shape {tuple(other[name].shape)}, expected {tuple(tensor.shape)}'
        for name, tensor in reference.items()
        if name in other and other[name].shape != tensor.shape
    ]


def check_compatible(reference: State, other: State, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless both states have the same keys and shapes."""
    problems = incompatibilities(reference, other)
    if problems:
        more = f' and {len(problems) - 5} more' if len(problems) > 5 else ''
        raise ValueError(f'{what} does not match the global state: {"; ".join(problems[:5])}{more}.')


def non_finite_tensors(state: State) -> List[str]:
    """Names of the tensors that hold a NaN or an infinity."""
    return [name for name, tensor in state.items() if not bool(torch.isfinite(tensor).all())]


def pseudo_gradient(global_state: State, client_mean: State) -> State:
    """Delta_t = mean_k(x_k) - x_t in float64: the direction the clients moved the model this round."""
    check_compatible(global_state, client_mean, 'client mean')
    return {name: client_mean[name].to(torch.float64) - global_state[name].to(torch.float64) for name in global_state}


class ClientMean(Protocol):
    """What a strategy aggregates: the round's combined client states (``WeightedMean``, or a DP accumulator of
    ``strategies.dp``), read once through ``mean()``."""

    count: int

    def add(self, state: State, weight: float) -> None: ...

    def mean(self) -> State: ...


class WeightedMean:
    """Streaming weighted mean of states: ``sum_k w_k x_k / sum_k w_k`` in float64.

    Only the running sum is held, never every client's state, so memory is one state whatever the number of clients.
    """

    def __init__(self) -> None:
        self._sum: Optional[State] = None
        self._total_weight = 0.0
        self.count = 0

    def add(self, state: State, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f'Aggregation weight must be positive, got {weight}.')
        if self._sum is None:
            self._sum = {name: tensor.to(torch.float64) * weight for name, tensor in state.items()}
        else:
            check_compatible(self._sum, state, f'update #{self.count + 1}')
            for name, tensor in state.items():
                self._sum[name].add_(tensor.to(torch.float64), alpha=weight)
        self._total_weight += weight
        self.count += 1

    def mean(self) -> State:
        """The weighted mean as float32; raises if nothing was added."""
        if self._sum is None:
            raise ValueError('No update was added to the weighted mean.')
        return {name: (total / self._total_weight).to(torch.float32) for name, total in self._sum.items()}
