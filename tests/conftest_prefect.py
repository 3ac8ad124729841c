"""A real Prefect server for the flow tests, started once per session, and helpers.

Load with ``pytest_plugins = ["conftest_prefect"]``. The server is a real `prefect server
start` on a free loopback port; the session gets a PREFECT_HOME of its own (database,
results, cache records, profiles), so the user's ~/.prefect is never read or written.
The fixture's object runs `prefect` CLI subprocesses (deploy, worker) against the same
server and reads runs' logs, artifacts and task states back through the client.
`prefect_env` also puts the server in the environment, as a user's shell has it, for tests
whose tasks run in other processes (task runners processes and dask).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    env: dict[str, str]

    def cli(self, *args: str, cwd: Path, timeout: float = 300) -> str:
        """Run `prefect <args>` against this server; fails the test with its output."""
        proc = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{out[-4000:]}"
        return out

    def logs(self, flow_run_id: Any) -> list[str]:
        """Every log message the Prefect API holds for a flow run (after flushing ours)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        return [log.message for log in logs]

    def artifacts(self, flow_run_id: Any) -> dict[str, Any]:
        """The artifacts a flow run created, by key."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
        return {a.key: a for a in found}

    def task_runs(self, flow_run_id: Any) -> list[Any]:
        """A flow run's task runs as the server recorded them, oldest first."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        return sorted(runs, key=lambda r: r.expected_start_time or r.created)

    def task_states(self, flow_run_id: Any) -> dict[str, list[str]]:
        """Task name -> final state names (e.g. ["Cached"]) of a flow run's task runs."""
        states: dict[str, list[str]] = {}
        for r in self.task_runs(flow_run_id):
            states.setdefault(r.name.rsplit("-", 1)[0], []).append(r.state.name if r.state else "?")
        return states


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"prefect server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> PrefectServer:
    """`prefect server start` on a free loopback port, with its own PREFECT_HOME (and so
    its own SQLite database). Unlike the test harness's ephemeral server, this one runs
    the scheduler, so schedules create runs as they would for a user."""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    home = tmp_path_factory.mktemp("prefect-home")
    storage = home / "storage"
    url = f"http://127.0.0.1:{_free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(storage),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log = home / "server.log"
    port = url.rsplit(":", 1)[1].split("/")[0]
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", port],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_healthy(server, url, log, timeout=240)
        updates = {
            PREFECT_API_URL: url,
            PREFECT_HOME: str(home),
            PREFECT_LOCAL_STORAGE_PATH: str(storage),
        }
        with temporary_settings(updates=updates):
            yield PrefectServer(url, home, env)
            APILogWorker.drain_all(timeout=10)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the service processes it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture
def prefect_env(prefect_server, monkeypatch) -> Iterator[PrefectServer]:
    """The server in os.environ and in Prefect's process-global settings for one test.

    The session's settings are a context variable of the test's thread only; task-runner
    subprocesses read the environment, and the process pool's message-forwarding thread
    (task-run events and logs from the subprocesses) reads the global settings, which
    Prefect built from the environment at import. Without both, they report to an
    ephemeral server of their own and the task runs never reach this one."""
    from prefect.context import refresh_global_settings_context

    for key, value in prefect_server.env.items():
        if key.startswith("PREFECT_"):
            monkeypatch.setenv(key, value)
    refresh_global_settings_context()
    yield prefect_server
    monkeypatch.undo()
    refresh_global_settings_context()
