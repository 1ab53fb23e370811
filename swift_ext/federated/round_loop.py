"""The server: rounds start here. A round samples its clients, sends each a :class:`ClientTask` through the
transport, validates every :class:`ClientUpdate` as it arrives, folds the usable ones into a streaming weighted mean
and lets the strategy turn that mean into the next global state. After every round it writes the log, the global
model when due and an atomic checkpoint, then evaluates when due.

The loop knows neither the model's framework nor the transport: it holds states (``dict[str, Tensor]``), a
:class:`GlobalModel` (saving and evaluating the global state) and a
:class:`~swift_ext.federated.transport.ClientTransport`.

With client-level DP (``privacy``, :class:`~swift_ext.privacy.ClientLevelDp`) the round's accumulator is the DP one
(clipped, noised, fixed-denominator mean of the client deltas) instead of the weighted mean, each round is charged to
the accountant and logged with its epsilon, and no round starts that would end above ``--dp_target_epsilon``.

With a transport that only hands over sums (``sums_only``: secure aggregation) a round is one
:class:`~swift_ext.federated.transport.base.SummedUpdate`: without DP its sum_k w_k Delta_k / sum_k w_k is the
client mean (:class:`SummedMean`), under distributed DP the sum goes into the DP aggregator as one summed reply of
m' clients. No per-client check is possible there; the nodes refuse to add a non-finite or misshaped update.
"""

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Tuple

import torch
from safetensors.torch import save_file
from swift.utils import get_logger
from tqdm import tqdm

from ..strategies import FedAvg, FedProx, Scaffold, WeightedMean, non_finite_tensors
from ..strategies.aggregation import ClientMean, check_compatible, incompatibilities
from ..strategies.dp import ClientDp
from .checkpoint import RUN_IDENTITY, CheckpointStore, check_identity
from .client import EXCLUDED, FAILED, OK, ClientResult
from .console import console_logger, display_path, round_line
from .run_log import FedRunLog
from .sampling import CENTRAL_CLIENT, client_seed_offset, clients_for_round
from .state import State
from .transport.base import ClientTask, ClientTransport, ClientUpdate, SummedUpdate

if TYPE_CHECKING:  # dp-accounting is imported only by runs with client-level DP
    from ..privacy import ClientLevelDp

logger = get_logger()


class ClientFailedError(RuntimeError):
    """A client's training raised and ``--client_failure abort`` stops the run."""


@dataclass(frozen=True)
class RoundPlan:
    """The run's shape, from its arguments: who trains when, how updates are weighted, what is saved."""

    fed_alg: str
    rounds: int
    client_num: int
    client_sample: int
    seed: int
    weighting: str  # 'samples' | 'episodes' | 'uniform' (--fed_weighting, resolved)
    save_every: int
    client_failure: str  # 'skip' | 'abort'
    eval_every: int = 0
    save_client_updates: bool = False
    local_client: Optional[int] = None
    output_dir: str = '.'
    secure_aggregation: str = 'none'  # --secure_aggregation: 'none' | 'secaggplus'

    @property
    def identity(self) -> Dict[str, Any]:
        """What a resumed run must share with the checkpoint it continues."""
        return {key: getattr(self, key) for key in RUN_IDENTITY}


class GlobalModel(Protocol):
    """The server's copy of the model: where global states are saved and evaluated."""

    def save(self, round_number: int, state: State) -> str:
        """Write ``state`` as the global model of ``round_number``; return the directory."""
        ...

    def evaluate(self, state: State) -> Tuple[float, Optional[Dict[str, Any]]]:
        """(validation loss, action metrics or None) of ``state``."""
        ...


def client_weight(result: ClientResult, weighting: str) -> float:
    """w_k per ``--fed_weighting``: n_k rows, distinct ``episode_id`` values, or 1."""
    if weighting == 'uniform' or result.client == CENTRAL_CLIENT:
        return 1.0
    if weighting == 'samples':
        return float(result.samples)
    if result.episodes is None:
        raise ValueError(
            f'--fed_weighting episodes (or --fed_alg avg-epi): client {result.client} has no `episode_id` column in '
            'its data. Add the column or choose --fed_weighting samples|uniform.'
        )
    return float(result.episodes)


@dataclass
class RoundRecord:
    """What one round produced: the clients' log records in task order, and the next global state."""

    results: List[ClientResult]
    global_state: State
    aggregated: int
    privacy: Optional[Dict[str, Any]] = None  # the round's `privacy` log row (epsilon, clip norm) under DP
    secure: Optional[Dict[str, Any]] = None  # the round's `secure_aggregation` log row under secure aggregation


