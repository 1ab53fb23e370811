"""Server strategies: small classes over ``dict[str, torch.Tensor]``, testable without a model (one module each,
the paper and the update rule in its docstring).

``build_strategy`` maps a ``--fed_alg`` name to its strategy. FedAvg -> FedAvgM; FedAvg -> FedOpt -> FedAdam /
FedYogi / FedAdagrad; FedAvg -> FedProx (client-side term); FedAvg -> Scaffold (control variates).
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from .aggregation import WeightedMean, check_compatible, non_finite_tensors
from .fedavg import FedAvg
from .fedavgm import FedAvgM
from .fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from .fedprox import FedProx
from .scaffold import Scaffold


@dataclass(frozen=True)
class ServerConfig:
    """The hyper-parameters a strategy may take; ``server_lr=None`` means the strategy's own default."""

    client_num: int
    server_lr: Optional[float] = None
    server_momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    fedprox_mu: float = 0.01


def _server_lr(config: ServerConfig) -> Dict[str, float]:
    return {} if config.server_lr is None else {'server_lr': config.server_lr}


def _fedopt(cls: Callable[..., FedOpt]) -> Callable[[ServerConfig], FedOpt]:
    return lambda c: cls(beta1=c.beta1, beta2=c.beta2, tau=c.tau, **_server_lr(c))


# 'local<k>' and 'central' differ from FedAvg only in who trains (federated.sampling); 'avg-epi' only in its weights.
STRATEGIES: Dict[str, Callable[[ServerConfig], FedAvg]] = {
    'fedavg': lambda c: FedAvg(),
    'avg-epi': lambda c: FedAvg(),
    'local': lambda c: FedAvg(),
    'central': lambda c: FedAvg(),
    'fedprox': lambda c: FedProx(mu=c.fedprox_mu),
    'fedavgm': lambda c: FedAvgM(server_momentum=c.server_momentum, **_server_lr(c)),
    'scaffold': lambda c: Scaffold(client_num=c.client_num, **_server_lr(c)),
    'fedadam': _fedopt(FedAdam),
    'fedyogi': _fedopt(FedYogi),
    'fedadagrad': _fedopt(FedAdagrad),
}


def build_strategy(fed_alg: str, config: ServerConfig) -> FedAvg:
    """The strategy for a ``--fed_alg`` value (``local3`` -> the ``local`` entry)."""
    key = 'local' if fed_alg.startswith('local') else fed_alg
    if key not in STRATEGIES:
        raise ValueError(f'--fed_alg {fed_alg!r} is unknown; choose from {sorted(STRATEGIES)} (local<k> for a client).')
    return STRATEGIES[key](config)


__all__ = [
    'STRATEGIES',
    'FedAdagrad',
    'FedAdam',
    'FedAvg',
    'FedAvgM',
    'FedOpt',
    'FedProx',
    'FedYogi',
    'Scaffold',
    'ServerConfig',
    'WeightedMean',
    'build_strategy',
    'check_compatible',
    'non_finite_tensors',
]
