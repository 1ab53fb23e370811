"""FedAvgM: Hsu, Qi and Brown 2019, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification" (arXiv:1909.06335): FedAvg with server momentum.

Update rule, with Delta_t = x_t - mean_t (the averaged client change, as a descent direction), server momentum beta
(``--server_momentum``) and server learning rate eta (``--server_lr``):

    v_t     = beta * v_{t-1} + Delta_t          (v_{-1} = 0)
    x_{t+1} = x_t - eta * v_t

With beta = 0 and eta = 1 this is exactly FedAvg. The momentum buffer v is checkpointed.
"""

from .aggregation import ClientMean, State, pseudo_gradient
from .fedavg import FedAvg


class FedAvgM(FedAvg):
    def __init__(self, server_lr: float = 1.0, server_momentum: float = 0.9) -> None:
        self.server_lr = server_lr
        self.server_momentum = server_momentum
        self.velocity: State = {}

    def aggregate(self, global_state: State, client_mean: ClientMean) -> State:
        direction = {name: -delta for name, delta in pseudo_gradient(global_state, client_mean.mean()).items()}
        if not self.velocity:
            self.velocity = {name: d.clone() for name, d in direction.items()}
        else:
            for name, d in direction.items():
                self.velocity[name].mul_(self.server_momentum).add_(d)
        return {
            name: (global_state[name].to(direction[name].dtype) - self.server_lr * self.velocity[name]).float()
            for name in global_state
        }

    def state_dict(self) -> State:
        return {f'velocity.{name}': tensor for name, tensor in self.velocity.items()}

    def load_state_dict(self, state: State) -> None:
        self.velocity = {name[len('velocity.') :]: tensor.to(state[name].dtype) for name, tensor in state.items()}
