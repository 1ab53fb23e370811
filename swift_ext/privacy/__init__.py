"""Client-level differential privacy across a run: the accountant (Google's dp-accounting) and the server's DP state
(noise multiplier, clip norm, budget). The per-round mathematics (clipping, noise, adaptive clipping, the client's
share in distributed mode) is in :mod:`swift_ext.strategies.dp`."""

from .accountant import FIXED_SIZE, POISSON, ClientLevelAccountant
from .client_level_dp import CENTRAL, DISTRIBUTED, DP_MODES, ClientLevelDp, DpConfig

__all__ = [
    'CENTRAL',
    'DISTRIBUTED',
    'DP_MODES',
    'FIXED_SIZE',
    'POISSON',
    'ClientLevelAccountant',
    'ClientLevelDp',
    'DpConfig',
]
