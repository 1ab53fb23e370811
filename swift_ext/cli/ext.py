"""``swift-ext``: swift_ext's own sub-commands, e.g. ``swift-ext doctor --model M --dataset D.jsonl ...``.

:data:`SUB_COMMANDS` maps each sub-command to the module whose ``main(argv) -> int`` runs it. A module is imported
only once its sub-command is chosen, so ``swift-ext --help`` (and a typo) answers at once. Add a sub-command by adding
an entry.
"""

import importlib
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional


@dataclass(frozen=True)
class SubCommand:
    """A module with ``main(argv: List[str]) -> int`` and the one-line summary ``swift-ext --help`` shows."""

    module: str
    summary: str


SUB_COMMANDS: Dict[str, SubCommand] = {
    'doctor': SubCommand(
        'swift_ext.doctor.cli', 'diagnose environment, model, LoRA scope, federated plan and data before a long run'
    ),
    'certs': SubCommand(
        'swift_ext.flower.certificates', 'TLS certificates and SuperNode authentication keys for a Flower federation'
    ),
}


def usage() -> str:
    width = max(len(name) for name in SUB_COMMANDS)
    lines = [f'  {name:<{width}}  {command.summary}' for name, command in SUB_COMMANDS.items()]
    return 'usage: swift-ext SUB-COMMAND [ARGS...]\n\nsub-commands:\n' + '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``swift-ext SUB-COMMAND ARGS``; exit status 2 for a missing or unknown sub-command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ('-h', '--help'):
        print(usage())
        return 0
    if not argv or argv[0] not in SUB_COMMANDS:
        problem = 'no sub-command given' if not argv else f'unknown sub-command {argv[0]!r}'
        print(f'swift-ext: {problem}.\n{usage()}', file=sys.stderr)
        return 2
    return importlib.import_module(SUB_COMMANDS[argv[0]].module).main(argv[1:])


if __name__ == '__main__':
    sys.exit(main())
