"""Turn SIGINT/SIGTERM into an Interrupted exception for the duration of a run, so `finally` blocks clean up."""

from __future__ import annotations

import functools
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, ParamSpec, TypeVar

from .errors import Interrupted

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def raise_on_signals(outcome: str = "no output was written") -> Iterator[None]:
    """Install handlers that raise Interrupted ("interrupted by SIGTERM; <outcome>"); restore the previous ones on exit.

    Signal handlers can only be set from the main thread: elsewhere (a worker thread, a notebook
    executor) this does nothing and the caller's own handling applies.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, _frame: object) -> None:
        # One interrupt is enough: ignore repeats so a second Ctrl-C cannot cut the cleanup short.
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        name = signal.Signals(signum).name
        raise Interrupted(f"interrupted by {name}; {outcome}" if outcome else f"interrupted by {name}", signum)

    previous = {sig: signal.signal(sig, interrupted) for sig in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interruptible(function: Callable[P, R]) -> Callable[P, R]:
    """`function` run under raise_on_signals(outcome=""): an API entry point whose interruption is one line
    ("interrupted by SIGTERM") and exit 130/143 at the CLI, whatever stage it is in."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with raise_on_signals(outcome=""):
            return function(*args, **kwargs)

    return wrapper
