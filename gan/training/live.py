"""runs/<run>/dvclive: the metrics log through dvclive, DVC's own logger.

`dvc exp show` reads `dvclive/metrics.json` (declared in dvc.yaml) while an experiment
trains, the DVC VS Code extension is signalled at every logged step, and Studio gets the
rows when a Studio token is configured. log.csv stays the readable record: this folder is
a view of its rows, rebuilt from them when a run resumes, so a killed run never leaves a
step twice. dvclive writes no dvc.yaml of its own here (the folder is inside the train
stage's output; the root dvc.yaml declares it).

Every file of the folder is written here atomically, in dvclive's formats
(docs/architecture.md, 'Atomic writes'): dvclive would append to the history files
(plots/metrics/<name>.tsv) in place and clear the folder before a rebuild, so a reader
(`dvc exp show`, `dvc plots`, VS Code) or a kill could meet a torn or missing file. Each
file is replaced whole by a rename instead, and a rebuild replaces the files first and only
then drops the stale ones. Of dvclive's own writing only the VS Code step signal is left,
and it is outside this folder: <DVC root>/.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED, written
here atomically too. dvclive still posts to Studio (network, no file) and reads the folder
back for it.

dvclive imports DVC (seconds), so the view is on by default only when DVC runs the stage
(`dvc repro`, `dvc exp run`, which set DVC_ROOT), where those readers are.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import shutil
from pathlib import Path
from typing import Any

from gan.io import atomic_path, write_json, write_text

FOLDER = "dvclive"
IMAGE = "samples.png"  # plots/images/samples.png: the latest fixed-latent grid


def under_dvc() -> bool:
    return bool(os.environ.get("DVC_ROOT"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def tsv(name: str, points: list[tuple[int, float | str]]) -> str:
    """A history file as dvclive writes it: `step<TAB>name`, then a line per step."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator=os.linesep)
    writer.writerow(["step", name])
    writer.writerows(points)
    return out.getvalue()


def _live_class() -> type:
    """dvclive's Live, with every file it would write here written atomically or not at all."""
    from dvclive import Live
    from dvclive.dvc import _find_dvc_root
    from dvclive.vscode import _dvclive_step_completed_signal_file, _find_non_queue_root

    class _Live(Live):
        def _init_dvc(self) -> None:
            # outside a DVC repository dvclive would `dvc init` an enclosing Git one
            if _find_dvc_root() is not None:
                super()._init_dvc()

        def _init_cleanup(self) -> None:
            """Nothing deleted up front: LiveView replaces the files, then drops the rest."""

        def make_summary(self) -> None:
            if self._step is not None:
                self.summary["step"] = self.step
            write_json(self.metrics_file, self.summary)

        def next_step(self) -> None:
            """Live.next_step with the VS Code step signal written atomically."""
            if self._step is None:
                self._step = 0
            self.sync()
            root = _find_non_queue_root()
            if root:
                signal = {"pid": os.getpid(), "step": self.step}
                write_text(_dvclive_step_completed_signal_file(root), json.dumps(signal))
            self.step += 1

    return _Live


class LiveView:
    """The rows of a MetricsLog, one dvclive step each, and the latest sample grid."""

    def __init__(self, directory: str | Path, rows: list[dict], image: Path | None = None):
        self.dir = Path(directory)
        self.history: dict[str, list[tuple[int, float | str]]] = {}
        self.live = _live_class()(str(self.dir), save_dvc_exp=False, dvcyaml=False)
        self.metrics_dir = Path(self.live.plots_dir) / "metrics"
        self.image_path = Path(self.live.plots_dir) / "images" / IMAGE
        for row in rows:
            self._add(row)
        kept = {self._write(name) for name in self.history}
        if rows:
            self.live.make_summary()
            kept.add(Path(self.live.metrics_file))
        if image is not None:
            self.image(image)
            kept.add(self.image_path)
        self._drop_except(kept)

    def _add(self, row: dict) -> list[str]:
        """Record a row's numbers (history and summary); the names it logged."""
        step = self.live.step = int(row["step"])
        names = []
        for key, value in row.items():
            number = _number(value)
            if key != "step" and number is not None:
                value = number if math.isfinite(number) else str(number)
                self.history.setdefault(key, []).append((step, value))
                self.live.summary[key] = value
                names.append(key)
        return names

    def _write(self, name: str) -> Path:
        path = self.metrics_dir / f"{name}.tsv"
        write_text(path, tsv(name, self.history[name]))
        return path

    def _drop_except(self, kept: set[Path]) -> None:
        """Remove what an earlier run left in the folder and this one did not write."""
        for path in sorted(self.dir.rglob("*"), reverse=True):
            if path.is_file() and path not in kept:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    def row(self, row: dict) -> None:
        """One logged step: the history files, the summary and the VS Code signal."""
        for name in self._add(row):
            self._write(name)
        self.live.next_step()  # sync (summary, Studio) + step signal; its step += 1 is reset

    def image(self, path: str | Path) -> None:
        with atomic_path(self.image_path) as tmp:
            shutil.copyfile(path, tmp)

    def end(self) -> None:
        """The run finished: what dvclive's Live.end() signals, without its writes (this
        view made them atomically already): the VS Code step signal is removed and
        Studio, when a token is configured, hears that the experiment is done."""
        from dvclive.studio import post_to_studio
        from dvclive.vscode import cleanup_dvclive_step_completed

        cleanup_dvclive_step_completed()
        post_to_studio(self.live, "done")
