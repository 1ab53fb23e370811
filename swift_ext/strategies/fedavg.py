"""FedAvg: McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(arXiv:1602.05629).

Update rule, with S_t the clients sampled in round t, n_k the number of training rows of client k and w_k the
weights client k returns after its local steps from w_t:

    w_{t+1} = sum_{k in S_t} n_k w_k / sum_{k in S_t} n_k

The weights are normalised over the sampled clients (as FedMABench and OpenFedLLM do), not over all clients.
"""

from typing import Protocol

from .aggregation import State, WeightedMean, check_compatible


class Strategy(Protocol):
    """A server strategy: turns the global state and the round's weighted client mean into the next global state."""

    def aggregate(self, global_state: State, client_mean: WeightedMean) -> State: ...


class FedAvg:
    """The next global state is the sample-weighted mean of the client states."""

    def aggregate(self, global_state: State, client_mean: WeightedMean) -> State:
        mean = client_mean.mean()
        check_compatible(global_state, mean, 'aggregated state')
        return mean
