"""FedProx: Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (arXiv:1812.06127).

The server step is FedAvg's. The client minimises its loss plus a proximal term that keeps it near the global
weights x_t it started from, over the trainable parameters only:

    h_k(w) = F_k(w) + mu/2 * ||w - x_t||^2          (mu: ``--fedprox_mu``)

The client side lives in ``swift_ext.federated.client_trainer`` (it adds :func:`proximal_term` to every training
loss). With mu = 0 FedProx is FedAvg.
"""

from typing import Iterable, Tuple

import torch

from .aggregation import State
from .fedavg import FedAvg


class FedProx(FedAvg):
    """Server side of FedProx: FedAvg. ``mu`` is carried to the clients."""

    def __init__(self, mu: float = 0.01) -> None:
        if mu < 0:
            raise ValueError(f'--fedprox_mu must be >= 0, got {mu}.')
        self.mu = mu


def proximal_term(named_params: Iterable[Tuple[str, torch.nn.Parameter]], anchor: State, mu: float) -> torch.Tensor:
    """mu/2 * sum over trainable parameters of ||w - anchor||^2 (anchor on the parameters' device and dtype)."""
    total = None
    for name, param in named_params:
        if param.requires_grad:
            term = (param - anchor[name]).pow(2).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError('FedProx: the model has no trainable parameters.')
    return 0.5 * mu * total