class SummedMean:
    """The client mean of a secure round: x + sum_k w_k Delta_k / sum_k w_k (float32) over its ``count`` clients."""

    def __init__(self, global_state: State, summed: SummedUpdate) -> None:
        check_compatible(global_state, summed.delta_sum, 'securely summed update')
        self.global_state = global_state
        self.summed = summed
        self.count = summed.count

    def add(self, state: State, weight: float) -> None:
        raise ValueError('A secure round has one sum; no client update can be added to it.')

    def mean(self) -> State:
        s = self.summed
        return {
            name: (x.to(torch.float64) + s.delta_sum[name] / s.weight_sum).float()
            for name, x in self.global_state.items()
        }


@dataclass
class RoundLoop:
    """Runs rounds ``start_round + 1 .. plan.rounds``; see the module docstring."""

    plan: RoundPlan
    strategy: FedAvg
    transport: ClientTransport
    global_model: GlobalModel
    store: CheckpointStore
    run_log: Optional[FedRunLog]  # None on processes that do not write (non-zero ranks)
    control_rounds: Dict[int, int] = field(default_factory=dict)  # SCAFFOLD: client -> round of its accepted c_i
    privacy: Optional['ClientLevelDp'] = None  # client-level DP (--dp_clip_norm), else plain weighted mean

    @property
    def writes(self) -> bool:
        return self.run_log is not None

    def resume(self, fresh_state: State) -> Tuple[State, int]:
        """(global state, rounds done) from the last complete checkpoint; ``(fresh_state, 0)`` without one (a run
        killed before its first checkpoint starts round 1 again). The log keeps only the rows of the rounds done."""
        checkpoint = self.store.load_latest()
        if checkpoint is None:
            global_state, rounds_done = fresh_state, 0
            console_logger().info(f'resuming: no complete round in {self.store.root}; starting round 1 again')
        else:
            check_identity(checkpoint.meta, self.plan.identity, checkpoint.path)
            check_compatible(fresh_state, checkpoint.global_state, f'checkpoint {checkpoint.path}')
            self.strategy.load_state_dict(checkpoint.strategy_state)
            check_privacy_resumable(self.privacy, checkpoint.meta, checkpoint.path)
            if self.privacy is not None:
                self.privacy.load_state_dict(checkpoint.meta['privacy'], checkpoint.path)
            self.control_rounds = {int(k): r for k, r in checkpoint.meta.get('control_rounds', {}).items()}
            global_state, rounds_done = checkpoint.global_state, checkpoint.round_number
            logger.info(f'[swift_ext] resuming after round {rounds_done} from {checkpoint.path}')
        if self.run_log is not None:
            self.run_log.truncate_after(rounds_done)
        return global_state, rounds_done

    def run(self, global_state: State, start_round: int = 0) -> Dict[str, Any]:
        """The rounds; returns the saved global model directories, the last round run and the communication
        totals."""
        plan = self.plan
        saved: List[str] = []
        totals = {'bytes_sent': 0, 'bytes_received': 0}
        last_round = start_round
        for round_idx in range(start_round, plan.rounds):
            round_number = round_idx + 1
            if self._budget_spent(round_number, global_state, saved):
                break
            start = time.perf_counter()
            record = self._run_round(round_idx, global_state)
            global_state, last_round = record.global_state, round_number
            if self.run_log is not None:
                row = self.run_log.log_round(round_number, record.results, time.perf_counter() - start)
                totals = {key: totals[key] + row[key] for key in totals}
                if record.secure is not None:
                    self.run_log.write(record.secure)
                if record.privacy is not None:
                    self.run_log.log_privacy(record.privacy)
            if not self.writes:
                continue
            saved_dir = None
            if round_number % plan.save_every == 0 or round_number == plan.rounds:
                saved_dir = self.global_model.save(round_number, global_state)
                saved.append(saved_dir)
            meta = {**plan.identity, 'control_rounds': {str(k): r for k, r in self.control_rounds.items()}}
            if self.privacy is not None:
                meta['privacy'] = self.privacy.state_dict()
            self.store.save(round_number, global_state, self.strategy.state_dict(), meta)
            eval_loss = None
            if plan.eval_every and round_number % plan.eval_every == 0:
                eval_loss, actions = self.global_model.evaluate(global_state)
                self.run_log.log_eval(round_number, eval_loss, actions)
            statuses = {result.client: result.status for result in record.results}
            console_logger().info(round_line(row, plan.rounds, statuses, eval_loss, record.privacy))
            if saved_dir is not None:
                console_logger().info(f'  saved {display_path(saved_dir)}')
        summary: Dict[str, Any] = {'global_models': saved, 'last_round': last_round, **totals}
        if self.privacy is not None:
            summary['privacy'] = self.privacy.summary()
        return summary

    def _budget_spent(self, round_number: int, global_state: State, saved: List[str]) -> bool:
        """True (logged, and the last round's global model saved) when round ``round_number`` would end above
        ``--dp_target_epsilon``; the previous round's checkpoint is already written."""
        stop = self.privacy.budget_stop(round_number) if self.privacy is not None else None
        if stop is None:
            return False
        logger.warning(
            f'[swift_ext] DP: stopping before round {round_number}: it would end at epsilon '
            f'{stop["epsilon_after_round"]} > --dp_target_epsilon {stop["target_epsilon"]} (spent: {stop["epsilon"]}).'
        )
        last = round_number - 1
        if self.writes:
            self.run_log.log_privacy(stop)
            if last and last % self.plan.save_every:  # not saved by the schedule
                saved.append(self.global_model.save(last, global_state))
        return True

    def _run_round(self, round_idx: int, global_state: State) -> RoundRecord:
        """Train this round's clients from ``global_state``; the global state is unchanged when no update is
        usable."""
        plan = self.plan
        clients = clients_for_round(
            plan.fed_alg, round_idx, plan.client_num, plan.client_sample, plan.seed, plan.local_client
        )
        client_dp = None if self.privacy is None else self.privacy.client_dp()
        tasks = [
            self._task(
                round_idx + 1, client_seed_offset(round_idx, slot, len(clients)), client, global_state, client_dp
            )
            for slot, client in enumerate(clients)
        ]
        mean = WeightedMean() if self.privacy is None else self.privacy.aggregator(round_idx + 1, global_state)
        if getattr(self.transport, 'sums_only', False):
            return self._run_summed_round(round_idx + 1, tasks, global_state, mean)
        clip_bits = client_dp is not None and client_dp.clip_bit_stddev is not None
        results: Dict[int, ClientResult] = {}
        # A terminal gets a bar of the round's clients, cleared when the round's line is printed.
        progress = tqdm(
            total=len(tasks), desc=f'round {round_idx + 1} clients', leave=False, disable=None if self.writes else True
        )
        for update in self.transport.train(tasks):
            results[update.result.client] = self._accept(round_idx + 1, update, global_state, mean, clip_bits)
            del update  # folded into the mean: freed before the next client trains (one state, not two)
            progress.update()
        progress.close()
        ordered = [results[client] for client in clients]
        next_state = global_state
        if mean.count == 0:
            logger.error(f'[swift_ext] round {round_idx + 1}: no client update was usable; global state unchanged.')
        else:
            next_state = self.strategy.aggregate(global_state, mean)
        privacy = None if self.privacy is None else self.privacy.finish_round(round_idx + 1, mean)
        return RoundRecord(ordered, next_state, mean.count, privacy)

    def _run_summed_round(
        self, round_number: int, tasks: List[ClientTask], global_state: State, mean: ClientMean
    ) -> RoundRecord:
        """The round as one sum (secure aggregation); ``mean`` is the DP aggregator under DP."""
        summed = self.transport.train_summed(tasks)
        for result in summed.results:
            self._check_abort(round_number, result)
        next_state = global_state
        if summed.count == 0:
            logger.error(f'[swift_ext] round {round_number}: no client update was summed; global state unchanged.')
        else:
            if self.privacy is None:
                mean = SummedMean(global_state, summed)
            elif summed.weight_sum != summed.count:
                raise ValueError(
                    f'round {round_number}: the secure sum weighs its {summed.count} clients {summed.weight_sum} in '
                    'all; DP-FedAvg weighs every client 1 (--fed_weighting uniform).'
                )
            else:
                mean.add_sum(summed.delta_sum, summed.count, summed.clip_bit_sum)
            next_state = self.strategy.aggregate(global_state, mean)
        privacy = None if self.privacy is None else self.privacy.finish_round(round_number, mean)
        return RoundRecord(summed.results, next_state, summed.count, privacy, summed.report)

    def _check_abort(self, round_number: int, result: ClientResult) -> None:
        """Raise :class:`ClientFailedError` for a failed client under ``--client_failure abort``."""
        if result.status == FAILED and self.plan.client_failure == 'abort':
            raise ClientFailedError(
                f'round {round_number}: client {result.client} failed (--client_failure abort): {result.detail}'
            )

    def _task(
        self, round_number: int, seed_offset: int, client: int, global_state: State, dp: Optional[ClientDp]
    ) -> ClientTask:
        task = ClientTask(
            round_number=round_number, client=client, seed_offset=seed_offset, global_state=global_state, dp=dp
        )
        if isinstance(self.strategy, FedProx):
            task.proximal_mu = self.strategy.mu
        if isinstance(self.strategy, Scaffold):
            task.server_control = self.strategy.server_control(global_state)
            task.control_round = self.control_rounds.get(client)
        return task

    def _accept(
        self,
        round_number: int,
        update: ClientUpdate,
        global_state: State,
        mean: ClientMean,
        clip_bits: bool = False,
    ) -> ClientResult:
        """Apply ``--client_failure`` and the update rules; add a usable update to ``mean`` (and its clip bit when
        ``clip_bits``: distributed DP with adaptive clipping)."""
        result = update.result
        result.weight = client_weight(result, self.plan.weighting) if result.samples else 0.0
        self._check_abort(round_number, result)
        if result.status != OK:
            return result
        problems = update_problems(global_state, update, clip_bits)
        if problems:
            logger.error(
                f'[swift_ext] round {round_number}: client {result.client} returned an unusable update and is '
                f'excluded: {problems[:10]}'
            )
            result.status, result.detail = EXCLUDED, problems
            return result
        mean.add(update.state, weight=result.weight)
        if clip_bits:
            mean.add_clip_bit(update.clip_bit)
        if update.control_delta is not None:
            self.strategy.add_control_delta(update.control_delta)
            self.control_rounds[result.client] = round_number
        if self.plan.save_client_updates and self.writes:
            save_client_update(self.plan.output_dir, round_number, update)
        return result


