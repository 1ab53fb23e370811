"""Keep ms-swift out of its own Ray mode inside Flower's processes.

ms-swift 4.x switches ``SwiftSft`` to a multi-worker Ray mode whenever ``ray.is_initialized()`` is true
(``swift.ray_utils.RayHelper``: the class is wrapped at import, and set-up methods called from ``__init__`` are
dispatched to remote workers or skipped). In Flower's simulation engine Ray belongs to Flower: its driver process
runs the ServerApp and its actors run the ClientApps, so ms-swift would skip loading the model there. Each of those
processes must run ms-swift locally, as a plain ``swift sft`` does; :func:`run_ms_swift_locally` makes ms-swift's
Ray check answer "not initialised". Call it before ``swift.pipelines`` is imported.
"""


def run_ms_swift_locally() -> None:
    """Make ``RayHelper.ray_inited()`` False in this process (idempotent)."""
    from swift.ray_utils import RayHelper

    RayHelper.ray_inited = staticmethod(_not_ms_swift_ray)


def _not_ms_swift_ray() -> bool:
    return False
