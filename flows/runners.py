"""Prefect task runners by name, for the flows' `task_runner` parameter.

- ``inline`` (pipeline and retrain; their default): each stage in the flow's own process,
  one after another, as `dvc repro` runs them;
- ``threads`` (hpo only, its default): tasks in threads of the flow's process. Concurrent
  trainings there share torch's global random stream, so they are not bit-for-bit
  reproducible: the pipeline, whose results must match `dvc repro`, refuses it;
- ``processes``: a process per task (reproducible, more memory);
- ``dask``: prefect-dask; a local cluster, or `dask_address` of a running one whose workers
  have this repository, its data and the registry at the same paths.
"""

from __future__ import annotations

from typing import Literal

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from gan.errors import GanError

Runner = Literal["threads", "processes", "dask"]
StageRunner = Literal["inline", "processes", "dask"]


def make_task_runner(kind: str, concurrency: int, dask_address: str | None = None) -> TaskRunner:
    """The Prefect task runner that runs `concurrency` tasks at a time."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=concurrency)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=concurrency)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise GanError(
                "task_runner dask needs prefect-dask: pip install prefect-dask==0.3.7"
            ) from None
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        cluster = {
            "n_workers": concurrency,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",  # a free port: 8787 may be another cluster's
        }
        return DaskTaskRunner(cluster_kwargs=cluster)
    raise GanError(f"task_runner must be threads, processes or dask, not {kind!r}")


def stage_runner(kind: str, dask_address: str | None = None) -> TaskRunner | None:
    """The runner for the pipeline's concurrent stages (classifier beside train), or None
    for inline. Two at a time: nothing else in the pipeline is independent."""
    if kind == "inline":
        return None
    if kind == "threads":
        raise GanError(
            "task_runner threads would train beside the classifier in one process, sharing "
            "torch's global random stream, so the run would not match `dvc repro`; "
            "use processes or dask"
        )
    if kind not in ("processes", "dask"):
        raise GanError(f"task_runner must be inline, processes or dask, not {kind!r}")
    return make_task_runner(kind, 2, dask_address)
