"""Federated ``swift sft`` process entry, routed here by ``swift-fed sft`` and by the ``swift sft`` hook.

``--help`` prints the federated help; the light checks of :mod:`swift_ext.cli.preflight` run before torch and
ms-swift are imported; then the pipeline runs with a quiet console (:mod:`swift_ext.federated.console`). An
argument error, early or late, is one ``error:`` line and exit status 2. SIGTERM/SIGINT stop the run (exit status
128 + signal number) and ``--resume true`` continues it (see signals.py).
"""

import sys
from typing import List, Optional

from swift_ext.arguments.errors import UsageError


def usage_error(error: UsageError) -> int:
    print(f'error: {error}', file=sys.stderr, flush=True)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    """Run federated ``swift sft`` on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from swift_ext.cli.flags import wants_help
    from swift_ext.cli.preflight import preflight
    from swift_ext.federated.console import console_logger

    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        from swift_ext.cli.help import federated_help

        print(federated_help())
        return 0
    console_logger()
    try:
        argv = preflight(argv)
    except UsageError as error:
        return usage_error(error)

    from swift.cli.utils import try_use_single_device_mode

    try_use_single_device_mode()
    from swift_ext.federated.console import quiet_host_console
    from swift_ext.federated.pipeline import fed_sft_main

    quiet_host_console()
    try:
        fed_sft_main(argv)
    except UsageError as error:
        return usage_error(error)
    return 0


if __name__ == '__main__':
    from swift_ext.cli.signals import run_stoppable

    run_stoppable(lambda: sys.exit(main()))
