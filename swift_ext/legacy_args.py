"""Translate ms-swift 2.x (FedMABench) command-line arguments to their ms-swift 4.x names.

FedMABench scripts were written for ms-swift 2.x. ``translate_legacy_argv`` rewrites such an argv before it reaches
``FedSftArguments`` (or, for a plain ``swift sft`` run, stock ms-swift: the ``swift sft`` hook) and logs the
translations in one line. Arguments it does not know are left alone, so ms-swift's own parser still rejects truly
unknown names (see :func:`unknown_argument_hint`). Standard library only: the hook imports it at start-up.
"""

import difflib
import logging
import re
from typing import Callable, Dict, Iterable, List, Optional, Tuple

logger = logging.getLogger(__name__)

Option = Tuple[str, List[str]]  # ('--name', [values...])

# 2.x model_type prefixes (e.g. qwen2-vl-2b-instruct) -> 4.x model_type, which is also the template name.
LEGACY_MODEL_TYPES = (
    (re.compile(r'^qwen2_5-vl-'), 'qwen2_5_vl'),
    (re.compile(r'^qwen2-vl-'), 'qwen2_vl'),
)
LEGACY_DTYPES = {'AUTO': None, 'bf16': 'bfloat16', 'fp16': 'float16', 'fp32': 'float32'}


# 2.x names whose values carry over unchanged.
RENAMES: Dict[str, str] = {
    '--sft_type': '--tuner_type',
    '--model_id_or_path': '--model',
    '--check_model_is_latest': '--check_model',
    '--dataset_test_ratio': '--split_dataset_ratio',
    '--batch_size': '--per_device_train_batch_size',
    '--eval_batch_size': '--per_device_eval_batch_size',
    '--preprocess_num_proc': '--dataset_num_proc',
    '--check_dataset_strategy': '--dataset_check_strategy',
}


# 2.x names that stock ms-swift 4.x has no equivalent for: a plain (not federated) run drops them, saying why.
PLAIN_RUN_DROPS: Dict[str, str] = {
    '--check_dataset_strategy': 'dropped: stock ms-swift 4.x has no dataset check (python -m swift_ext.data_check '
    'checks a file; federated runs check with --dataset_check_strategy)',
}

LEGACY_FLAGS = frozenset({*RENAMES, '--dtype', '--model_type', '--train_dataset_sample'})
"""Every flag name this module reads (``--model_type`` only when its value is a 2.x name)."""


def split_options(argv: Iterable[str]) -> List[Option]:
    """Group argv into (flag, values); ``--name=value`` is split. Values never start with ``--``."""
    options: List[Option] = []
    for token in argv:
        if token.startswith('--'):
            name, eq, value = token.partition('=')
            options.append((name, [value] if eq else []))
        elif options:
            options[-1][1].append(token)
        else:
            raise ValueError(f'Argument {token!r} does not follow a --flag; arguments are --name value pairs.')
    return options


def join_options(options: Iterable[Option]) -> List[str]:
    return [token for name, values in options for token in (name, *values)]


def _translate_model_type(values: List[str]) -> Tuple[List[Option], str]:
    for pattern, model_type in LEGACY_MODEL_TYPES:
        if values and pattern.match(values[0]):
            return [('--model_type', [model_type]), ('--template', [model_type])], f'{model_type} + template'
    return [('--model_type', values)], ''


def _translate_dtype(values: List[str]) -> Tuple[List[Option], str]:
    if not values or values[0] not in LEGACY_DTYPES:
        choices = ', '.join(LEGACY_DTYPES)
        raise ValueError(
            f'--dtype {" ".join(values)!r} is not a ms-swift 2.x dtype ({choices}); '
            'use --torch_dtype bfloat16|float16|float32.'
        )
    torch_dtype = LEGACY_DTYPES[values[0]]
    if torch_dtype is None:
        return [], 'auto (--torch_dtype left unset: ms-swift picks it from config.json)'
    return [('--torch_dtype', [torch_dtype])], f'--torch_dtype {torch_dtype}'


ValueTranslator = Callable[[List[str]], Tuple[List[Option], str]]
VALUE_TRANSLATORS: Dict[str, ValueTranslator] = {
    '--model_type': _translate_model_type,
    '--dtype': _translate_dtype,
}


