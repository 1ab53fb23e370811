"""``swift-fed``: ms-swift's own CLI router with ``sft`` routed to the federated pipeline.

Everything else is ms-swift's: yaml/json config files (``swift-fed sft config.yaml``), NPROC_PER_NODE/NNODES torchrun
launching, and every other sub-command (``swift-fed infer ...`` is ``swift infer ...``). SIGTERM/SIGINT sent to this
process are passed on to the process it starts, and it exits with that process's status (see signals.py).
"""

from swift.cli.main import ROUTE_MAPPING, cli_main

from .signals import forward_stop_signals

FED_ROUTE_MAPPING = {**ROUTE_MAPPING, 'sft': 'swift_ext.cli.sft'}


def main() -> None:
    forward_stop_signals()
    cli_main(FED_ROUTE_MAPPING)


if __name__ == '__main__':
    main()
