"""Stopping a federated run with SIGTERM or SIGINT (a scheduler's stop, ``docker stop``, Ctrl-C).

``swift sft`` and ``swift-fed sft`` run in two processes: a wrapper (ms-swift's CLI router) starts the training
process (or torchrun) and waits for it. By default SIGTERM to the wrapper kills only the wrapper and leaves the
training process running as an orphan. :func:`forward_stop_signals` makes the wrapper pass SIGTERM/SIGINT on to its
child processes and keep waiting, so it exits with the child's status (ms-swift's router exits with the child's
return code). A signal that arrives before the child exists ends the wrapper as the signal would.

In the training process, :func:`run_stoppable` turns the first SIGTERM/SIGINT into :class:`RunStopped`, raised where
the process is: every file a run writes is either replaced atomically (checkpoints, adapters, client controls) or
repaired on resume (a log line cut short), so every point is a safe point, and ``--resume`` redoes the round that
was under way. Signals that arrive while it unwinds are ignored (the wrapper's forwarded copy of a Ctrl-C among
them). The process exits with 128 + the signal number, as a shell reports a process ended by that signal.

Only the standard library is imported here (the ``swift sft`` hook imports this module at interpreter start-up);
psutil, which finds the wrapper's children, is imported when forwarding is installed.
"""

import gc
import signal
import sys
from typing import Any, Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunStopped(BaseException):
    """A stop signal reached the training process. A ``BaseException``: no ``except Exception`` (such as the one that
    turns a client's error into a failed update) may swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def forward_stop_signals() -> None:
    """In a wrapper process: send SIGTERM/SIGINT on to the child processes instead of dying without them."""
    import os

    import psutil

    wrapper = psutil.Process()

    def forward(signum: int, frame: Any) -> None:
        children = wrapper.children()
        if not children:  # the training process is not started yet: end as the signal would, and start nothing
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        for child in children:
            try:
                child.send_signal(signum)
            except psutil.NoSuchProcess:
                pass

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)


def _stop(signum: int, frame: Any) -> None:
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise RunStopped(signum)


def run_stoppable(main: Callable[[], Any]) -> None:
    """Run ``main`` in the training process; a stop signal ends it with a message and exit status 128 + signum."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    try:
        main()
    except RunStopped as stopped:
        gc.freeze()  # the interpreter's final collection over the loaded model and data would take seconds
        sys.stderr.write(
            f'[swift_ext] stopped by {stopped}: the run keeps every round up to its last checkpoint; continue it '
            'with the same command plus --resume true.\n'
        )
        sys.exit(stopped.exit_status)
