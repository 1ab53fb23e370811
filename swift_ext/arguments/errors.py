"""The error a user fixes on the command line.

``UsageError`` is what argument checks raise: the command line prints its message as one ``error:`` line and exits
with status 2 (argparse's convention), without a traceback. It is a ``ValueError``, so library callers catch it as
before. This module imports only the standard library.
"""

import argparse
import contextlib
from typing import Iterator, NoReturn


class UsageError(ValueError):
    """An argument, or an argument together with the data it names, that the user must change; the message says
    which and how."""


@contextlib.contextmanager
def argparse_errors_raised() -> Iterator[None]:
    """Inside the block, an argparse parser raises :class:`UsageError` with its message instead of printing its
    usage and exiting: the usage of ``swift sft`` lists every one of ms-swift's hundreds of arguments."""

    def error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
        raise UsageError(message)

    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original
