"""What a federated run sends and stores, from its trainable element count.

Bytes per trainable element are measured on the real code, not assumed: the state that travels is what
``federated.state.get_trainable_state`` makes of a parameter (float32); the strategy's checkpointed state is what
one aggregation of the real strategy leaves on a one-element state (FedAvgM's momentum and FedOpt's m and v are
float64, SCAFFOLD's c float32); SCAFFOLD's c_i and Delta c_i are what ``client_control_update`` returns.

Disk, following ``federated.checkpoint.CheckpointStore``: a checkpoint holds the global state, the strategy state and
every client's c_i; while round r is written, round r-1's checkpoint is still there and the round's clients get new
c_i files (the others are hard-linked), so the peak is 2 x (state + strategy) + (client_num + clients per round) x
c_i. To that add one ``global_lora_{r}`` per save (the trainable parameters in their dtype) and, with
``--save_client_updates``, every sampled client's state every round. Sizes are tensor bytes; each safetensors file
adds a small JSON header.
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

    def checkpoint(self, client_num: int) -> int:
        """One round checkpoint once every client has trained (each then has its c_i on disk)."""
        return self.state + self.strategy + client_num * self.control

    def peak_checkpoints(self, client_num: int, clients_per_round: int) -> int:
        """While a round is written: the previous checkpoint, the new state and strategy, the round's new c_i."""
        return self.checkpoint(client_num) + self.state + self.strategy + clients_per_round * self.control


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
