"""FedAvg: McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(arXiv:1602.05629).

Update rule, with S_t the clients that returned an update in round t, w_k the weight of client k and x_k the
weights client k returns after its local steps from x_t:

    x_{t+1} = sum_{k in S_t} w_k x_k / sum_{k in S_t} w_k

w_k is chosen by ``--fed_weighting``: ``samples`` (n_k, the client's training rows; the paper's choice),
``episodes`` (the client's distinct episodes; FedMABench's ``avg-epi``) or ``uniform`` (1). The weights are
normalised over the clients of the round (as FedMABench and OpenFedLLM do), not over all clients.
"""

from .aggregation import ClientMean, State, check_compatible


class FedAvg:
    """The next global state is the weighted mean of the client states. Stateless."""

    def aggregate(self, global_state: State, client_mean: ClientMean) -> State:
        mean = client_mean.mean()
        check_compatible(global_state, mean, 'aggregated state')
        return mean

    def state_dict(self) -> State:
        """Server-side tensors to checkpoint (momenta, moments, control variates); none for FedAvg."""
        return {}

    def load_state_dict(self, state: State) -> None:
        if state:
            raise ValueError(f'{type(self).__name__} keeps no server state, got {sorted(state)[:5]}.')
