"""Federated-learning arguments, mixed into ms-swift's ``SftArguments`` by :mod:`swift_ext.arguments.sft`.

This module imports nothing heavy: the ``swift sft`` hook reads the field names at interpreter start-up.
"""

import math
import re
from dataclasses import dataclass, fields
from typing import Dict, Literal, Optional

SECAGG_ALGS = ('fedavg', 'avg-epi', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad')
SECAGG_DEFAULTS = {
    'secagg_num_shares': 0,
    'secagg_reconstruction_threshold': 0,
    'secagg_clipping_range': None,
    'secagg_quantization_range': 4194304,
}
FED_ALGS = ('fedavg', 'avg-epi', 'fedprox', 'scaffold', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'central')
LOCAL_PATTERN = re.compile(r'^local(\d*)$')
ADAPTIVE_CLIP_SETTINGS = ('dp_target_quantile', 'dp_clip_lr', 'dp_clipped_count_stddev')
DP_SETTINGS = (
    'dp_noise_multiplier', 'dp_target_epsilon', 'dp_delta', 'dp_mode', 'dp_adaptive_clip', 'dp_secure_rng',
) + ADAPTIVE_CLIP_SETTINGS  # fmt: skip


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
            must hold integers in [0, client_num) and name client client_num - 1 (see `client_column`). Defaults to
            10.
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
        client_column (str): Where rows get their client: 'client_id' reads the dataset's `client_id` column
            (FedMABench's `client_number` when it has none) and deals rows by `partition` only to files without
            either; 'none' ignores those columns and deals every file's rows anew by `partition` into `client_num`
            clients (e.g. to train 4 clients on data partitioned for 10). Defaults to 'client_id'.
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
        dp_clip_norm (Optional[float]): Turns on client-level differential privacy (DP-FedAvg, McMahan et al. 2018)
            and sets the clip norm C: every sampled client's update y_k - x is scaled to L2 norm at most C over all
            trainable tensors together, the sum of the clipped updates gets Gaussian noise N(0, (zC)^2) and is divided
            by the number of sampled clients (uniform weights, fixed denominator), for every `fed_alg`. With
            `dp_adaptive_clip` it is the first round's C. Not with 'scaffold' (its control variates would leave the
            clients un-noised), 'central', 'local<k>' or 'avg-epi'. Defaults to None (no DP).
        dp_noise_multiplier (Optional[float]): z, the noise standard deviation relative to C. 0 gives no privacy
            (testing only). Defaults to None: derived from `dp_target_epsilon` over `round` rounds.
        dp_target_epsilon (Optional[float]): The privacy budget epsilon (at `dp_delta`). Without
            `dp_noise_multiplier`, z is the smallest noise that spends it in `round` rounds; with it, the run stops
            before a round that would end above it. Epsilon is computed with dp-accounting's RDP accountant for
            `client_sample` of `client_num` clients drawn without replacement (replace-one neighbours). Defaults to
            None.
        dp_delta (Optional[float]): delta of the (epsilon, delta) guarantee; required with DP and below
            1 / `client_num`. Defaults to None.
        dp_mode (Optional[str]): 'central': the server clips each update and adds the noise (it sees every raw
            update). 'distributed': each client clips its own update and adds its share N(0, (zC)^2 / m) of the
            noise (m = clients per round) before replying; the server only sums. Defaults to None ('central').
        dp_adaptive_clip (bool): Adapt C every round towards the `dp_target_quantile` of the update norms (Andrew et
            al. 2021, geometric update) from a noisy count of unclipped clients; part of the noise budget goes to
            that count (`dp_clipped_count_stddev`). Defaults to False.
        dp_target_quantile (Optional[float]): gamma, the fraction of updates that should be left unclipped.
            Defaults to None (0.5, with `dp_adaptive_clip`).
        dp_clip_lr (Optional[float]): eta_C, the learning rate of C <- C * exp(-eta_C (unclipped fraction - gamma)).
            Defaults to None (0.2, Andrew et al., with `dp_adaptive_clip`).
        dp_clipped_count_stddev (Optional[float]): sigma_b, the noise on the count of unclipped clients; the update
            noise multiplier becomes (z^-2 - (2 sigma_b)^-2)^-1/2, so 2 sigma_b must exceed z. Defaults to None
            (clients per round / 20, Andrew et al., with `dp_adaptive_clip`).
        dp_secure_rng (bool): Draw the DP noise from the operating system's CSPRNG instead of generators seeded
            with (seed, round, client), which anyone who knows the seed can recompute (and subtract). Real
            deployments need it; runs are then not reproducible. Defaults to False.
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
        secure_aggregation (str): 'secaggplus': with `fed_engine` 'flower', every round goes through Flower's
            SecAgg+ (its secaggplus_mod on the nodes and its SecAggPlusWorkflow on the server): each client uploads
            only its masked, quantised update (Delta_k = y_k - x weighted by `fed_weighting`, or its clipped, noised
            Delta_k with `dp_mode` 'distributed') and the server only ever holds the round's sum. Needs one client
            per SuperNode (`supernodes` = `client_num`), at least 3 clients per round, `wire_dtype` 'float32', and
            `fed_alg` fedavg, avg-epi, fedprox, fedavgm, fedadam, fedyogi or fedadagrad (SCAFFOLD's per-client
            control variates and `save_client_updates` need individual updates). 'none': updates travel as they
            are. Defaults to 'none'.
        secagg_num_shares (int): With `secure_aggregation`: the SecAgg+ neighbours each client secret-shares its
            keys with (itself included; at least 3). Defaults to 0 (every client of the round).
        secagg_reconstruction_threshold (int): With `secure_aggregation`: shares needed to unmask a client (at least
            2, below `secagg_num_shares`); the round survives a client dropping out while every client keeps this
            many live neighbours. Defaults to 0 (one fewer than the shares: one dropout per round tolerated).
        secagg_clipping_range (Optional[float]): With `secure_aggregation`: R, each entry of a client's vector is
            clipped to [-R, R] before quantisation. Defaults to None (with `dp_mode` 'distributed' the round's clip
            norm plus 6 noise standard deviations per client, else 8.0, Flower's default).
        secagg_quantization_range (int): With `secure_aggregation`: Q, the quantisation levels over [-R, R] (2^bits);
            the reconstructed mean is off by less than 2R/Q per entry with uniform weights (logged every round as
            `mean_error_bound`). Clients per round times Q must stay below 2^32. Defaults to 4194304.
    """

    fed_alg: str = 'fedavg'
    round: int = 10
    client_num: int = 10
    client_sample: int = 2
    round_per_epoch: int = 10
    save_every: int = 5
    partition: Literal['iid'] = 'iid'
    client_column: Literal['client_id', 'none'] = 'client_id'
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
    dp_clip_norm: Optional[float] = None
    dp_noise_multiplier: Optional[float] = None
    dp_target_epsilon: Optional[float] = None
    dp_delta: Optional[float] = None
    dp_mode: Optional[Literal['central', 'distributed']] = None
    dp_adaptive_clip: bool = False
    dp_target_quantile: Optional[float] = None
    dp_clip_lr: Optional[float] = None
    dp_clipped_count_stddev: Optional[float] = None
    dp_secure_rng: bool = False
    fed_engine: Literal['in_process', 'flower', 'simulation'] = 'in_process'
    supernodes: int = 2
    client_timeout: float = 1800.0
    client_resources: Optional[str] = None
    wire_dtype: Literal['float32', 'bfloat16', 'float16'] = 'float32'
    secure_aggregation: Literal['none', 'secaggplus'] = 'none'
    secagg_num_shares: int = 0
    secagg_reconstruction_threshold: int = 0
    secagg_clipping_range: Optional[float] = None
    secagg_quantization_range: int = 4194304

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
        self._check_dp()
        self._check_engine()
        self._check_secure_aggregation()

    def _check_dp(self) -> None:
        """Validate the ``--dp_*`` fields (client-level DP is on when ``--dp_clip_norm`` is given)."""
        given = [f'--{name}' for name in DP_SETTINGS if getattr(self, name) not in (None, False)]
        if self.dp_clip_norm is None:
            if given:
                raise ValueError(f'{", ".join(given)}: client-level DP is on only with --dp_clip_norm C.')
            return
        if not self.dp_clip_norm > 0:
            raise ValueError(f'--dp_clip_norm must be > 0, got {self.dp_clip_norm}.')
        if self.dp_noise_multiplier is None and self.dp_target_epsilon is None:
            raise ValueError('Client-level DP needs --dp_noise_multiplier z or --dp_target_epsilon eps (z derived).')
        if self.dp_noise_multiplier is not None and not self.dp_noise_multiplier >= 0:
            raise ValueError(f'--dp_noise_multiplier must be >= 0, got {self.dp_noise_multiplier}.')
        if self.dp_target_epsilon is not None and not self.dp_target_epsilon > 0:
            raise ValueError(f'--dp_target_epsilon must be > 0, got {self.dp_target_epsilon}.')
        if self.dp_delta is None or not 0 < self.dp_delta < 1 / self.client_num:
            raise ValueError(
                f'--dp_delta must be given, > 0 and below 1/client_num = {1 / self.client_num:.4g} (a delta of '
                f"1/client_num allows publishing one client's data outright), got {self.dp_delta}; e.g. 1e-5."
            )
        if not math.isfinite(self.dp_clip_norm) and (self.dp_noise_multiplier != 0 or self.dp_adaptive_clip):
            raise ValueError('--dp_clip_norm inf is only allowed with --dp_noise_multiplier 0 (no privacy).')
        refused = {
            'scaffold': "SCAFFOLD's control-variate updates would reach the server un-clipped and un-noised",
            'central': 'one pooled client has no client-level privacy to protect',
            'avg-epi': 'it weighs clients by episodes; use --fed_alg fedavg (uniform weights with DP)',
        }
        if self.fed_alg in refused or self.local_client is not None:
            reason = refused.get(self.fed_alg, 'one fixed client every round is not sampled')
            raise ValueError(
                f'--dp_clip_norm: client-level DP is not available with --fed_alg {self.fed_alg}: {reason}.'
            )
        if self.fed_weighting not in (None, 'uniform'):
            raise ValueError(
                f'--fed_weighting {self.fed_weighting} with client-level DP: DP-FedAvg weighs every client 1 with a '
                'fixed denominator (the bounded-weight variant of McMahan et al. is not implemented). Use '
                '--fed_weighting uniform, or leave it unset (uniform with DP).'
            )
        adaptive_only = [name for name in ADAPTIVE_CLIP_SETTINGS if getattr(self, name) is not None]
        if adaptive_only and not self.dp_adaptive_clip:
            raise ValueError(f'{", ".join(f"--{n}" for n in adaptive_only)} need --dp_adaptive_clip true.')
        if self.dp_target_quantile is not None and not 0 <= self.dp_target_quantile <= 1:
            raise ValueError(f'--dp_target_quantile must be in [0, 1], got {self.dp_target_quantile}.')
        for name in ('dp_clip_lr', 'dp_clipped_count_stddev'):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f'--{name} must be > 0, got {getattr(self, name)}.')

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

    def _check_secure_aggregation(self) -> None:
        """Validate ``--secure_aggregation`` and the ``--secagg_*`` fields."""
        given = [f'--{name}' for name, default in SECAGG_DEFAULTS.items() if getattr(self, name) != default]
        if self.secure_aggregation == 'none':
            if given:
                raise ValueError(f'{", ".join(given)}: only with --secure_aggregation secaggplus.')
            return
        problems = []
        if self.fed_engine != 'flower':
            problems.append(
                f'it runs on the Flower deployment engine (--fed_engine flower), not --fed_engine {self.fed_engine}'
            )
        if self.fed_alg not in SECAGG_ALGS:
            problems.append(
                f'--fed_alg {self.fed_alg} needs individual client updates (SCAFFOLD: its control variates; local<k>: '
                f'one client); use one of {", ".join(SECAGG_ALGS)}'
            )
        if self.client_sample < 3:
            problems.append(
                f'--client_sample {self.client_sample}: the sum of fewer than 3 clients reveals each one to the others'
            )
        if self.supernodes != self.client_num:
            problems.append('SecAgg+ masks per SuperNode: give every client its own (--supernodes = --client_num)')
        if self.dp_clip_norm is not None and (self.dp_mode or 'central') != 'distributed':
            problems.append('client-level DP with it must be --dp_mode distributed (central DP clips each update)')
        if self.save_client_updates:
            problems.append('--save_client_updates needs individual updates, which the server never receives')
        if self.wire_dtype != 'float32':
            problems.append(f'--wire_dtype {self.wire_dtype}: the masked upload is integer; use float32')
        shares = self.secagg_num_shares or self.client_sample
        if self.secagg_num_shares and not 3 <= self.secagg_num_shares <= self.client_sample:
            problems.append(f'--secagg_num_shares must be 0 or in [3, --client_sample], got {self.secagg_num_shares}')
        threshold = self.secagg_reconstruction_threshold
        if threshold and not 2 <= threshold < shares:
            problems.append(f'--secagg_reconstruction_threshold must be 0 or in [2, {shares - 1}], got {threshold}')
        if self.secagg_clipping_range is not None and not self.secagg_clipping_range > 0:
            problems.append(f'--secagg_clipping_range must be > 0, got {self.secagg_clipping_range}')
        if not 2 <= self.secagg_quantization_range < 2**32 // max(self.client_sample, 1):
            problems.append(
                f'--secagg_quantization_range must be >= 2 and below 2^32 / --client_sample = '
                f'{2**32 // max(self.client_sample, 1)} (the masked sum is taken modulo 2^32), got '
                f'{self.secagg_quantization_range}'
            )
        if problems:
            raise ValueError('--secure_aggregation secaggplus: ' + '; '.join(problems) + '.')

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
        """The effective ``fed_weighting`` (uniform under client-level DP)."""
        if self.fed_weighting is not None:
            return self.fed_weighting
        if self.dp_clip_norm is not None:
            return 'uniform'
        return 'episodes' if self.fed_alg == 'avg-epi' else 'samples'


FEDERATED_FLAGS = frozenset(f'--{field.name}' for field in fields(FederatedArguments))
