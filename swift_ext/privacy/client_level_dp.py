"""The server's side of client-level DP across a run: the noise multiplier, the clip norm (adapted per round with
``--dp_adaptive_clip``), each round's aggregator, the accountant and the budget.

Per round the round loop asks :meth:`ClientLevelDp.budget_stop` whether the round fits the budget, sends every
client :meth:`ClientLevelDp.client_dp` (distributed mode), folds the replies into :meth:`ClientLevelDp.aggregator`
(the strategy reads its ``mean()``), and closes the round with :meth:`ClientLevelDp.finish_round`, which charges the
accountant and adapts the clip norm. :meth:`state_dict` goes into the round checkpoint.

What a round is charged: the noise multiplier z of the run when the server adds the noise (central mode); in
distributed mode the noise present is the sum of the shares of the m' clients that replied, so the round is charged
z * sqrt(m' / m) (less noise when clients drop out). A round in which no update was aggregated releases nothing
derived from the clients (the global state stays) and is not charged. The budget check before a round assumes all m
clients reply; a distributed round with drop-outs can therefore end above the target, which is logged loudly and
stops the run.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from swift.utils import get_logger

from ..strategies.aggregation import State
from ..strategies.dp import (
    CLIP_BIT_NOISE,
    SERVER_PARTY,
    UPDATE_NOISE,
    ClientDp,
    DpMean,
    FixedDenominatorSum,
    NoisySum,
    next_clip_norm,
    noise_source,
    update_noise_multiplier,
)
from .accountant import FIXED_SIZE, ClientLevelAccountant

logger = get_logger()

CENTRAL, DISTRIBUTED = 'central', 'distributed'
DP_MODES = (CENTRAL, DISTRIBUTED)
CLIPPED_COUNT_STDDEV_PER_CLIENT = 1 / 20  # Andrew et al.: sigma_b = expected clients per round / 20
BUDGET_RELATIVE_SLACK = 1e-9  # round-off between composing round by round and calibrating R rounds at once


@dataclass(frozen=True)
class DpConfig:
    """A run's client-level DP settings (``--dp_*``) and the run shape they apply to."""

    mode: str  # 'central' | 'distributed'
    clip_norm: float  # C; the first round's C with adaptive clipping
    delta: float
    client_num: int
    clients_per_round: int  # m, the fixed denominator
    rounds: int
    seed: int
    noise_multiplier: Optional[float] = None  # z; None: calibrated so that `rounds` rounds spend target_epsilon
    target_epsilon: Optional[float] = None  # the budget: no round starts that would end above it
    adaptive_clip: bool = False
    target_quantile: float = 0.5  # gamma
    clip_lr: float = 0.2  # eta_C
    clipped_count_stddev: Optional[float] = None  # sigma_b; None: clients_per_round / 20
    secure_rng: bool = False


