"""Make ``swift sft --fed_alg ...`` federated, translate FedMABench's 2.x names for plain ``swift sft``, and leave
every other ``swift sft`` untouched.

``swift sft`` is two processes: the ``swift`` wrapper (ms-swift's CLI router) starts
``python .../swift/cli/sft.py ARGS`` (directly, or once per rank under torchrun) and waits for it. The
``swift_ext.pth`` file that the package installs calls :func:`redirect_federated_swift_sft` at interpreter start-up
of every process. In the training process (ms-swift's ``sft.py``):

- ARGS contain a federated flag (``--fed_alg``, ``--round``, ...): the process re-executes itself as
  ``python -m swift_ext.cli.sft ARGS`` with the same environment;
- a flag reads like a misspelt federated flag (``--client_nun``): one ``error:`` line, exit status 2;
- ARGS use ms-swift 2.x names (``--sft_type``, ``--model_id_or_path``, ...): the process re-executes ms-swift's own
  ``sft.py`` with the names translated (``swift_ext.legacy_args``), so FedMABench's centralised baselines run on
  stock ms-swift 4.x;
- otherwise nothing happens: ``swift sft`` is stock ms-swift.

In the ``swift`` wrapper, before it imports torch, a federated ``--help`` is answered and the checks of
:mod:`swift_ext.cli.preflight` (and the near-miss check) run, so a bad command line fails in a fraction of a
second; a federated wrapper (flags on the command line or in its yaml/json config) passes SIGTERM/SIGINT on to the
training process and exits with its status (:mod:`swift_ext.cli.signals`). Off switch: ``SWIFT_EXT_HOOK=0``.

Every Python process of the environment runs this at start-up, so it imports only ``os`` and ``sys`` until it knows
the process is ``swift sft``; then the standard library, the federated field list and the 2.x name table.
"""

import os
import sys

SWIFT_SFT_SCRIPT = os.path.join('swift', 'cli', 'sft.py')
SWIFT_WRAPPERS = ('swift', os.path.join('swift', 'cli', 'main.py'))  # the console script, python -m swift.cli.main
CONFIG_SUFFIXES = ('.json', '.yaml', '.yml')


def _exit(status: int) -> None:
    """End the process now: ``sys.exit`` while ``site`` is still starting the interpreter is a fatal error."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _usage_error(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    _exit(2)


def _check_in_launcher(argv: list) -> None:
    """In ms-swift's launcher (``bin/swift sft ...``), before it imports torch: answer a federated ``--help``, and
    stop a federated command line that :mod:`swift_ext.cli.preflight` rejects, or a near miss of a federated flag."""
    if os.path.basename(argv[0]) != 'swift' or argv[1:2] != ['sft'] or not argv[2:3] or not argv[2].startswith('--'):
        return  # not sft, or arguments in a config file (the worker process checks those)
    from swift_ext.arguments.errors import UsageError
    from swift_ext.cli.flags import federated_near_misses, is_federated_argv, near_miss_message, wants_help

    args = argv[2:]
    if not is_federated_argv(args):
        misses = federated_near_misses(args)
        if misses:
            _usage_error(near_miss_message(misses))
        return
    if wants_help(args):
        from swift_ext.cli.help import federated_help

        print(federated_help())
        _exit(0)
    from swift_ext.cli.preflight import preflight

    try:
        preflight(args, log_translations=False)
    except UsageError as error:
        _usage_error(str(error))


def config_flags(path: str) -> list:
    """The keys of a yaml/json config file as flags (``--key``), as ms-swift's router expands them."""
    with open(path, encoding='utf-8') as f:
        if path.endswith('.json'):
            import json

            config = json.load(f)
        else:
            import yaml  # a dependency of ms-swift, imported only for a yaml config

            config = yaml.safe_load(f)
    return [f'--{key}' for key in config] if isinstance(config, dict) else []


def is_federated_swift_sft_wrapper(argv: list) -> bool:
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
    from swift_ext.cli.flags import is_federated_argv

    return is_federated_argv(options)


def redirect_federated_swift_sft() -> None:
    """Route ms-swift's ``sft.py`` process and the ``swift`` wrapper (see the module docstring); otherwise return."""
    if os.environ.get('SWIFT_EXT_HOOK', '1') == '0' or not sys.argv or not sys.argv[0]:
        return
    _check_in_launcher(sys.argv)
    if os.path.abspath(sys.argv[0]).endswith(os.sep + SWIFT_SFT_SCRIPT):
        _route_training_process(sys.argv[1:])
    elif is_federated_swift_sft_wrapper(sys.argv):
        from swift_ext.cli.signals import forward_stop_signals

        forward_stop_signals()


def _route_training_process(argv: list) -> None:
    from swift_ext.cli.flags import federated_near_misses, is_federated_argv, near_miss_message

    if is_federated_argv(argv):
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, '-m', 'swift_ext.cli.sft', *argv])
    misses = federated_near_misses(argv)
    if misses:
        _usage_error(near_miss_message(misses))
    _translate_plain_run(argv)


def _translate_plain_run(argv: list) -> None:
    """Re-execute ms-swift's ``sft.py`` with 2.x names translated; return when there are none (or argv does not
    start with a ``--flag``, which ms-swift then judges itself)."""
    from swift_ext.legacy_args import translate_legacy_argv, uses_legacy_names

    if not argv or not argv[0].startswith('--') or not uses_legacy_names(argv):
        return
    try:
        translated = translate_legacy_argv(argv, plain_run=True)
    except ValueError as error:  # a 2.x value with no 4.x meaning (--dtype int8)
        _usage_error(str(error))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, sys.argv[0], *translated])
