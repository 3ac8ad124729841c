"""The metrics log: one row per logged step, rewritten atomically as a CSV for DVC plots.

Beside it, the same rows go through dvclive (gan/training/live.py) and to whoever listens
(`listening`): the Prefect flows log each row and move a progress artifact that way, so
the trainer itself never imports Prefect. A row is only ever built on a logging step, so
none of this adds a device sync.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from gan.io import atomic_path
from gan.training import live as dvclive_view

Listener = Callable[[dict], None]
# per context (thread, task), so concurrent trainings in one process hear only their own rows
_listeners: contextvars.ContextVar[tuple[Listener, ...]] = contextvars.ContextVar(
    "gan_log_listeners", default=()
)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener(row)` with every row a MetricsLog appends meanwhile in this context."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


class MetricsLog:
    def __init__(self, path: str | Path, resume_step: int = 0, live: bool | None = None) -> None:
        """`live`: also write runs/<run>/dvclive (default: when DVC runs the stage)."""
        self.path = Path(path)
        self.rows: list[dict] = []
        if resume_step > 0 and self.path.is_file():
            self.rows = self._read(resume_step)
        self.live = None
        if dvclive_view.under_dvc() if live is None else live:
            image = _latest_sample(self.path.parent / "samples", resume_step)
            self.live = dvclive_view.LiveView(
                self.path.parent / dvclive_view.FOLDER, self.rows, image
            )

    def _read(self, resume_step: int) -> list[dict]:
        """The rows up to `resume_step`; an unreadable log (empty, torn, hand-edited) is
        started afresh, saying so, as the checkpoint, not the log, holds the state."""
        try:
            old = pd.read_csv(self.path)
            steps = pd.to_numeric(old["step"], errors="raise")
            return old[steps <= resume_step].to_dict("records")
        except (ValueError, KeyError, TypeError, OSError, pd.errors.ParserError) as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            tqdm.write(f"[train] {self.path}: unreadable ({reason}); starting a fresh log")
            return []

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self.flush()
        if self.live is not None:
            self.live.row(row)
        for listener in _listeners.get():
            listener(row)

    def image(self, path: str | Path) -> None:
        """A sample grid was written at `path`: show it as the run's latest."""
        if self.live is not None:
            self.live.image(path)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def flush(self) -> None:
        with atomic_path(self.path) as tmp:
            self.frame().to_csv(tmp, index=False, float_format="%.6g")


def _latest_sample(folder: Path, up_to: int) -> Path | None:
    """The newest samples/step-<n>.png with n <= up_to (what a resumed run showed last)."""
    found = []
    for path in folder.glob("step-*.png") if up_to > 0 else ():
        match = re.fullmatch(r"step-(\d+)\.png", path.name)
        if match and int(match[1]) <= up_to:
            found.append((int(match[1]), path))
    return max(found)[1] if found else None