class ClientLevelDp:
    """See the module docstring."""

    def __init__(self, config: DpConfig) -> None:
        if config.mode not in DP_MODES:
            raise ValueError(f'--dp_mode {config.mode!r} is unknown; choose one of {DP_MODES}.')
        if not math.isfinite(config.clip_norm) and (config.noise_multiplier != 0 or config.adaptive_clip):
            raise ValueError(
                f'--dp_clip_norm {config.clip_norm}: noise (zC) and adaptive clipping need a finite clip norm; an '
                'infinite one is only meaningful with --dp_noise_multiplier 0 (no privacy, for testing).'
            )
        self.config = config
        self.accountant = ClientLevelAccountant(config.client_num, config.clients_per_round, config.delta, FIXED_SIZE)
        if config.noise_multiplier is None:
            if config.target_epsilon is None:
                raise ValueError('Client-level DP needs --dp_noise_multiplier or --dp_target_epsilon.')
            self.noise_multiplier = self.accountant.calibrate(config.target_epsilon, config.rounds)
            logger.info(
                f'[swift_ext] DP: noise multiplier {self.noise_multiplier:.6g} spends epsilon '
                f'{config.target_epsilon} (delta {config.delta}) over {config.rounds} rounds'
            )
        else:
            self.noise_multiplier = config.noise_multiplier
        self.clipped_count_stddev = None
        if config.adaptive_clip:
            self.clipped_count_stddev = config.clipped_count_stddev
            if self.clipped_count_stddev is None:
                self.clipped_count_stddev = config.clients_per_round * CLIPPED_COUNT_STDDEV_PER_CLIENT
        self.update_noise_multiplier = update_noise_multiplier(self.noise_multiplier, self.clipped_count_stddev)
        self.clip_norm = config.clip_norm
        self.stopped_by_budget = False
        if self.noise_multiplier == 0:
            logger.warning('[swift_ext] DP: noise multiplier 0, the run has NO privacy guarantee (epsilon infinite).')
        first_round = self.accountant.epsilon_after(self.noise_multiplier)
        if config.target_epsilon is not None and first_round > config.target_epsilon * (1 + BUDGET_RELATIVE_SLACK):
            raise ValueError(
                f'--dp_target_epsilon {config.target_epsilon}: a single round with noise multiplier '
                f'{self.noise_multiplier} already spends epsilon {first_round:.4g} (delta {config.delta}). Raise '
                '--dp_noise_multiplier or the target.'
            )

    # ------------------------------------------------------------------------------------------------ a round

    def budget_stop(self, round_number: int) -> Optional[Dict[str, Any]]:
        """None when round ``round_number`` fits the budget (or there is none); else the log row saying why not."""
        target = self.config.target_epsilon
        if target is None:
            return None
        after = self.accountant.epsilon_after(self.noise_multiplier)
        if after <= target * (1 + BUDGET_RELATIVE_SLACK):
            return None
        self.stopped_by_budget = True
        return {
            'type': 'privacy_stop',
            'round': round_number,
            'epsilon': finite_or_none(self.accountant.epsilon()),
            'epsilon_after_round': finite_or_none(after),
            'target_epsilon': target,
            'delta': self.config.delta,
        }

    def _stddev(self, multiplier: float) -> float:
        """multiplier * C, 0 without noise (also for C = inf)."""
        return multiplier * self.clip_norm if multiplier > 0 else 0.0

    def client_dp(self) -> Optional[ClientDp]:
        """What each client applies to its own update this round (distributed mode), else None."""
        if self.config.mode != DISTRIBUTED:
            return None
        share = math.sqrt(self.config.clients_per_round)
        return ClientDp(
            clip_norm=self.clip_norm,
            noise_stddev=self._stddev(self.update_noise_multiplier) / share,
            clip_bit_stddev=None if self.clipped_count_stddev is None else self.clipped_count_stddev / share,
            secure_rng=self.config.secure_rng,
        )

    def aggregator(self, round_number: int, global_state: State) -> FixedDenominatorSum:
        """The round's accumulator: the server clips and noises (central) or only sums (distributed)."""
        m = self.config.clients_per_round
        if self.config.mode == DISTRIBUTED:
            return NoisySum(global_state, m)
        seed, secure = self.config.seed, self.config.secure_rng
        return DpMean(
            global_state,
            m,
            clip_norm=self.clip_norm,
            noise_stddev=self._stddev(self.update_noise_multiplier),
            noise=noise_source(secure, seed, round_number, SERVER_PARTY, UPDATE_NOISE),
            bit_noise=noise_source(secure, seed, round_number, SERVER_PARTY, CLIP_BIT_NOISE),
            clipped_count_stddev=self.clipped_count_stddev,
        )

    def finish_round(self, round_number: int, aggregator: FixedDenominatorSum) -> Dict[str, Any]:
        """Charge the round, adapt C, and return the round's ``privacy`` log row."""
        clip_norm = self.clip_norm
        charged = None
        if aggregator.count:
            charged = self.noise_multiplier
            if self.config.mode == DISTRIBUTED:
                charged *= math.sqrt(aggregator.count / self.config.clients_per_round)
            self.accountant.charge(charged)
        fraction = aggregator.unclipped_fraction() if aggregator.count else None
        if fraction is not None:
            self.clip_norm = next_clip_norm(clip_norm, fraction, self.config.target_quantile, self.config.clip_lr)
        epsilon = self.accountant.epsilon()
        target = self.config.target_epsilon
        if target is not None and epsilon > target * (1 + BUDGET_RELATIVE_SLACK):  # the next budget_stop ends the run
            logger.error(
                f'[swift_ext] DP: round {round_number} ended at epsilon {epsilon:.4g} > --dp_target_epsilon {target}: '
                f'only {aggregator.count} of {self.config.clients_per_round} clients added their noise share.'
            )
        return {
            'type': 'privacy',
            'round': round_number,
            'epsilon': finite_or_none(epsilon),
            'delta': self.config.delta,
            'noise_multiplier': charged,  # None: nothing aggregated, nothing charged
            'clip_norm': clip_norm,
            'noisy_unclipped_fraction': fraction,  # adaptive clipping only; a DP estimate, not the true fraction
            'next_clip_norm': self.clip_norm,
        }

    # ------------------------------------------------------------------------------------------------ the run

    def summary(self) -> Dict[str, Any]:
        return {
            'mode': self.config.mode,
            'epsilon': finite_or_none(self.accountant.epsilon()),
            'delta': self.config.delta,
            'target_epsilon': self.config.target_epsilon,
            'noise_multiplier': self.noise_multiplier,
            'rounds_charged': len(self.accountant.charged),
            'stopped_by_budget': self.stopped_by_budget,
            'clip_norm': self.clip_norm,
            'sampling': 'fixed-size without replacement, replace-one neighbours',
        }

    def identity(self) -> Dict[str, Any]:
        """What a resumed run must share with its checkpoint for the accounting to stay valid."""
        c = self.config
        return {
            'mode': c.mode,
            'delta': c.delta,
            'client_num': c.client_num,
            'clients_per_round': c.clients_per_round,
            'noise_multiplier': self.noise_multiplier,
            'clipped_count_stddev': self.clipped_count_stddev,
            'sampling': FIXED_SIZE,
        }

    def state_dict(self) -> Dict[str, Any]:
        """JSON for the round checkpoint: the identity, every charged round, the current clip norm."""
        return {'identity': self.identity(), 'charged': list(self.accountant.charged), 'clip_norm': self.clip_norm}

    def load_state_dict(self, state: Optional[Dict[str, Any]], where: str) -> None:
        """Restore the accountant and the clip norm from a checkpoint's ``state_dict``."""
        self.check_resumable(state, where)
        self.accountant.replay(state['charged'])
        self.clip_norm = float(state['clip_norm'])

    def check_resumable(self, state: Optional[Dict[str, Any]], where: str) -> None:
        """Raise ``ValueError`` unless the checkpoint ``where`` (its ``state_dict``, None without DP) was written
        with this run's DP settings: a resume under other settings would invalidate the accounting."""
        if state is None:
            raise ValueError(
                f'--resume: {where} was written without client-level DP; its rounds are not accounted for. Resume '
                'without --dp_* arguments, or start a new run.'
            )
        if state['identity'] != self.identity():
            raise ValueError(
                f'--resume: {where} was written with DP settings {state["identity"]}, this run has '
                f'{self.identity()}. Pass the same --dp_* arguments (with --dp_target_epsilon alone the noise '
                f'multiplier depends on --round: pass --dp_noise_multiplier {state["identity"]["noise_multiplier"]} '
                'to keep it and change only the budget).'
            )


def finite_or_none(value: float) -> Optional[float]:
    """JSON has no infinity: an infinite epsilon (a round without noise) is written as null."""
    return value if math.isfinite(value) else None


__all__ = ['CENTRAL', 'DISTRIBUTED', 'DP_MODES', 'ClientLevelDp', 'DpConfig']
