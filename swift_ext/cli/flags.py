"""Which ``--flags`` of a command line are federated, and which look like a misspelt federated flag.

Standard library and the federated field list only: the ``swift sft`` hook calls these at interpreter start-up.
"""

import difflib
from typing import Iterable, List, Tuple

from swift_ext.arguments.federated import FEDERATED_FLAGS
from swift_ext.legacy_args import LEGACY_FLAGS

# A flag this similar (difflib ratio) to a federated flag, and not one itself, is taken for a misspelling of it.
# Every ms-swift 4.6 SftArguments flag stays below 0.75 against every federated flag (tested), typos score >= 0.88.
NEAR_MISS_CUTOFF = 0.85
HELP_FLAGS = ('-h', '--help')


def wants_help(argv: Iterable[str]) -> bool:
    return any(token in HELP_FLAGS for token in argv)


def flag_names(argv: Iterable[str]) -> List[str]:
    """The ``--flags`` of ``argv`` in ms-swift's spelling: ``--a-b`` is ``--a_b`` and ``--a=1`` is ``--a``."""
    return ['--' + token[2:].split('=', 1)[0].replace('-', '_') for token in argv if token.startswith('--')]


def is_federated_argv(argv: Iterable[str]) -> bool:
    """True when any ``--flag`` (or ``--flag=value``, ``--fla-g``) is a federated argument."""
    return any(name in FEDERATED_FLAGS for name in flag_names(argv))


def federated_near_misses(argv: Iterable[str]) -> List[Tuple[str, str]]:
    """(flag, the federated flag it is closest to) for each flag that is not federated, not an ms-swift 2.x name
    that swift_ext translates, and reads like a misspelt federated flag (``--client_nun`` -> ``--client_num``)."""
    misses = []
    for name in dict.fromkeys(flag_names(argv)):
        if name in FEDERATED_FLAGS or name in LEGACY_FLAGS:
            continue
        close = difflib.get_close_matches(name, FEDERATED_FLAGS, n=1, cutoff=NEAR_MISS_CUTOFF)
        if close:
            misses.append((name, close[0]))
    return misses


def near_miss_message(misses: List[Tuple[str, str]]) -> str:
    """One line naming each near miss and its correction."""
    named = ', '.join(f'{name} (did you mean {close}?)' for name, close in misses)
    return (
        f'unknown argument {named}; `swift-fed sft --help` lists the federated arguments '
        '(SWIFT_EXT_HOOK=0 hands the command to stock ms-swift unchanged)'
    )
