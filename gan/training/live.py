"""runs/<run>/dvclive: the metrics log through dvclive, DVC's own logger.

`dvc exp show` reads `dvclive/metrics.json` (declared in dvc.yaml) while an experiment
trains, the DVC VS Code extension is signalled at every logged step, and Studio gets the
rows when a Studio token is configured. log.csv stays the readable record: this folder is
a view of its rows, rebuilt from them when a run resumes, so a killed run never leaves a
step twice. dvclive writes no dvc.yaml of its own here (the folder is inside the train
stage's output; the root dvc.yaml declares it).

dvclive imports DVC (seconds), so the view is on by default only when DVC runs the stage
(`dvc repro`, `dvc exp run`, which set DVC_ROOT), where those readers are.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
from pathlib import Path
from typing import Any

from gan.io import atomic_path, write_json

FOLDER = "dvclive"
IMAGE = "samples.png"  # plots/images/samples.png: the latest fixed-latent grid


def under_dvc() -> bool:
    return bool(os.environ.get("DVC_ROOT"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


class LiveView:
    """The rows of a MetricsLog, one dvclive step each, and the latest sample grid."""

    def __init__(self, directory: str | Path, rows: list[dict], image: Path | None = None):
        from dvclive import Live
        from dvclive.dvc import _find_dvc_root

        class _Live(Live):
            def _init_dvc(self) -> None:
                # outside a DVC repository dvclive would `dvc init` an enclosing Git one
                if _find_dvc_root() is not None:
                    super()._init_dvc()

            def make_summary(self) -> None:  # atomically (DESIGN principle 4)
                if self._step is not None:
                    self.summary["step"] = self.step
                write_json(self.metrics_file, self.summary)

        self.dir = Path(directory)
        # resume=False: dvclive clears its plots and summary; the kept rows are replayed
        self.live = _Live(str(self.dir), save_dvc_exp=False, dvcyaml=False)
        for row in rows:
            self._log(row)
        if rows:
            self.live.make_summary()
        if image is not None:
            self.image(image)

    def _log(self, row: dict) -> None:
        self.live.step = int(row["step"])
        for key, value in row.items():
            number = _number(value)
            if key != "step" and number is not None:
                self.live.log_metric(key, number if math.isfinite(number) else str(number))

    def row(self, row: dict) -> None:
        """One logged step: the history files, the summary and the VS Code signal."""
        self._log(row)
        self.live.next_step()  # sync (summary, Studio) + step signal; its step += 1 is reset

    def image(self, path: str | Path) -> None:
        target = Path(self.live.plots_dir) / "images" / IMAGE
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
