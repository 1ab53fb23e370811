"""Adaptive federated optimisation: Reddi et al. 2021, "Adaptive Federated Optimization" (arXiv:2003.00295),
Algorithm 2. FedAdam, FedYogi and FedAdagrad differ only in the second-moment update (``_second_moment``).

With Delta_t = mean_t - x_t (the pseudo-gradient: averaged client weights minus the global weights), server learning
rate eta (``--server_lr``), beta1/beta2 (``--fedopt_beta1/--fedopt_beta2``) and adaptivity tau (``--fedopt_tau``):

    m_t     = beta1 * m_{t-1} + (1 - beta1) * Delta_t                     (m_{-1} = 0)
    v_t     = FedAdam:    beta2 * v_{t-1} + (1 - beta2) * Delta_t^2
              FedYogi:    v_{t-1} - (1 - beta2) * Delta_t^2 * sign(v_{t-1} - Delta_t^2)
              FedAdagrad: v_{t-1} + Delta_t^2                                (v_{-1} = tau^2, as the paper requires)
    x_{t+1} = x_t + eta * m_t / (sqrt(v_t) + tau)

As in the paper's Algorithm 2 there is no bias correction of m and v. Defaults are the paper's beta1 = 0.9,
beta2 = 0.99, tau = 1e-3; the paper tunes eta per task, our default is 1e-2. m and v are kept in float64 and
checkpointed.

Departure from the paper: mean_t is the weighted mean the round loop hands in (``client_mean``), which by default
(``--fed_weighting samples``) weights client k by its n_k rows, as FedAvg does. Algorithm 2 takes the plain mean
Delta_t = (1/|S|) sum_{k in S} Delta_t^k over the sampled clients S; with unequal n_k the two differ. For the paper's
rule run with ``--fed_weighting uniform`` (every client weight 1).
"""

import torch

from .aggregation import ClientMean, State, pseudo_gradient
from .fedavg import FedAvg


class FedOpt(FedAvg):
    """Algorithm 2 with an abstract second moment; use FedAdam, FedYogi or FedAdagrad."""

    def __init__(self, server_lr: float = 1e-2, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3) -> None:
        self.server_lr = server_lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau
        self.m: State = {}
        self.v: State = {}

    def _second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def aggregate(self, global_state: State, client_mean: ClientMean) -> State:
        delta = pseudo_gradient(global_state, client_mean.mean())
        if not self.m:
            self.m = {name: torch.zeros_like(d) for name, d in delta.items()}
            self.v = {name: torch.full_like(d, self.tau**2) for name, d in delta.items()}
        next_state = {}
        for name, d in delta.items():
            self.m[name] = self.beta1 * self.m[name] + (1 - self.beta1) * d
            self.v[name] = self._second_moment(self.v[name], d)
            step = self.server_lr * self.m[name] / (self.v[name].sqrt() + self.tau)
            next_state[name] = (global_state[name].to(torch.float64) + step).float()
        return next_state

    def state_dict(self) -> State:
        return {**{f'm.{k}': t for k, t in self.m.items()}, **{f'v.{k}': t for k, t in self.v.items()}}

    def load_state_dict(self, state: State) -> None:
        self.m = {k[2:]: t for k, t in state.items() if k.startswith('m.')}
        self.v = {k[2:]: t for k, t in state.items() if k.startswith('v.')}


class FedAdam(FedOpt):
    def _second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * delta**2


class FedYogi(FedOpt):
    def _second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * delta**2 * torch.sign(v - delta**2)


class FedAdagrad(FedOpt):
    def _second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return v + delta**2
