"""``swift-fed``: ms-swift's own CLI router with ``sft`` routed to the federated pipeline.

Everything else is ms-swift's: yaml/json config files (``swift-fed sft config.yaml``), NPROC_PER_NODE/NNODES torchrun
launching, and every other sub-command (``swift-fed infer ...`` is ``swift infer ...``). ``swift-fed sft --help``
prints the federated help, and the light argument checks run, before ms-swift (and with it torch) is imported.
SIGTERM/SIGINT sent to this process are passed on to the process it starts, and it exits with that process's status
(see signals.py).
"""

import sys

from swift_ext.cli.flags import wants_help

FEDERATED_SFT_MODULE = 'swift_ext.cli.sft'
USAGE = """\
usage: swift-fed sft [federated and ms-swift sft arguments]   federated fine-tuning (swift-fed sft --help)
       swift-fed sft config.yaml                              the same, arguments from a yaml/json file
       swift-fed COMMAND ...                                  any other ms-swift command (infer, export, ...)"""


def _check_before_launch(argv: list) -> None:
    """The light checks (:mod:`swift_ext.cli.preflight`) before ms-swift's launcher imports torch."""
    from swift_ext.arguments.errors import UsageError
    from swift_ext.cli.preflight import preflight

    try:
        preflight(argv, log_translations=False)
    except UsageError as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return
    if argv[0] == 'sft' and wants_help(argv[1:]):
        from swift_ext.cli.help import federated_help

        print(federated_help())
        return
    if argv[0] == 'sft' and argv[1:2] and argv[1].startswith('--'):  # a config file is checked by the worker
        _check_before_launch(argv[1:])
    from swift.cli.main import ROUTE_MAPPING, cli_main

    from .signals import forward_stop_signals

    forward_stop_signals()

    cli_main({**ROUTE_MAPPING, 'sft': FEDERATED_SFT_MODULE})


if __name__ == '__main__':
    main()
