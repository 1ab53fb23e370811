"""Make ``swift sft --fed_alg ...`` federated, and leave every other ``swift sft`` untouched.

``swift sft`` is two processes: the ``swift`` wrapper (ms-swift's CLI router) starts
``python .../swift/cli/sft.py ARGS`` (directly, or once per rank under torchrun) and waits for it. The
``swift_ext.pth`` file that the package installs calls :func:`redirect_federated_swift_sft` at interpreter start-up
of every process; when ARGS contain a federated flag (``--fed_alg``, ``--round``, ...):

- the training process (ms-swift's ``sft.py``) re-executes itself as ``python -m swift_ext.cli.sft ARGS`` with the
  same environment;
- the wrapper passes SIGTERM/SIGINT on to the training process and exits with its status
  (:mod:`swift_ext.cli.signals`); in a yaml/json config (``swift sft config.yaml``) the keys are the flags.

Nothing else is touched, so ``swift sft`` without federated flags is stock ms-swift.

Off switch: ``SWIFT_EXT_HOOK=0``. This module only imports the standard library and the field list.
"""

import json
import os
import sys
from typing import List, Sequence

SWIFT_SFT_SCRIPT = os.path.join('swift', 'cli', 'sft.py')
SWIFT_WRAPPERS = ('swift', os.path.join('swift', 'cli', 'main.py'))  # the console script, python -m swift.cli.main
CONFIG_SUFFIXES = ('.json', '.yaml', '.yml')


def is_federated_argv(argv: Sequence[str]) -> bool:
    """True when any ``--flag`` (or ``--flag=value``) is a federated argument."""
    from swift_ext.arguments.federated import FEDERATED_FLAGS

    return any(token.split('=', 1)[0] in FEDERATED_FLAGS for token in argv if token.startswith('--'))


def config_flags(path: str) -> List[str]:
    """The keys of a yaml/json config file as flags (``--key``), as ms-swift's router expands them."""
    with open(path, encoding='utf-8') as f:
        if path.endswith('.json'):
            config = json.load(f)
        else:
            import yaml  # a dependency of ms-swift, imported only for a yaml config

            config = yaml.safe_load(f)
    return [f'--{key}' for key in config] if isinstance(config, dict) else []


def is_federated_swift_sft_wrapper(argv: Sequence[str]) -> bool:
    """True for the ``swift`` router process of ``swift sft`` with federated flags (on the command line or in the
    config file it is given)."""
    script = os.path.abspath(argv[0])
    if not script.endswith(tuple(os.sep + wrapper for wrapper in SWIFT_WRAPPERS)) or argv[1:2] != ['sft']:
        return False
    options = list(argv[2:])
    if options and options[0].endswith(CONFIG_SUFFIXES):
        try:
            options[:1] = config_flags(options[0])
        except Exception:  # noqa: BLE001 -- start-up must go on: ms-swift's router reports an unreadable config
            return False
    return is_federated_argv(options)


def redirect_federated_swift_sft() -> None:
    """Re-exec a federated ``swift sft`` training process as ``python -m swift_ext.cli.sft``, or make a federated
    ``swift sft`` wrapper forward stop signals; otherwise return."""
    if os.environ.get('SWIFT_EXT_HOOK', '1') == '0' or not sys.argv or not sys.argv[0]:
        return
    if os.path.abspath(sys.argv[0]).endswith(os.sep + SWIFT_SFT_SCRIPT):
        if is_federated_argv(sys.argv[1:]):
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, '-m', 'swift_ext.cli.sft', *sys.argv[1:]])
    elif is_federated_swift_sft_wrapper(sys.argv):
        from swift_ext.cli.signals import forward_stop_signals

        forward_stop_signals()
