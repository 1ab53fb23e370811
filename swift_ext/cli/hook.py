"""Make ``swift sft --fed_alg ...`` federated, and leave every other ``swift sft`` untouched.

``swift sft`` starts ``python .../swift/cli/sft.py ARGS`` (directly, or once per rank under torchrun). The
``swift_ext.pth`` file that the package installs calls :func:`redirect_federated_swift_sft` at interpreter start-up;
when the script is ms-swift's ``sft.py`` and ARGS contain a federated flag (``--fed_alg``, ``--round``, ...), the
process re-executes itself as ``python -m swift_ext.cli.sft ARGS`` with the same environment. Nothing else is touched,
so ``swift sft`` without federated flags is stock ms-swift.

Off switch: ``SWIFT_EXT_HOOK=0``. This module only imports the standard library and the field list.
"""

import os
import sys
from typing import Sequence

SWIFT_SFT_SCRIPT = os.path.join('swift', 'cli', 'sft.py')


def is_federated_argv(argv: Sequence[str]) -> bool:
    """True when any ``--flag`` (or ``--flag=value``) is a federated argument."""
    from swift_ext.arguments.federated import FEDERATED_FLAGS

    return any(token.split('=', 1)[0] in FEDERATED_FLAGS for token in argv if token.startswith('--'))


def redirect_federated_swift_sft() -> None:
    """Re-exec a federated ``swift sft`` process as ``python -m swift_ext.cli.sft``; otherwise return."""
    if os.environ.get('SWIFT_EXT_HOOK', '1') == '0' or not sys.argv or not sys.argv[0]:
        return
    if not os.path.abspath(sys.argv[0]).endswith(os.sep + SWIFT_SFT_SCRIPT):
        return
    if is_federated_argv(sys.argv[1:]):
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, '-m', 'swift_ext.cli.sft', *sys.argv[1:]])
