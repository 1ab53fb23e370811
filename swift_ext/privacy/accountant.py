"""Client-level privacy accounting with Google's ``dp-accounting`` (its RDP accountant).

A round is one subsampled Gaussian mechanism over the federation's clients: clients are sampled, each sampled client
contributes its update clipped to C, and the sum of the clipped updates gets N(0, (zC)^2) (z: the noise multiplier of
the round; with adaptive clipping the effective z of the update and clip-bit sums together, see ``strategies.dp``).

Two samplings, each with the neighbouring relation its analysis uses:

- ``fixed_size`` (what the round loop does, ``federated.sampling``): m = ``--client_sample`` distinct clients of
  N = ``--client_num``, uniformly without replacement. dp-accounting's ``SampledWithoutReplacementDpEvent`` (Wang,
  Balle and Kasiviswanathan 2019, Theorem 27) is analysed under the **replace-one** relation: two federations of N
  clients that differ in the data of one client. Replacing a client's data can move the clipped sum by 2C (the old
  and the new clipped update may point in opposite directions), so the round is the Gaussian mechanism with
  multiplier z/2 relative to that sensitivity: the event carries z/2. The price is a larger epsilon for the same z.
- ``poisson`` (the setting McMahan et al. 2018 analyse): every client takes part in a round independently with
  probability q = m/N, so the number of clients varies; **add/remove** relation (one client's data present or
  absent), sensitivity C, multiplier z: ``PoissonSampledDpEvent(q, Gaussian(z))``. It gives a smaller epsilon for
  the same z, but it describes a sampling the round loop does not do. The two epsilons bound different
  neighbourhoods: an add/remove guarantee (eps, delta) implies a replace-one guarantee (2 eps, (1 + e^eps) delta).
  ``poisson`` is offered to state that difference and to check this accounting against Opacus, whose RDP
  accountant implements only Poisson sampling.

A round with noise multiplier 0 is not private: it is charged as dp-accounting's ``NonPrivateDpEvent`` (epsilon
infinite).
"""

import copy
import itertools
from typing import List, Optional

import dp_accounting
from dp_accounting.rdp import RdpAccountant

FIXED_SIZE, POISSON = 'fixed_size', 'poisson'
SAMPLINGS = (FIXED_SIZE, POISSON)
# Calibration searches z upwards from here; a round with z = 1e-3 already has an epsilon in the millions.
SMALLEST_CALIBRATED_NOISE = 1e-3


class ClientLevelAccountant:
    """The privacy spent by a run so far: one subsampled Gaussian event per charged round, composed by dp-accounting's
    RDP accountant; epsilon at the run's delta.

    ``charged`` (the noise multiplier of every charged round, in order) is the whole state: a resumed run replays it.
    """

    def __init__(self, client_num: int, clients_per_round: int, delta: float, sampling: str = FIXED_SIZE) -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f'Unknown sampling {sampling!r}; choose one of {SAMPLINGS}.')
        if not 1 <= clients_per_round <= client_num:
            raise ValueError(f'Clients per round must be in [1, {client_num}], got {clients_per_round}.')
        if not 0 < delta < 1:
            raise ValueError(f'delta must be in (0, 1), got {delta}.')
        self.client_num = client_num
        self.clients_per_round = clients_per_round
        self.delta = delta
        self.sampling = sampling
        self.charged: List[float] = []
        self._accountant = self._fresh()

    @property
    def neighboring_relation(self) -> dp_accounting.NeighboringRelation:
        if self.sampling == FIXED_SIZE:
            return dp_accounting.NeighboringRelation.REPLACE_ONE
        return dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE

    def _fresh(self) -> RdpAccountant:
        return RdpAccountant(neighboring_relation=self.neighboring_relation)

    def round_event(self, noise_multiplier: float) -> dp_accounting.DpEvent:
        """One round with noise std ``noise_multiplier`` * C on the sum of clipped updates."""
        if noise_multiplier < 0:
            raise ValueError(f'The noise multiplier must be >= 0, got {noise_multiplier}.')
        if noise_multiplier == 0:
            return dp_accounting.NonPrivateDpEvent()
        if self.sampling == FIXED_SIZE:
            return dp_accounting.SampledWithoutReplacementDpEvent(
                self.client_num, self.clients_per_round, dp_accounting.GaussianDpEvent(noise_multiplier / 2)
            )
        return dp_accounting.PoissonSampledDpEvent(
            self.clients_per_round / self.client_num, dp_accounting.GaussianDpEvent(noise_multiplier)
        )

    def charge(self, noise_multiplier: float, rounds: int = 1) -> None:
        """Compose ``rounds`` rounds with ``noise_multiplier``."""
        self._accountant.compose(self.round_event(noise_multiplier), rounds)
        self.charged += [float(noise_multiplier)] * rounds

    def epsilon(self) -> float:
        """Epsilon spent at ``delta`` (0 before the first round, infinite after a round without noise)."""
        return float(self._accountant.get_epsilon(self.delta)) if self.charged else 0.0

    def epsilon_after(self, noise_multiplier: float) -> float:
        """Epsilon if one more round with ``noise_multiplier`` were charged (nothing is charged)."""
        accountant = copy.deepcopy(self._accountant)
        accountant.compose(self.round_event(noise_multiplier))
        return float(accountant.get_epsilon(self.delta))

    def replay(self, charged: List[float]) -> None:
        """Restore a resumed run's spending: charge ``charged`` from scratch (equal neighbours composed at once)."""
        self._accountant, self.charged = self._fresh(), []
        for noise_multiplier, group in itertools.groupby(charged):
            self.charge(noise_multiplier, len(list(group)))

    def calibrate(self, target_epsilon: float, rounds: int, tolerance: Optional[float] = None) -> float:
        """The smallest noise multiplier (within ``tolerance``, dp-accounting's default 1e-6) whose ``rounds`` rounds
        spend at most ``target_epsilon``: dp-accounting's ``calibrate_dp_mechanism`` (bracketing + Brent's method,
        the result checked to lie on the safe side)."""
        if target_epsilon <= 0 or rounds < 1:
            raise ValueError(f'Calibration needs a positive target epsilon and rounds, got {target_epsilon}, {rounds}.')
        accountant = self._fresh()
        accountant.compose(self.round_event(SMALLEST_CALIBRATED_NOISE), rounds)
        if accountant.get_epsilon(self.delta) <= target_epsilon:
            raise ValueError(
                f'A target epsilon of {target_epsilon} is met by {rounds} rounds with noise multiplier '
                f'{SMALLEST_CALIBRATED_NOISE} already: it protects nothing. Choose a meaningful budget (e.g. <= 10).'
            )
        try:
            return float(
                dp_accounting.calibrate_dp_mechanism(
                    self._fresh,
                    lambda z: dp_accounting.SelfComposedDpEvent(self.round_event(z), rounds),
                    target_epsilon,
                    self.delta,
                    dp_accounting.LowerEndpointAndGuess(SMALLEST_CALIBRATED_NOISE, 1.0),
                    tol=tolerance,
                )
            )
        except (ValueError, dp_accounting.mechanism_calibration.NoBracketIntervalFoundError) as error:
            raise ValueError(
                f'dp-accounting found no noise multiplier for epsilon {target_epsilon} over {rounds} rounds with '
                f'delta {self.delta}: {error}'
            ) from error
