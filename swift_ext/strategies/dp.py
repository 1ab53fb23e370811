"""Client-level differential privacy for every server strategy: DP-FedAvg of McMahan et al. 2018, "Learning
Differentially Private Recurrent Language Models" (arXiv:1710.06963), with the adaptive clipping of Andrew et al.
2021, "Differentially Private Learning with Adaptive Clipping" (arXiv:1905.03871).

Client k's update is Delta_k = y_k - x (x: the round's global state), clipped over all trainable tensors together:

    clip(Delta_k, C) = Delta_k * min(1, C / ||Delta_k||_2)

The round's update is McMahan et al.'s fixed-denominator estimator (f~_f with w_k = 1):

    Delta~ = (sum_k clip(Delta_k, C) + N(0, (z_Delta C)^2 I)) / m          client mean handed on: x + Delta~

with m = the number of clients the round samples (``--client_sample``), whether or not each one replied. The
denominator is public and does not depend on who took part, so the sum's sensitivity alone (C per client) bounds the
mean's and the noise is calibrated to it; the paper's other estimator divides by the (noisy) total weight of the
clients that took part, which only pays off with unequal weights. Weights are uniform (w_k = 1): the bounded-weight
variant is not implemented. The strategy takes x + Delta~ as the round's client mean (FedAvg adopts it, FedAvgM and
FedAdam/FedYogi/FedAdagrad use Delta~ as their pseudo-gradient), so the DP step is the same for every strategy.

Adaptive clipping (Andrew et al., Algorithm 1, geometric update): each client also reports whether it was not clipped,
b_k = 1[||Delta_k|| <= C], shifted to b_k - 1/2 so that one client moves the sum by at most 1/2; the server estimates
the unclipped fraction and moves C towards the target quantile gamma with learning rate eta_C:

    b~      = clamp((sum_k (b_k - 1/2) + N(0, sigma_b^2)) / m + 1/2, 0, 1)
    C_{t+1} = C_t * exp(-eta_C (b~ - gamma))

The run's noise multiplier z is split so that the pair of sums is the Gaussian mechanism with multiplier z:

    z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)          (needs 2 sigma_b > z; the paper's sigma_b = m / 20)

Central mode: the server clips and adds both noises (:class:`DpMean`). Distributed mode: each client clips its own
update and adds its share N(0, (z_Delta C)^2 / m), and N(0, sigma_b^2 / m) on its shifted bit, before replying
(:class:`ClientDp`); the server only sums (:class:`NoisySum`): m shares of variance s^2 / m add up to s^2. Nothing
on the server looks at one client's reply, so secure aggregation can replace that sum (``NoisySum.add_sum``).

Noise comes from :class:`SeededNoise` (a torch generator seeded per (seed, round, party, purpose), reproducible, never
the global RNGs; whoever knows the run's seed can recompute and subtract it) or :class:`SystemNoise` (the operating
system's CSPRNG, ``--dp_secure_rng``), which real deployments need.
"""

import math
import os
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from .aggregation import State, check_compatible

CLIP_BIT_SHIFT = 0.5  # b_k - 1/2 in {-1/2, 1/2}: one client moves the bit sum by at most 1/2 (add/remove)
UPDATE_NOISE, CLIP_BIT_NOISE = 0, 1  # the two purposes a party draws noise for, each from its own generator
SERVER_PARTY = 0  # the seed part of the server's noise; client k's is k + 1


class GaussianNoise(Protocol):
    """A source of independent standard normal draws in float64."""

    def standard_normal(self, shape: Sequence[int]) -> torch.Tensor: ...


class SeededNoise:
    """Standard normals from a ``torch.Generator`` seeded with ``seed_parts`` (e.g. (seed, round, party, purpose))
    through numpy's SeedSequence: reproducible, independent across distinct parts, and never the global RNGs."""

    def __init__(self, *seed_parts: int) -> None:
        seed = int(np.random.SeedSequence([int(part) for part in seed_parts]).generate_state(1, np.uint64)[0])
        self.generator = torch.Generator().manual_seed(seed & (2**63 - 1))

    def standard_normal(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator, dtype=torch.float64)


