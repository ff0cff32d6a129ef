"""Turn SIGINT/SIGTERM into an Interrupted exception for the duration of a run, so `finally` blocks clean up.

Python runs a signal handler only between bytecodes: a main thread blocked in a C call (GDAL waiting on a server
that accepted the connection and never answers) would see the signal only when the call returns, minutes later.
CPython's C-level handler also writes the signal number to the wakeup fd at once, so a watchdog thread reads it:
when the Python handler has not run FORCED_EXIT_AFTER_S later, the watchdog removes what forced_exit_cleanups
holds (the run's staging directory), prints the interrupt's one line and ends the process with 128 + signum
(the kernel releases the output's lock).
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, ParamSpec, TypeVar

from rssr_cli.core.errors import Interrupted

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORCED_EXIT_AFTER_S = 2.0  # how long the main thread has to take a signal before the watchdog ends the process
forced_exit_cleanups: dict[int, Callable[[], None]] = {}  # id -> cleanup the watchdog runs before a forced exit
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

    taken = threading.Event()

    def interrupted(signum: int, _frame: object) -> None:
        taken.set()
        # One interrupt is enough: ignore repeats so a second Ctrl-C cannot cut the cleanup short.
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(_message(signum, outcome), signum)

    previous = {sig: signal.signal(sig, interrupted) for sig in HANDLED_SIGNALS}
    watched, alarm = socket.socketpair()
    alarm.setblocking(False)
    previous_fd = signal.set_wakeup_fd(alarm.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watchdog, args=(watched, taken, outcome), name="rssr-signal-watchdog", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        alarm.close()  # the watchdog's recv returns b"": it ends
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _message(signum: int, outcome: str) -> str:
    name = signal.Signals(signum).name
    return f"interrupted by {name}; {outcome}" if outcome else f"interrupted by {name}"


def _watchdog(watched: socket.socket, taken: threading.Event, outcome: str) -> None:
    """See the module doc: end the process when the main thread cannot take a signal (blocked in a C call)."""
    with watched:
        while True:
            try:
                received = watched.recv(64)
            except OSError:
                return
            if not received:
                return
            signum = next((n for n in received if n in HANDLED_SIGNALS), None)
            if signum is None:
                continue
            if taken.wait(FORCED_EXIT_AFTER_S):
                return
            for cleanup in list(forced_exit_cleanups.values()):
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - best effort: the process ends below whatever happens
                    pass
            os.write(2, f"error: {_message(signum, outcome)}\n".encode())
            os._exit(128 + signum)


def interruptible(function: Callable[P, R]) -> Callable[P, R]:
    """`function` run under raise_on_signals(outcome=""): an API entry point whose interruption is one line
    ("interrupted by SIGTERM") and exit 130/143 at the CLI, whatever stage it is in."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with raise_on_signals(outcome=""):
            return function(*args, **kwargs)

    return wrapper
