"""What a person sees while a federated run trains, and where everything else goes.

The console (stderr) gets the federated lines: the run's start, one line per round (``round 3/30: clients [4, 17],
loss 1.2340, eval_loss 1.1002, 42.1 s``), each saved adapter, the closing summary, and every warning or error once.
What ms-swift, transformers and the client trainers log or print besides (the argument dump, model and template
details, ms-swift's per-step rows) goes to ``run.log`` in the run directory. Setting ``LOG_LEVEL`` (ms-swift's own
variable) keeps ms-swift's console as it would be without swift_ext.

Standard library only (the command line sets the console up before torch is imported).
"""

import contextlib
import io
import logging
import os
from typing import Any, Dict, Iterator, List, Optional

CONSOLE_LOGGER = 'swift_ext'  # also the parent of every logging.getLogger(__name__) in swift_ext
HOST_LOGGERS = ('swift', 'modelscope', 'transformers')  # the library loggers of ms-swift and its hosts
RUN_LOG = 'run.log'
RUN_LOG_FORMAT = '%(asctime)s [%(levelname)s:%(name)s] %(message)s'


def is_local_master() -> bool:
    """Rank 0 of its machine, or not launched by torchrun (ms-swift's own test)."""
    return os.environ.get('LOCAL_RANK', '-1').strip() in ('-1', '0', '')


class OncePerMessage(logging.Filter):
    """Lets a warning or error through the first time its message is seen; other levels always pass."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


class ConsoleFormatter(logging.Formatter):
    """Information as is; warnings and errors prefixed with their level ('warning: ...')."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f'{record.levelname.lower()}: {message}'


def console_logger() -> logging.Logger:
    """The ``swift_ext`` logger with its one console handler (added on the first call)."""
    logger = logging.getLogger(CONSOLE_LOGGER)
    if not any(getattr(handler, 'swift_ext_console', False) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.swift_ext_console = True
        handler.setFormatter(ConsoleFormatter('%(message)s'))
        handler.addFilter(OncePerMessage())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if is_local_master() else logging.WARNING)
    return logger


def _console_handlers(logger: logging.Logger) -> Iterator[logging.Handler]:
    return (h for h in logger.handlers if type(h) is logging.StreamHandler)  # not its FileHandler subclass


def quiet_host_console() -> None:
    """ms-swift's and transformers' console handlers show warnings and errors only, each message once; their
    information goes to ``run.log`` (:func:`attach_run_log`). Nothing changes when ``LOG_LEVEL`` is set."""
    if os.environ.get('LOG_LEVEL', '').strip():
        return
    for name in HOST_LOGGERS:
        for handler in _console_handlers(logging.getLogger(name)):
            handler.setLevel(max(handler.level, logging.WARNING))
            handler.addFilter(OncePerMessage())


def attach_run_log(output_dir: str) -> Optional[str]:
    """Append everything the ``swift``, ``modelscope``, ``transformers`` and ``swift_ext`` loggers log to
    ``<output_dir>/run.log`` from now on, instead of the previous run's ``run.log`` of this process (on the local
    master; other ranks log errors only); return its path, or None on other ranks."""
    if not is_local_master():
        return None
    path = os.path.abspath(os.path.join(output_dir, RUN_LOG))
    os.makedirs(output_dir, exist_ok=True)
    for name in (*HOST_LOGGERS, CONSOLE_LOGGER):
        logger = logging.getLogger(name)
        for previous in [h for h in logger.handlers if getattr(h, 'swift_ext_run_log', False)]:
            logger.removeHandler(previous)
            previous.close()
        handler = logging.FileHandler(path, encoding='utf-8')
        handler.swift_ext_run_log = True
        handler.setFormatter(logging.Formatter(RUN_LOG_FORMAT))
        logger.addHandler(handler)
    return path


class _LoggerStream(io.TextIOBase):
    """A text stream that logs each complete line at INFO."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.pending = ''

    def write(self, text: str) -> int:
        lines = (self.pending + text).split('\n')
        self.pending = lines.pop()
        for line in lines:
            if line.strip():
                self.logger.info(line)
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.info(self.pending)
        self.pending = ''


@contextlib.contextmanager
def prints_to_run_log() -> Iterator[None]:
    """Inside the block, ``print`` output is logged by ms-swift's logger at INFO instead: in a run that goes to
    ``run.log`` (ms-swift's trainer prints every logged step; those rows are in ``logging.jsonl`` as well)."""
    stream = _LoggerStream(logging.getLogger('swift'))
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it (shorter to read), else absolute."""
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith('..') else relative


def round_line(
    row: Dict[str, Any],
    rounds: int,
    statuses: Dict[int, str],
    eval_loss: Optional[float] = None,
    privacy: Optional[Dict[str, Any]] = None,
) -> str:
    """``round 3/30: clients [4, 17], loss 1.2340, eval_loss 1.1002, 42.1 s`` from a ``fed_log.jsonl`` round row;
    clients whose update was not aggregated are named with their status (``clients [4, 17] (17 failed)``); with
    client-level DP the epsilon spent so far (the round's ``privacy`` row; ``inf`` when it is unbounded)."""
    left_out = [f'{client} {status}' for client, status in statuses.items() if status != 'ok']
    parts = [f'clients {row["clients"]}' + (f' ({", ".join(left_out)})' if left_out else '')]
    if row['loss'] is None:
        parts.append('no update aggregated, global model unchanged')
    else:
        parts.append(f'loss {row["loss"]:.4f}')
    if eval_loss is not None:
        parts.append(f'eval_loss {eval_loss:.4f}')
    if privacy is not None:
        parts.append('epsilon inf' if privacy['epsilon'] is None else f'epsilon {privacy["epsilon"]:.3g}')
    parts.append(f'{row["seconds"]:.1f} s')
    return f'round {row["round"]}/{rounds}: ' + ', '.join(parts)


def start_lines(fed_alg: str, rounds: int, rows_per_client: Dict[int, int], run_dir: str) -> str:
    """What the run is about to do, and where it writes."""
    return (
        f'{fed_alg}: {rounds} rounds, {len(rows_per_client)} clients, rows per client {rows_per_client}\n'
        f'run directory {display_path(run_dir)} (full log: {RUN_LOG})'
    )


def summary_lines(run_dir: str, last_round: int, rounds: int, global_models: List[str], seconds: float) -> str:
    """The closing summary: how far the run got, the adapters and the logs a person looks at next."""
    adapters = ', '.join(os.path.basename(path) for path in global_models) or 'none saved'
    return '\n'.join(
        [
            f'done: {last_round} of {rounds} rounds in {seconds:.1f} s; run directory {display_path(run_dir)}',
            f'  global adapters: {adapters}',
            f'  logs: fed_log.jsonl (clients and rounds), logging.jsonl (training steps), {RUN_LOG} (full log), '
            'images/fed_loss.png, runs/ (TensorBoard)',
        ]
    )
