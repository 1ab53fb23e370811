"""Server strategies: pure functions and small classes over ``dict[str, torch.Tensor]``, testable without a model.

Registry: :data:`STRATEGIES` maps a ``--fed_alg`` name to its strategy class.
"""

from typing import Dict, Type

from .aggregation import WeightedMean, check_compatible
from .fedavg import FedAvg, Strategy

# 'local<k>' and 'central' differ from FedAvg only in who trains (see federated.sampling); the server step is the same.
STRATEGIES: Dict[str, Type[Strategy]] = {'fedavg': FedAvg, 'local': FedAvg, 'central': FedAvg}


def strategy_for(fed_alg: str) -> Strategy:
    """The strategy instance for a ``--fed_alg`` value (``local3`` -> the ``local`` entry)."""
    key = 'local' if fed_alg.startswith('local') else fed_alg
    return STRATEGIES[key]()


__all__ = ['FedAvg', 'STRATEGIES', 'Strategy', 'WeightedMean', 'check_compatible', 'strategy_for']
