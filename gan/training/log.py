"""The metrics log: one row per logged step, rewritten atomically as a CSV for DVC plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gan.io import atomic_path


class MetricsLog:
    def __init__(self, path: str | Path, resume_step: int = 0) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []
        if resume_step > 0 and self.path.is_file():
            old = pd.read_csv(self.path)
            self.rows = old[old["step"] <= resume_step].to_dict("records")

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self.flush()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def flush(self) -> None:
        with atomic_path(self.path) as tmp:
            self.frame().to_csv(tmp, index=False, float_format="%.6g")