class SystemNoise:
    """Standard normals from the operating system's CSPRNG (``os.urandom``) by the Box-Muller transform:
    sqrt(-2 ln u1) * (cos 2 pi u2, sin 2 pi u2) with u1, u2 uniform on (0, 1] from 53 random bits each.

    Unpredictable to whoever knows the run's seed; not reproducible. Like every floating-point sampler it does not
    address the attacks on floating-point noise (Mironov 2012)."""

    def standard_normal(self, shape: Sequence[int]) -> torch.Tensor:
        count = math.prod(shape)
        pairs = (count + 1) // 2
        bits = np.frombuffer(os.urandom(16 * pairs), dtype=np.uint64).reshape(2, pairs)
        u1, u2 = ((bits >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
        radius = np.sqrt(-2.0 * np.log(u1))
        normals = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
        return torch.from_numpy(normals[:count].copy()).reshape(tuple(shape))


def noise_source(secure: bool, *seed_parts: int) -> GaussianNoise:
    """:class:`SystemNoise` when ``secure``, else :class:`SeededNoise` over ``seed_parts``."""
    return SystemNoise() if secure else SeededNoise(*seed_parts)


def gaussian_like(state: State, stddev: float, noise: GaussianNoise) -> State:
    """N(0, stddev^2) per element, float64, in the state's key order."""
    return {name: stddev * noise.standard_normal(tensor.shape) for name, tensor in state.items()}


def l2_norm(state: State) -> float:
    """||state||_2 over all tensors together (float64)."""
    return math.sqrt(sum(float(tensor.to(torch.float64).square().sum()) for tensor in state.values()))


def clip_update(delta: State, clip_norm: float) -> Tuple[State, float]:
    """(delta * min(1, C / ||delta||), ||delta||) in float64; an update already within C is returned unchanged."""
    norm = l2_norm(delta)
    scale = clip_norm / norm if norm > clip_norm else 1.0
    return {name: tensor.to(torch.float64) * scale for name, tensor in delta.items()}, norm


def update_delta(global_state: State, state: State) -> State:
    """Delta_k = y_k - x in float64, after checking keys and shapes."""
    check_compatible(global_state, state, 'client update')
    return {name: state[name].to(torch.float64) - x.to(torch.float64) for name, x in global_state.items()}


def clip_bit(norm: float, clip_norm: float) -> float:
    """b_k - 1/2: +1/2 when the update was within the clip norm (not clipped), -1/2 when it was clipped."""
    return (1.0 if norm <= clip_norm else 0.0) - CLIP_BIT_SHIFT


def update_noise_multiplier(noise_multiplier: float, clipped_count_stddev: Optional[float]) -> float:
    """z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2) (Andrew et al.); z itself without adaptive clipping (sigma_b None)."""
    if clipped_count_stddev is None or noise_multiplier == 0:
        return noise_multiplier
    if 2 * clipped_count_stddev <= noise_multiplier:
        raise ValueError(
            f'Adaptive clipping: the clipped-count noise sigma_b = {clipped_count_stddev} leaves no noise for the '
            f'update (z_Delta needs 2 sigma_b > z = {noise_multiplier}). Raise --dp_clipped_count_stddev above '
            f'{noise_multiplier / 2} (Andrew et al. use clients per round / 20).'
        )
    return (noise_multiplier**-2 - (2 * clipped_count_stddev) ** -2) ** -0.5


def next_clip_norm(clip_norm: float, unclipped_fraction: float, target_quantile: float, clip_lr: float) -> float:
    """Andrew et al.'s geometric update C <- C * exp(-eta_C (b~ - gamma))."""
    return clip_norm * math.exp(-clip_lr * (unclipped_fraction - target_quantile))


class FixedDenominatorSum:
    """The round's running sums (clipped, possibly noised, updates and shifted clip bits) and the fixed-denominator
    mean over the m sampled clients. Subclasses decide what one client adds and what noise the server adds."""

    def __init__(self, global_state: State, expected_clients: int) -> None:
        if expected_clients < 1:
            raise ValueError(f'The fixed denominator needs at least one sampled client, got {expected_clients}.')
        self.global_state = global_state
        self.expected_clients = expected_clients
        self.count = 0
        self.bit_count = 0
        self._sum: State = {name: torch.zeros_like(x, dtype=torch.float64) for name, x in global_state.items()}
        self._bit_sum = 0.0
        self._mean: Optional[State] = None
        self._fraction: Optional[float] = None

    def _add(self, delta: State, bit: Optional[float]) -> None:
        if self._mean is not None:
            raise ValueError('The round was already aggregated; no update can be added after mean().')
        for name, tensor in delta.items():
            self._sum[name].add_(tensor.to(torch.float64))
        self.count += 1
        if bit is not None:
            self._bit_sum += bit
            self.bit_count += 1

    def _server_noise(self) -> Optional[State]:
        return None

    def _server_bit_noise(self) -> float:
        return 0.0

    @staticmethod
    def _check_weight(weight: float) -> None:
        if weight != 1.0:
            raise ValueError(
                f'DP-FedAvg weighs every client 1 (fixed denominator), got weight {weight}; use --fed_weighting '
                'uniform.'
            )

    def mean(self) -> State:
        """x + (sum + server noise) / m as float32; the noise is drawn once, on the first call."""
        if self.count == 0:
            raise ValueError('No update was added to the round.')
        if self._mean is None:
            noise = self._server_noise() or {}
            self._mean = {
                name: (x.to(torch.float64) + (self._sum[name] + noise.get(name, 0.0)) / self.expected_clients).float()
                for name, x in self.global_state.items()
            }
        return self._mean

    def unclipped_fraction(self) -> Optional[float]:
        """b~ = clamp((sum_k (b_k - 1/2) + noise) / m + 1/2, 0, 1); None when no bit was reported (fixed clipping)."""
        if self.bit_count == 0:
            return None
        if self.bit_count != self.count:
            raise ValueError(f'{self.count} updates but {self.bit_count} clip bits: every update needs its bit.')
        if self._fraction is None:
            estimate = (self._bit_sum + self._server_bit_noise()) / self.expected_clients + CLIP_BIT_SHIFT
            self._fraction = min(1.0, max(0.0, estimate))
        return self._fraction


class DpMean(FixedDenominatorSum):
    """Central DP: the server clips each client's update, adds N(0, (z_Delta C)^2) to the sum and, with adaptive
    clipping, N(0, sigma_b^2) to the sum of shifted clip bits (``clipped_count_stddev``)."""

    def __init__(
        self,
        global_state: State,
        expected_clients: int,
        clip_norm: float,
        noise_stddev: float,
        noise: GaussianNoise,
        bit_noise: GaussianNoise,
        clipped_count_stddev: Optional[float] = None,
    ) -> None:
        super().__init__(global_state, expected_clients)
        self.clip_norm = clip_norm
        self.noise_stddev = noise_stddev
        self.noise = noise
        self.bit_noise = bit_noise
        self.clipped_count_stddev = clipped_count_stddev

    def add(self, state: State, weight: float) -> None:
        """Clip Delta_k = y_k - x to C and add it (and, with adaptive clipping, its shifted bit) to the sums."""
        self._check_weight(weight)
        clipped, norm = clip_update(update_delta(self.global_state, state), self.clip_norm)
        self._add(clipped, None if self.clipped_count_stddev is None else clip_bit(norm, self.clip_norm))

    def _server_noise(self) -> Optional[State]:
        return gaussian_like(self.global_state, self.noise_stddev, self.noise) if self.noise_stddev > 0 else None

    def _server_bit_noise(self) -> float:
        if not self.clipped_count_stddev:
            return 0.0
        return self.clipped_count_stddev * float(self.bit_noise.standard_normal((1,))[0])


class NoisySum(FixedDenominatorSum):
    """Distributed DP, server side: each reply is a client's already clipped and noised Delta_k (and, with adaptive
    clipping, its noised shifted bit); the server sums them and divides by m, never clipping or noising again."""

    def add(self, delta: State, weight: float) -> None:
        self._check_weight(weight)
        check_compatible(self.global_state, delta, 'noised client update')
        self._add(delta, None)

    def add_clip_bit(self, bit: float) -> None:
        """A client's noised b_k - 1/2."""
        self._bit_sum += bit
        self.bit_count += 1

    def add_sum(self, delta_sum: State, count: int, bit_sum: Optional[float] = None) -> None:
        """The whole round as one summed reply (secure aggregation): sum_k of the ``count`` clients' clipped, noised
        Delta_k and, with adaptive clipping, of their noised b_k - 1/2. The round is then charged for these ``count``
        clients' noise shares (``ClientLevelDp.finish_round``)."""
        if self.count:
            raise ValueError('A summed reply is the whole round; the round already has updates.')
        if count < 1:
            raise ValueError(f'A summed reply needs at least one client, got {count}.')
        check_compatible(self.global_state, delta_sum, 'securely summed update')
        self._add(delta_sum, None)
        self.count = count
        if bit_sum is not None:
            self._bit_sum += bit_sum
            self.bit_count = count


@dataclass(frozen=True)
class ClientDp:
    """What a client does to its own update under distributed DP (sent in the round's task).

    Attributes:
        clip_norm: C of this round.
        noise_stddev: its share of the update noise, z_Delta C / sqrt(m).
        clip_bit_stddev: its share of the clip-bit noise, sigma_b / sqrt(m); None without adaptive clipping (no bit).
        secure_rng: draw from the operating system's CSPRNG instead of the generator seeded per (seed, round, client).
    """

    clip_norm: float
    noise_stddev: float
    clip_bit_stddev: Optional[float] = None
    secure_rng: bool = False

    def apply(
        self, global_state: State, state: State, seed: int, round_number: int, client: int
    ) -> Tuple[State, Optional[float]]:
        """(clip(y_k - x, C) + N(0, noise_stddev^2) as float32, noised b_k - 1/2 or None). Seeded noise comes from
        generators seeded with (seed, round, client + 1, purpose)."""
        clipped, norm = clip_update(update_delta(global_state, state), self.clip_norm)
        party = client + 1
        if self.noise_stddev > 0:
            source = noise_source(self.secure_rng, seed, round_number, party, UPDATE_NOISE)
            noise = gaussian_like(clipped, self.noise_stddev, source)
            clipped = {name: tensor + noise[name] for name, tensor in clipped.items()}
        noised = {name: tensor.float() for name, tensor in clipped.items()}
        if self.clip_bit_stddev is None:
            return noised, None
        bit_noise = noise_source(self.secure_rng, seed, round_number, party, CLIP_BIT_NOISE).standard_normal((1,))
        return noised, clip_bit(norm, self.clip_norm) + self.clip_bit_stddev * float(bit_noise[0])
