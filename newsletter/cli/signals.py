"""Graceful stops for long-running commands (send, scheduler): SIGTERM/SIGINT set an event."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(notice: Callable[[signal.Signals], None]) -> Iterator[threading.Event]:
    """An event that SIGTERM and SIGINT set; a second Ctrl-C aborts at once.

    ``notice`` says what the stop means (logged or printed). The old handlers come back after.
    Outside the main thread (tests driving a command in a thread) signals cannot be caught, so the
    event is only for the caller to set.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        notice(signal.Signals(signum))

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