def check_privacy_resumable(privacy: Optional['ClientLevelDp'], meta: Dict[str, Any], where: str) -> None:
    """Raise ``ValueError`` when the checkpoint ``where`` (its ``meta``) and this run disagree on client-level DP:
    on or off, or its settings."""
    if privacy is not None:
        privacy.check_resumable(meta.get('privacy'), where)
    elif meta.get('privacy') is not None:
        raise ValueError(f'--resume: {where} was written with client-level DP; pass the same --dp_* arguments.')


def update_problems(global_state: State, update: ClientUpdate, clip_bit: bool = False) -> List[str]:
    """Why an update cannot be aggregated: keys or shapes that differ from the global state, or tensors holding
    NaN/Inf (named), in y_k and in SCAFFOLD's Delta c_i; a missing, unexpected or non-finite clip bit (expected when
    ``clip_bit``). Empty when it is usable."""
    problems = []
    if clip_bit != (update.clip_bit is not None):
        problems.append(f'clip bit: {"missing" if clip_bit else "unexpected"} (distributed DP, adaptive clipping)')
    elif clip_bit and not math.isfinite(update.clip_bit):
        problems.append(f'clip bit: {update.clip_bit}')
    for what, state in (('update', update.state), ('control delta', update.control_delta)):
        if state is None:
            if what == 'update':
                problems.append('update: no state returned')
            continue
        mismatch = incompatibilities(global_state, state)
        problems += [f'{what}: {problem}' for problem in mismatch]
        if not mismatch:
            problems += non_finite_tensors(state)
    return problems


def save_client_update(output_dir: str, round_number: int, update: ClientUpdate) -> None:
    """``client_updates/round_{r}/client_{k}.safetensors`` and its ``.json`` record (--save_client_updates)."""
    directory = os.path.join(output_dir, 'client_updates', f'round_{round_number}')
    os.makedirs(directory, exist_ok=True)
    name = f'client_{update.result.client}'
    save_file({key: t.contiguous() for key, t in update.state.items()}, os.path.join(directory, f'{name}.safetensors'))
    with open(os.path.join(directory, f'{name}.json'), 'w', encoding='utf-8') as f:
        json.dump(update.result.log_row(round_number), f, indent=2)


__all__ = ['ClientFailedError', 'GlobalModel', 'RoundLoop', 'RoundPlan', 'client_weight', 'update_problems']
