"""Aggregation helpers: a streaming weighted mean and the key/shape check that guards every arithmetic step."""

from typing import Dict, Optional

import torch

State = Dict[str, torch.Tensor]


def check_compatible(reference: State, other: State, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless both states have the same keys and shapes (no broadcasting)."""
    missing, unexpected = sorted(reference.keys() - other.keys()), sorted(other.keys() - reference.keys())
    if missing or unexpected:
        raise ValueError(
            f'{what}: keys differ from the global state: missing {missing[:5]}, unexpected {unexpected[:5]}.'
        )
    for name, tensor in reference.items():
        if other[name].shape != tensor.shape:
            raise ValueError(f'{what}: {name} has shape {tuple(other[name].shape)}, expected {tuple(tensor.shape)}.')


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
