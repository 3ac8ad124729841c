"""Worker processes on one study: killed mid-trial and resumed; two at once, on a journal
file and on a real PostgreSQL server started here (skipped, saying why, where it cannot be).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_hpo_support import start_worker

from gan.config import load_params
from gan.hpo.study import load, run

pytest_plugins = ["test_hpo_support"]  # fixtures: params_file, classifier16
pytestmark = pytest.mark.slow


def _wait_for(condition, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for p in procs:
            if p.poll() not in (None, 0):
                pytest.fail(f"worker exited with {p.returncode} while waiting for {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_study_resumes_after_its_worker_is_killed(params_file):
    cwd = params_file.parent
    text = params_file.read_text().replace("report_every: 6", "report_every: 3")
    # 3 trials of 30 steps, a report every 3: the kill lands between trial 1's first report
    # and its end however fast the machine trains
    params_file.write_text(text.replace("budget_steps: 6", "budget_steps: 30"))
    params = load_params(params_file)
    proc = start_worker(cwd, "-", "-")
    try:

        def second_trial_reported() -> bool:
            if not (cwd / params.hpo.storage).is_file():
                return False
            trials = load(params).get_trials(deepcopy=False)
            return len(trials) > 1 and 3 in trials[1].intermediate_values

        _wait_for(second_trial_reported, 240, "trial 1 to report", [proc])
        os.kill(proc.pid, signal.SIGKILL)  # mid-trial: between its report and its end
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = load(params).get_trials()
    assert [t.state for t in killed] == [TrialState.COMPLETE, TrialState.RUNNING]

    summary = run(params)  # rerun: reaps the dead worker's trial and continues

    trials = load(params).get_trials()
    assert summary["ran"] == 2 and summary["complete"] == 3
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert "died during the trial" in trials[1].user_attrs["fail_reason"]
    assert f":{proc.pid} " in trials[1].user_attrs["fail_reason"]
    retry = trials[2]
    assert retry.user_attrs["retry_of"] == 1 and retry.params == trials[1].params
    assert trials[0].user_attrs["worker"]["pid"] == proc.pid
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4


# -- several workers at once ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's packages), owned by this test."""
    try:
        import psycopg2
    except ImportError:
        pytest.skip(
            "psycopg2 is not installed (pip install psycopg2-binary) for the PostgreSQL test"
        )
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server is not installed (apt-get install postgresql) for this test")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="ganops-pg-"))  # not under pytest's root-only tmp dir
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"
    opts = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
    try:
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "ganops", "--no-sync"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "start"],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {getattr(exc, 'stderr', b'') or exc}")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="ganops", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE hpo")
        conn.close()
        yield f"postgresql://ganops@127.0.0.1:{port}/hpo"  # gan.hpo picks psycopg2 for it
    finally:
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["journal", "postgresql"])
def storage(request) -> str:
    if request.param == "journal":
        return "runs/hpo/optuna.journal"
    return request.getfixturevalue("postgres_url")


def test_two_workers_share_one_study_without_losing_or_repeating_trials(params_file, storage):
    cwd = params_file.parent
    text = params_file.read_text().replace("n_trials: 3", "n_trials: 4")
    text = text.replace("  study: tiny\n", f"  study: tiny\n  storage: {storage}\n")
    params_file.write_text(text)
    barrier = str(cwd / "start")
    procs = [start_worker(cwd, barrier, "2", str(i), "2") for i in range(2)]
    for p in procs:
        assert p.wait(300) == 0, (cwd / "worker-0.log").read_text()[-3000:]

    params = load_params(params_file)
    trials = load(params).get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert len({t._trial_id for t in trials}) == 4
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].user_attrs.get("source") == "params.yaml"  # enqueued once, not per worker
    by_pid: dict[int, list[int]] = {}
    for t in trials:
        by_pid.setdefault(t.user_attrs["worker"]["pid"], []).append(t.number)
    assert sorted(by_pid) == sorted(p.pid for p in procs)
    assert all(len(v) == 2 for v in by_pid.values())
    for i, p in enumerate(procs):  # what each worker says it ran is what the storage holds
        said = re.findall(r"trial (\d+) complete", (cwd / f"worker-{i}.log").read_text())
        assert sorted(map(int, said)) == sorted(by_pid[p.pid])
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4
    assert all((cwd / t.user_attrs["run_dir"] / "export").is_dir() for t in trials)
    assert optuna.get_all_study_names(storage=load(params)._storage) == ["tiny"]
