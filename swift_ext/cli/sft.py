"""Federated ``swift sft`` process entry, routed here by ``swift-fed sft`` and by the ``swift sft`` hook.

SIGTERM/SIGINT stop the run (exit status 128 + signal number) and ``--resume true`` continues it (see signals.py).
"""


def main() -> None:
    from swift.cli.utils import try_use_single_device_mode

    try_use_single_device_mode()
    from swift_ext.federated.pipeline import fed_sft_main

    fed_sft_main()


if __name__ == '__main__':
    from swift_ext.cli.signals import run_stoppable

    run_stoppable(main)
