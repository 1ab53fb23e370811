"""Federated-learning arguments, mixed into ms-swift's ``SftArguments`` by :mod:`swift_ext.arguments.sft`.

This module imports nothing heavy: the ``swift sft`` hook reads the field names at interpreter start-up.
"""

import re
from dataclasses import dataclass, fields
from typing import Literal, Optional

# Names FedMABench accepts that swift_ext has not implemented yet; rejected with a clear message, never run as FedAvg.
PLANNED_FED_ALGS = ('fedprox', 'scaffold', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'avg-epi')
LOCAL_PATTERN = re.compile(r'^local(\d*)$')


@dataclass
class FederatedArguments:
    """Arguments of federated training (FedMABench command-line names).

    Args:
        fed_alg (str): The federated algorithm. 'fedavg' (McMahan et al. 2017): sampled clients train from the
            global weights and the server takes their sample-weighted average. 'local<k>' (or 'local' = 'local0'):
            only client k trains, every round. 'central': all clients' rows are pooled into one client (the
            centralised upper bound, run through the same round loop). Defaults to 'fedavg'.
        round (int): The number of communication rounds. Defaults to 10.
        client_num (int): The number of clients. When the dataset has a `client_id` (or `client_number`) column it
            must hold integers in [0, client_num). Defaults to 10.
        client_sample (int): The number of clients sampled per round with 'fedavg'; all clients train when it is
            >= client_num. Defaults to 2.
        round_per_epoch (int): Used when `max_steps` is -1 (FedMABench semantics): each sampled client trains
            `num_train_epochs` passes over ceil(n_k / round_per_epoch) of its n_k rows per round, drawn without
            replacement by a generator seeded with (seed, round, client). With `max_steps` > 0 each sampled client
            instead runs exactly `max_steps` optimizer steps per round over all its rows. Defaults to 10.
        save_every (int): Save the global adapter every `save_every` rounds (and always after the last round) as
            `global_lora_{round}` (1-based round number). Defaults to 5.
        partition (str): How rows are assigned to clients when the dataset has no client column: 'iid' shuffles
            rows with `data_seed` and deals contiguous shards (flwr-datasets' IidPartitioner). Defaults to 'iid'.
        check_dataset_strategy (str): The ms-swift 2.x dataset check. 'none' skips it; 'warning' logs every row
            that ms-swift's preprocessing or encoding drops (file and line) and trains on the rest. Defaults to
            'warning'.
    """

    fed_alg: str = 'fedavg'
    round: int = 10
    client_num: int = 10
    client_sample: int = 2
    round_per_epoch: int = 10
    save_every: int = 5
    partition: Literal['iid'] = 'iid'
    check_dataset_strategy: Literal['none', 'warning'] = 'warning'

    def _check_federated(self) -> None:
        """Validate the federated fields; raise ``ValueError`` naming the argument and the fix."""
        if self.fed_alg in PLANNED_FED_ALGS:
            raise ValueError(
                f'--fed_alg {self.fed_alg} is not implemented in swift_ext yet (the public fork silently '
                'ran it as FedAvg). Use fedavg, local<k> or central.'
            )
        if self.fed_alg not in ('fedavg', 'central') and not LOCAL_PATTERN.match(self.fed_alg):
            raise ValueError(
                f'--fed_alg {self.fed_alg!r} is unknown. Choose fedavg, local<k> (e.g. local3) or central.'
            )
        for name in ('round', 'client_num', 'client_sample', 'round_per_epoch', 'save_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'--{name} must be >= 1, got {getattr(self, name)}.')
        local_client = self.local_client
        if local_client is not None and local_client >= self.client_num:
            raise ValueError(
                f'--fed_alg {self.fed_alg} names client {local_client}, but --client_num is '
                f'{self.client_num} (clients are 0..{self.client_num - 1}).'
            )

    @property
    def local_client(self) -> Optional[int]:
        """The client trained by 'local<k>' ('local' means client 0), else None."""
        match = LOCAL_PATTERN.match(self.fed_alg)
        if match is None:
            return None
        return int(match.group(1) or 0)


FEDERATED_FLAGS = frozenset(f'--{field.name}' for field in fields(FederatedArguments))
