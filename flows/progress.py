"""Training progress in the Prefect UI: a log line per logged step and a progress artifact.

The trainer knows nothing of Prefect: train_task hands gan.training.log a listener
(`reporting`), which sees each row of the metrics log as it is written, i.e. once per
`train.log_every` steps, when the numbers are already on the host. The line goes through
the task run's logger (plain `logging` outside a run); the artifact is updated at most
every few seconds, so a fast GPU run does not wait on the API at every log interval.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from gan.training.log import listening

ARTIFACT_SECONDS = 5.0  # at most one progress update per this many seconds (and the last)


def progress_line(row: dict[str, Any], total: int) -> str:
    """'train step 400/2000 (20%): loss_D_main 1.21, loss_G_main 0.93, 812 img/s'."""
    step = int(row["step"])
    parts = [f"{k} {v:.4g}" for k, v in row.items() if k.startswith("loss_") and _finite(v)]
    if _finite(row.get("img_per_s")):
        parts.append(f"{row['img_per_s']:.0f} img/s")
    return f"train step {step}/{total} ({100 * step / total:.0f}%): " + ", ".join(parts)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def artifact_key(run: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) naming the run."""
    return "train-progress-" + (re.sub(r"[^a-z0-9]+", "-", run.lower()).strip("-") or "run")


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The task or flow run's logger inside a Prefect run, else a plain logger."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("ganops.train")


class TrainReporter:
    """The listener: `log(line)` per row, `progress(percent)` when due or at the end."""

    def __init__(
        self,
        total: int,
        log: Callable[[str], None],
        progress: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.log, self.progress, self.clock = total, log, progress, clock
        self._last = -math.inf

    def __call__(self, row: dict[str, Any]) -> None:
        self.log(progress_line(row, self.total))
        step, now = int(row["step"]), self.clock()
        if step >= self.total or now - self._last >= ARTIFACT_SECONDS:
            self.progress(min(100.0, 100.0 * step / self.total))
            self._last = now


@contextlib.contextmanager
def reporting(total: int, run: str) -> Iterator[None]:
    """Report the training rows written meanwhile to the current Prefect run."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    logger = run_logger()
    try:
        get_run_context()
        artifact = create_progress_artifact(
            0.0, key=artifact_key(run), description=f"training {run}: steps done of {total}"
        )
    except MissingContextError:  # not in a run: log lines only
        artifact = None

    def progress(percent: float) -> None:
        if artifact is not None:
            update_progress_artifact(artifact, percent)

    with listening(TrainReporter(total, logger.info, progress)):
        yield
