"""How the swift command line travels in a Flower run config, and how each process adapts it.

The run config has one swift key: ``swift-args``, the ``swift sft`` arguments as one shell-quoted string (ms-swift
4.x or FedMABench 2.x names, exactly as on the command line). ``flwr run . <connection> --run-config
'swift-args="--model ... --dataset ..."'`` sets it (or a TOML file with ``swift-args = "..."``); the launcher behind
``--fed_engine flower|simulation`` sets it from its own command line. Every process reads the same arguments and
overrides only what is its own: the server its run directory, a node its output directory and data.
"""

import shlex
from typing import Any, List, Mapping, Optional, Sequence

SWIFT_ARGS_KEY = 'swift-args'


def swift_argv(run_config: Mapping[str, Any]) -> List[str]:
    """The swift arguments of a Flower run; raises ``ValueError`` with the fix when the run config has none."""
    value = str(run_config.get(SWIFT_ARGS_KEY, '')).strip()
    if not value:
        raise ValueError(
            f'The Flower run config has no {SWIFT_ARGS_KEY}. Pass the swift sft arguments, e.g. flwr run . '
            f'<connection> --run-config \'{SWIFT_ARGS_KEY}="--model /models/Qwen2-VL-2B-Instruct --dataset '
            'data/train.jsonl --fed_alg fedavg --round 30 ..."\''
        )
    return shlex.split(value)


def run_config_value(argv: Sequence[str]) -> str:
    """The ``swift-args`` value for ``argv``."""
    return shlex.join(argv)


def replace_flags(argv: Sequence[str], overrides: Mapping[str, Optional[Sequence[str]]]) -> List[str]:
    """``argv`` without any occurrence of the flags in ``overrides`` (``--flag v...`` up to the next ``--`` token,
    or ``--flag=v``), then each flag whose override is not None appended with its values."""
    kept: List[str] = []
    dropping = False
    for token in argv:
        if token.startswith('--'):
            dropping = token.split('=', 1)[0] in overrides
            if dropping:
                continue
        elif dropping:
            continue
        kept.append(token)
    for flag, values in overrides.items():
        if values is not None:
            kept += [flag, *values]
    return kept
