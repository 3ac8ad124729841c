"""The metrics log: one row per logged step, rewritten atomically as a CSV for DVC plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from gan.io import atomic_path


class MetricsLog:
    def __init__(self, path: str | Path, resume_step: int = 0) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []
        if resume_step > 0 and self.path.is_file():
            self.rows = self._read(resume_step)

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

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def flush(self) -> None:
        with atomic_path(self.path) as tmp:
            self.frame().to_csv(tmp, index=False, float_format="%.6g")