def _apply_train_dataset_sample(options: List[Option]) -> Tuple[List[Option], Optional[str]]:
    """2.x ``--train_dataset_sample N`` -> 4.x dataset syntax ``path#N`` on every --dataset (-1 = all rows)."""
    samples = [values for name, values in options if name == '--train_dataset_sample']
    if not samples:
        return options, None
    try:
        count = int(samples[-1][0])
    except (IndexError, ValueError):
        raise ValueError(
            f'--train_dataset_sample {" ".join(samples[-1])!r} is not a number of rows (an integer, -1: all rows).'
        ) from None
    options = [(name, values) for name, values in options if name != '--train_dataset_sample']
    if count < 0:
        return options, '--train_dataset_sample -1 -> all rows'
    options = [
        (name, [f'{value}#{count}' for value in values] if name == '--dataset' else values) for name, values in options
    ]
    return options, f'--train_dataset_sample {count} -> --dataset PATH#{count}'


def uses_legacy_names(argv: Iterable[str]) -> bool:
    """True when ``argv`` has an ms-swift 2.x argument that :func:`translate_legacy_argv` rewrites."""
    for name, values in split_options(argv):
        if name in RENAMES or name in ('--dtype', '--train_dataset_sample'):
            return True
        if name == '--model_type' and any(pattern.match(v) for pattern, _ in LEGACY_MODEL_TYPES for v in values):
            return True
    return False


def translate_legacy_argv(argv: Iterable[str], plain_run: bool = False, log: bool = True) -> List[str]:
    """Return ``argv`` with every ms-swift 2.x argument rewritten to its 4.x form; log the translations in one line
    (unless ``log`` is False: a launcher checks the argv its worker process translates and logs again).

    ``plain_run``: the argv goes to stock ms-swift (no federated arguments), so the 2.x names it has no equivalent
    for (``PLAIN_RUN_DROPS``) are dropped instead of translated to swift_ext's names.
    """
    options, note = _apply_train_dataset_sample(split_options(argv))
    notes = [note] if note else []
    explicit_template = any(name == '--template' for name, _ in options)
    translated: List[Option] = []
    for name, values in options:
        if plain_run and name in PLAIN_RUN_DROPS:
            notes.append(f'{name} {" ".join(values)} {PLAIN_RUN_DROPS[name]}')
        elif name in RENAMES:
            translated.append((RENAMES[name], values))
            notes.append(f'{name} -> {RENAMES[name]}')
        elif name in VALUE_TRANSLATORS:
            new_options, note = VALUE_TRANSLATORS[name](values)
            if explicit_template:
                new_options = [option for option in new_options if option[0] != '--template']
            translated += new_options
            if note:
                notes.append(f'{name} {" ".join(values)} -> {note}')
        else:
            translated.append((name, values))
    if notes and log:
        logger.warning(f'ms-swift 2.x arguments translated by swift_ext: {"; ".join(dict.fromkeys(notes))}')
    return join_options(translated)


def unknown_flags(argv: Iterable[str], known_names: Iterable[str]) -> List[str]:
    """The ``--flags`` of ``argv`` that are unknown (``--a-b`` spells ``--a_b``; ``--no_x`` negates a bool ``--x``)."""
    known = set(known_names)
    unknown = []
    for name, _ in split_options(argv):
        normalised = '--' + name[2:].replace('-', '_')
        if normalised not in known and not (normalised.startswith('--no_') and f'--{normalised[5:]}' in known):
            unknown.append(name)
    return unknown


def unknown_argument_hint(unknown: Iterable[str], known_names: Iterable[str]) -> str:
    """A one-line error message naming each unknown ``--flag`` with the closest known names."""
    known = sorted(set(known_names) | LEGACY_FLAGS)
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3)
        named.append(name + (f' (did you mean {", ".join(close)}?)' if close else ''))
    return (
        f'unknown argument{"s" if len(named) > 1 else ""} {", ".join(named)}; `swift-fed sft --help` lists the '
        "federated arguments, ms-swift's documentation the others"
    )
