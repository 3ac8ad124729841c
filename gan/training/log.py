"""The metrics log: one row per logged step, rewritten atomically as a CSV for DVC plots.

Beside it, the same rows go through dvclive (gan/training/live.py) and to whoever listens
(`listening`): the Prefect flows log each row and move a progress artifact that way, so
the trainer itself never imports Prefect. A row is only ever built on a logging step, so
none of this adds a device sync.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from gan.io import atomic_path
from gan.training import live as dvclive_view

_INT = re.compile(r"[+-]?\d+")  # a logged cell read back as an int, else a float
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
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = [_parse_row(record) for record in reader]
            if "step" not in (reader.fieldnames or ()) or any("step" not in r for r in rows):
                raise KeyError("step")
            return [row for row in rows if row["step"] <= resume_step]
        except (ValueError, KeyError, OSError, csv.Error) as exc:  # UnicodeError is a ValueError
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

    def end(self) -> None:
        """The run finished (dvclive's end-of-experiment signals)."""
        if self.live is not None:
            self.live.end()

    def flush(self) -> None:
        """The whole table: a column per key in order of first appearance, an empty cell
        where a row lacks it, floats as %.6g (csv, not pandas: 0.8 s of every start-up)."""
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([_cell(row.get(k)) for k in columns] for row in self.rows)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _parse_row(record: dict) -> dict:
    """A CSV record as numbers; a cell that is not one (or a line torn into extra fields)
    makes the log unreadable."""
    if None in record:
        raise ValueError("a line has more fields than the header")
    return {k: int(v) if _INT.fullmatch(v) else float(v) for k, v in record.items() if v}


def _latest_sample(folder: Path, up_to: int) -> Path | None:
    """The newest samples/step-<n>.png with n <= up_to (what a resumed run showed last)."""
    found = []
    for path in folder.glob("step-*.png") if up_to > 0 else ():
        match = re.fullmatch(r"step-(\d+)\.png", path.name)
        if match and int(match[1]) <= up_to:
            found.append((int(match[1]), path))
    return max(found)[1] if found else None
