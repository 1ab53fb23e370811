"""What a federated run sends and stores, from its trainable element count.

Bytes per trainable element are measured on the real code, not assumed: the state that travels is what
``federated.state.get_trainable_state`` makes of a parameter (float32); the strategy's checkpointed state is what
one aggregation of the real strategy leaves on a one-element state (FedAvgM's momentum and FedOpt's m and v are
float64, SCAFFOLD's c float32); SCAFFOLD's c_i and Delta c_i are what ``client_control_update`` returns.

Disk, following ``federated.checkpoint.CheckpointStore`` and ``federated.client_controls.ControlStore``: a checkpoint
holds the global state and the strategy state, and while round r is written round r-1's checkpoint is still there;
SCAFFOLD's c_i stay with the clients, at most two versions each (the one the server counts and one newer). The peak
is 2 x (state + strategy) + 2 x client_num x c_i. To that add one ``global_lora_{r}`` per save (the trainable
parameters in their dtype) and, with ``--save_client_updates``, every sampled client's state every round. Sizes are
tensor bytes; each safetensors file adds a small JSON header.
"""

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn

from ..federated.state import get_trainable_state, state_nbytes
from ..strategies import Scaffold, ServerConfig, WeightedMean, build_strategy
from ..strategies.scaffold import client_control_update


@dataclass(frozen=True)
class Footprint:
    """Bytes of one copy of each kind of state of a run."""

    state: int  # the global trainable state, as it travels and as the checkpoint holds it
    strategy: int  # the strategy's checkpointed state
    control: int  # SCAFFOLD: one c_i (also the size of c and of a Delta c_i); 0 for other algorithms
    adapter: int  # one global_lora_{r} / global_model_{r} save

    def wire_per_client(self) -> Tuple[int, int]:
        """(sent to, received from) one sampled client in one round: the state, plus SCAFFOLD's c / Delta c_i."""
        return self.state + self.control, self.state + self.control

    def checkpoint(self) -> int:
        """One round checkpoint: the global state and the strategy state."""
        return self.state + self.strategy

    def client_state(self, client_num: int) -> int:
        """SCAFFOLD's c_i kept by the clients once every client has trained: at most two versions each."""
        return 2 * client_num * self.control

    def peak(self, client_num: int) -> int:
        """While a round is written: the previous and the new checkpoint, and the clients' c_i."""
        return 2 * self.checkpoint() + self.client_state(client_num)


def per_element_bytes(fed_alg: str, client_num: int) -> Tuple[int, int, int]:
    """(travelling state, strategy state, SCAFFOLD control) bytes per trainable element, measured."""
    travel = state_nbytes(get_trainable_state(nn.Linear(1, 1, bias=False)))
    strategy = build_strategy(fed_alg, ServerConfig(client_num=client_num))
    zero = {'w': torch.zeros(1)}
    mean = WeightedMean()
    mean.add({'w': torch.ones(1)}, weight=1.0)
    strategy.aggregate(zero, mean)
    control = 0
    if isinstance(strategy, Scaffold):
        control = state_nbytes(client_control_update(zero, zero, zero, {'w': torch.ones(1)}, lr_sum=1.0))
    return travel, state_nbytes(strategy.state_dict()), control


def measure_footprint(fed_alg: str, client_num: int, trainable_numel: int, adapter_bytes: int) -> Footprint:
    travel, strategy, control = per_element_bytes(fed_alg, client_num)
    return Footprint(
        state=trainable_numel * travel,
        strategy=trainable_numel * strategy,
        control=trainable_numel * control,
        adapter=adapter_bytes,
    )
