"""Federated-learning arguments, mixed into ms-swift's ``SftArguments`` by :mod:`swift_ext.arguments.sft`.

This module imports nothing heavy: the ``swift sft`` hook reads the field names at interpreter start-up.
"""

import re
from dataclasses import dataclass, fields
from typing import Dict, Literal, Optional

FED_ALGS = ('fedavg', 'avg-epi', 'fedprox', 'scaffold', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'central')
LOCAL_PATTERN = re.compile(r'^local(\d*)$')


@dataclass
class FederatedArguments:
    """Arguments of federated training (FedMABench command-line names).

    Args:
        fed_alg (str): The federated algorithm. 'fedavg' (McMahan et al. 2017): sampled clients train from the
            global weights and the server takes their weighted mean. 'avg-epi': FedAvg weighted by episodes.
            'fedprox' (Li et al. 2020): FedAvg whose clients add mu/2 ||w - w_global||^2 to their loss. 'scaffold'
            (Karimireddy et al. 2020, option II control variates). 'fedavgm' (Hsu et al. 2019, server momentum).
            'fedadam', 'fedyogi', 'fedadagrad' (Reddi et al. 2021, adaptive server optimisers). 'local<k>' (or
            'local' = 'local0'): only client k trains, every round. 'central': all clients' rows pooled into one
            client, through the same round loop. Defaults to 'fedavg'.
        round (int): The number of communication rounds. Defaults to 10.
        client_num (int): The number of clients. When the dataset has a `client_id` (or `client_number`) column it
            must hold integers in [0, client_num). Defaults to 10.
        client_sample (int): The number of clients sampled per round; all clients train when it is >= client_num.
            Defaults to 2.
        round_per_epoch (int): Used when `max_steps` is -1 (FedMABench semantics): each sampled client trains
            `num_train_epochs` passes over ceil(n_k / round_per_epoch) of its n_k rows per round, drawn without
            replacement by a generator seeded with (seed, round, client). With `max_steps` > 0 each sampled client
            instead runs exactly `max_steps` optimizer steps per round over all its rows. Defaults to 10.
        save_every (int): Save the global adapter every `save_every` rounds (and always after the last round) as
            `global_lora_{round}` (1-based round number). Defaults to 5.
        partition (str): How rows are assigned to clients when the dataset has no client column: 'iid' shuffles
            rows with `data_seed` and deals contiguous shards (flwr-datasets' IidPartitioner). Defaults to 'iid'.
        dataset_check_strategy (str): The conversations check run on every local JSON-lines training file before
            loading (valid JSON, user/assistant turns ending with the assistant, non-empty answers, one <image> tag
            per readable image, tokenized length <= max_length; `python -m swift_ext.data_check` runs it alone).
            'none' skips it; 'warning' logs every bad row (file:line, reason) and trains on the rest; 'discard' drops
            them and lists them in `<output_dir>/data_check_<file>.json`; 'error' stops naming every bad line. Rows
            that ms-swift drops later are logged unless 'none'. ms-swift 2.x name: `--check_dataset_strategy`.
            Defaults to 'warning'.
        fed_weighting (Optional[str]): Client weights in the server average: 'samples' (n_k training rows),
            'episodes' (distinct `episode_id` values of the client) or 'uniform'. Defaults to None: 'episodes' for
            'avg-epi', else 'samples'.
        server_lr (Optional[float]): Server learning rate eta of fedavgm (default 1.0), scaffold (default 1.0) and
            fedadam/fedyogi/fedadagrad (default 1e-2). Defaults to None (the algorithm's default).
        server_momentum (float): FedAvgM server momentum beta. Defaults to 0.9.
        fedopt_beta1 (float): FedAdam/FedYogi/FedAdagrad first-moment decay. Defaults to 0.9.
        fedopt_beta2 (float): FedAdam/FedYogi second-moment decay. Defaults to 0.99.
        fedopt_tau (float): FedAdam/FedYogi/FedAdagrad adaptivity tau. Defaults to 1e-3.
        fedprox_mu (float): FedProx proximal weight mu. Defaults to 0.01.
        save_client_updates (bool): Also save every client's returned state per round under
            `client_updates/round_{r}/client_{k}.safetensors` with a json of its samples, steps and loss, so an
            aggregation can be audited. Defaults to False.
        resume (Optional[str]): 'true' continues the newest run under `output_dir` that has a round checkpoint; a
            run directory continues that run. Training restarts after the last complete round. Defaults to None.
        client_failure (str): A client whose training raises: 'skip' excludes it from the round (logged loudly) and
            the round goes on; 'abort' stops the run. Defaults to 'skip'.
        nonfinite_loss (str): A NaN/Inf training loss: 'stop' ends that client's turn (its update is excluded),
            'skip' gives that micro-batch a zero gradient. Defaults to 'stop'.
        fed_eval_every (int): Every N rounds, evaluate the global model's loss on the validation split
            (`split_dataset_ratio` > 0 or `val_dataset`); 0 disables it. Defaults to 0.
        fed_eval_generation_rows (int): With `fed_eval_every`, also let the global model generate on the first N
            validation rows and score its actions (type accuracy, step and episode success, FedMABench's TF-IDF
            accuracy; see `swift_ext.evaluation`). 0 disables it. Defaults to 0.
        fed_eval_prompt_format (str): The answer format of the data for that scoring: 'fedmabench' (natural
            language), 'json' or 'mobile_use'. Defaults to 'fedmabench'.
        fed_eval_max_new_tokens (int): Generation length for that scoring. Defaults to 64.
        fed_engine (str): Where clients train. 'in_process': one after another in this process. 'flower': on Flower
            SuperNodes; this command starts a SuperLink and `supernodes` SuperNodes (each with a training worker that
            loads the model once) on 127.0.0.1 with TLS and SuperNode authentication, runs the same command line as a
            Flower run, and stops them all at the end, on Ctrl-C or on a crash. 'simulation': Flower's simulation
            engine (Ray), `supernodes` virtual SuperNodes with `client_resources` each. Same rounds, algorithms,
            logs, checkpoints and results as 'in_process'. Defaults to 'in_process'.
        supernodes (int): With `fed_engine` 'flower' or 'simulation': the number of SuperNodes; client k is hosted by
            node k mod supernodes. A server started by `flwr run` waits for this many SuperNodes to connect.
            Defaults to 2.
        client_timeout (float): With `fed_engine` 'flower' or 'simulation': seconds the server waits for a client's
            reply in a round (the client is then logged `timeout` and the round closes with the others), and for
            the SuperNodes to connect and register (which builds their model and data). Defaults to 1800.
        client_resources (Optional[str]): With `fed_engine` 'simulation': resources of each virtual client as
            'num_cpus=N,num_gpus=G' (Flower's client_resources; G may be fractional, e.g. 0.5 puts two clients on
            one GPU). Defaults to None (num_cpus=1, num_gpus=0).
        wire_dtype (str): The dtype adapters travel in between server and Flower clients: 'float32' (exact),
            'bfloat16' or 'float16' (half the bytes; states are rounded on the wire, training stays in the model's
            dtype). Defaults to 'float32'.
    """

    fed_alg: str = 'fedavg'
    round: int = 10
    client_num: int = 10
    client_sample: int = 2
    round_per_epoch: int = 10
    save_every: int = 5
    partition: Literal['iid'] = 'iid'
    dataset_check_strategy: Literal['none', 'warning', 'discard', 'error'] = 'warning'
    fed_weighting: Optional[Literal['samples', 'episodes', 'uniform']] = None
    server_lr: Optional[float] = None
    server_momentum: float = 0.9
    fedopt_beta1: float = 0.9
    fedopt_beta2: float = 0.99
    fedopt_tau: float = 1e-3
    fedprox_mu: float = 0.01
    save_client_updates: bool = False
    resume: Optional[str] = None
    client_failure: Literal['skip', 'abort'] = 'skip'
    nonfinite_loss: Literal['stop', 'skip'] = 'stop'
    fed_eval_every: int = 0
    fed_eval_generation_rows: int = 0
    fed_eval_prompt_format: Literal['fedmabench', 'json', 'mobile_use'] = 'fedmabench'
    fed_eval_max_new_tokens: int = 64
    fed_engine: Literal['in_process', 'flower', 'simulation'] = 'in_process'
    supernodes: int = 2
    client_timeout: float = 1800.0
    client_resources: Optional[str] = None
    wire_dtype: Literal['float32', 'bfloat16', 'float16'] = 'float32'

    def _check_federated(self) -> None:
        """Validate the federated fields; raise ``ValueError`` naming the argument and the fix."""
        if self.fed_alg not in FED_ALGS and not LOCAL_PATTERN.match(self.fed_alg):
            raise ValueError(
                f'--fed_alg {self.fed_alg!r} is unknown. Choose one of {", ".join(FED_ALGS)} or local<k> (e.g. local3).'
            )
        for name in ('round', 'client_num', 'client_sample', 'round_per_epoch', 'save_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'--{name} must be >= 1, got {getattr(self, name)}.')
        for name in ('fed_eval_every', 'fed_eval_generation_rows'):
            if getattr(self, name) < 0:
                raise ValueError(f'--{name} must be >= 0, got {getattr(self, name)}.')
        if self.fed_eval_generation_rows and not self.fed_eval_every:
            raise ValueError('--fed_eval_generation_rows needs --fed_eval_every N (the rounds to evaluate).')
        if self.fedprox_mu < 0:
            raise ValueError(f'--fedprox_mu must be >= 0, got {self.fedprox_mu}.')
        local_client = self.local_client
        if local_client is not None and local_client >= self.client_num:
            raise ValueError(
                f'--fed_alg {self.fed_alg} names client {local_client}, but --client_num is '
                f'{self.client_num} (clients are 0..{self.client_num - 1}).'
            )
        self._check_engine()

    def _check_engine(self) -> None:
        """Validate the Flower engine fields (``--fed_engine`` and what goes with it)."""
        if self.fed_engine == 'in_process':
            return
        if self.supernodes < 1:
            raise ValueError(f'--supernodes must be >= 1, got {self.supernodes}.')
        if self.supernodes > self.client_num:
            raise ValueError(
                f'--supernodes {self.supernodes} > --client_num {self.client_num}: some SuperNodes would host no '
                'client. Use at most as many SuperNodes as clients.'
            )
        if not self.client_timeout > 0:
            raise ValueError(f'--client_timeout must be > 0 seconds, got {self.client_timeout}.')
        if self.fed_alg == 'central':
            raise ValueError(
                f"--fed_alg central pools every client's rows in one place, which --fed_engine {self.fed_engine} "
                'cannot do (data stays on the nodes). Use --fed_engine in_process.'
            )
        if self.fed_eval_every and not getattr(self, 'val_dataset', None):
            raise ValueError(
                f'--fed_eval_every with --fed_engine {self.fed_engine} needs --val_dataset: the server evaluates on '
                'its own validation file and never opens training rows (so --split_dataset_ratio cannot provide one).'
            )
        self.parsed_client_resources()

    def parsed_client_resources(self) -> Dict[str, float]:
        """``--client_resources`` as ``{'num_cpus': int, 'num_gpus': float}`` (defaults 1 and 0)."""
        resources: Dict[str, float] = {'num_cpus': 1, 'num_gpus': 0.0}
        for item in (self.client_resources or '').replace(' ', '').split(','):
            if not item:
                continue
            name, sep, value = item.partition('=')
            if not sep or name not in resources:
                raise ValueError(
                    f'--client_resources {self.client_resources!r}: expected num_cpus=N,num_gpus=G, got {item!r}.'
                )
            try:
                number = int(value) if name == 'num_cpus' else float(value)
            except ValueError:
                raise ValueError(f'--client_resources: {name} must be a number, got {value!r}.') from None
            if number < (1 if name == 'num_cpus' else 0):
                raise ValueError(
                    f'--client_resources: {name} must be >= {1 if name == "num_cpus" else 0}, got {value}.'
                )
            resources[name] = number
        return resources

    @property
    def local_client(self) -> Optional[int]:
        """The client trained by 'local<k>' ('local' means client 0), else None."""
        match = LOCAL_PATTERN.match(self.fed_alg)
        if match is None:
            return None
        return int(match.group(1) or 0)

    @property
    def weighting(self) -> str:
        """The effective ``fed_weighting``."""
        if self.fed_weighting is not None:
            return self.fed_weighting
        return 'episodes' if self.fed_alg == 'avg-epi' else 'samples'


FEDERATED_FLAGS = frozenset(f'--{field.name}' for field in fields(FederatedArguments))
