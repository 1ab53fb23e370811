"""SCAFFOLD: Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning"
(arXiv:1910.06378), control variates with option II.

Client i starts from the global x with the server control c and its own control c_i (zero before its first round)
and runs K local steps with learning rates eta_1..eta_K, correcting every gradient:

    y <- y - eta_k * (g_i(y) - c_i + c)

then (option II, with sum_k eta_k in place of K * eta_l so that LR schedules are honoured)

    c_i+ = c_i - c + (x - y_i) / sum_k eta_k,     it sends Delta y_i = y_i - x and Delta c_i = c_i+ - c_i.

Server, with S the clients of the round and N = ``--client_num``:

    x <- x + eta_g * weighted_mean_{i in S}(Delta y_i)          (eta_g: ``--server_lr``, default 1)
    c <- c + (1/N) * sum_{i in S} Delta c_i

Departures, said out loud: the mean of Delta y_i uses ``--fed_weighting`` weights (``uniform`` gives the paper's plain
mean; ``samples``, the default, makes the first round with zero controls exactly FedAvg); the correction is added to
the gradient after gradient clipping and before the optimiser step, and the paper analyses SGD while ms-swift's
default optimiser is AdamW. The c_i are kept on disk per client (``swift_ext.federated.client_controls``).
"""

import torch

from .aggregation import ClientMean, State, check_compatible
from .fedavg import FedAvg


class Scaffold(FedAvg):
    def __init__(self, client_num: int, server_lr: float = 1.0) -> None:
        self.client_num = client_num
        self.server_lr = server_lr
        self.control: State = {}
        self._control_delta_sum: State = {}

    def server_control(self, global_state: State) -> State:
        """c, zero until the first aggregation."""
        if not self.control:
            self.control = {name: torch.zeros_like(t, dtype=torch.float32) for name, t in global_state.items()}
        return self.control

    def add_control_delta(self, delta: State) -> None:
        """Accumulate Delta c_i of a client whose update is accepted this round."""
        if not self._control_delta_sum:
            self._control_delta_sum = {name: t.to(torch.float64).clone() for name, t in delta.items()}
            return
        check_compatible(self._control_delta_sum, delta, 'SCAFFOLD control delta')
        for name, t in delta.items():
            self._control_delta_sum[name].add_(t.to(torch.float64))

    def aggregate(self, global_state: State, client_mean: ClientMean) -> State:
        mean = client_mean.mean()
        check_compatible(global_state, mean, 'aggregated state')
        control = self.server_control(global_state)
        for name, total in self._control_delta_sum.items():
            control[name] = (control[name].to(torch.float64) + total / self.client_num).float()
        self._control_delta_sum = {}
        return {
            name: (x.to(torch.float64) + self.server_lr * (mean[name].to(torch.float64) - x.to(torch.float64))).float()
            for name, x in global_state.items()
        }

    def state_dict(self) -> State:
        return {f'control.{name}': t for name, t in self.control.items()}

    def load_state_dict(self, state: State) -> None:
        self.control = {name[len('control.') :]: t for name, t in state.items()}


def client_control_update(
    client_control: State, server_control: State, start: State, end: State, lr_sum: float
) -> State:
    """Option II: c_i+ = c_i - c + (x - y_i) / sum_k eta_k."""
    if lr_sum <= 0:
        raise ValueError(f'SCAFFOLD needs at least one local step with a positive learning rate (sum {lr_sum}).')
    return {
        name: (
            client_control[name].to(torch.float64)
            - server_control[name].to(torch.float64)
            + (start[name].to(torch.float64) - end[name].to(torch.float64)) / lr_sum
        ).float()
        for name in start
    }
