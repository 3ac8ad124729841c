"""Ctrl-C and SIGTERM during training: finish the current step, save, stop.

A signal in the middle of a step would leave the optimisers half-stepped, so the handler
only records it; the loop checks `requested` between steps, saves a checkpoint of the
step it completed and raises Interrupted. A second Ctrl-C stops at once, as usual.
Handlers are installed only in the main thread of a single process: ranks of a
data-parallel group would stop at different steps.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop without saving
        self.signum = signum

    def __enter__(self) -> StopOnSignal:
        if self.enabled:
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
