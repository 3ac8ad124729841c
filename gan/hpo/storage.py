"""Where a study lives and who runs its trials: storages, worker identity, dead workers.

A file path is an Optuna journal file; a URL is a database (SQLAlchemy), opened with
heartbeats so that a worker on another machine that dies is noticed after
2 x `hpo.heartbeat_seconds`. On any storage, a worker also fails the RUNNING trials of dead
processes on its own machine at once (host, boot id, pid and the pid's start time are
recorded with each trial). Each such trial is queued again once, with the same params.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import sys
import time
import warnings
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, fail_stale_trials
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from gan.errors import GanError
from gan.io import make_dirs, write_error

T = TypeVar("T")


def log(msg: str) -> None:
    tqdm.write(f"[hpo] {msg}")  # above a training progress bar, not through it
    sys.stdout.flush()


class _QuietGanErrors(logging.Filter):
    """Optuna logs a failed trial with its traceback and then its value; for a GanError
    both are noise: the worker logs the reason in one line (`trial 3 fail: ...`)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = None  # "Trial 3", whose second line goes too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], GanError):
            self.dropped = record.getMessage().split(" failed", 1)[0]
            return False
        return not (self.dropped and record.getMessage().startswith(f"{self.dropped} failed"))


logging.getLogger("optuna.study._optimize").addFilter(_QuietGanErrors())


def journal_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """A function of params whose journal file (hpo.storage) sits on a full or read-only
    disk fails with one error naming the file; Optuna's OSError names none."""

    @functools.wraps(fn)
    def wrapped(params, *args, **kwargs):
        try:
            return fn(params, *args, **kwargs)
        except Exception as raised:
            exc = _os_error_in(raised)
            if exc is None:
                raise
            storage = params.hpo.storage
            path = exc.filename or (None if "://" in storage else storage)
            error = write_error(Path(path), exc) if path else None
            if error is None:
                raise
            raise error from None

    return wrapped


# -- storage ----------------------------------------------------------------------------
def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _os_error_in(exc: BaseException) -> OSError | None:
    """`exc` if an OSError, or the OSError it was raised while handling: Optuna's trial
    loop turns a journal write that fails after a trial (a full disk) into an
    AssertionError ("Should not reach.") raised in the OSError's `finally`."""
    for _ in range(8):
        if isinstance(exc, OSError):
            return exc
        if exc is None or isinstance(exc, GanError) or exc.__suppress_context__:
            return None  # an error of ours already says what is wrong
        exc = exc.__context__
    return None


def _drop_torn_tail(path: Path, backend: JournalFileBackend) -> None:
    """Remove a last journal line without its newline: a write a full disk cut short.
    Optuna would append the next record onto it, and one merged line in the middle makes
    the whole journal unreadable. Done under the journal's own lock (no write is under way)."""

    def torn() -> bool:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    try:
        if not torn():
            return
        with get_lock_file(backend._lock):  # Optuna's lock; no public way to take it
            if not torn():
                return
            data = path.read_bytes()
            os.truncate(path, data.rfind(b"\n") + 1)
    except OSError:  # read-only: Optuna reads past a torn last line all the same
        return
    warnings.warn(
        f"hpo.storage {path}: removed a torn last line (a write the disk cut short)", stacklevel=3
    )


def open_storage(url: str, heartbeat_seconds: int = 60) -> BaseStorage:
    """A journal file for a path, a database (with heartbeats) for a URL."""
    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise GanError(f"hpo.storage {path}: is a folder, not an Optuna journal file")
        make_dirs(path.parent, f"hpo.storage {path}")
        try:
            # absolute: Optuna's lock is a symlink to this path, and a relative one dangles,
            # so a lock left by a killed worker was never seen as stale (a busy loop forever)
            backend = JournalFileBackend(str(path.absolute()))
            _drop_torn_tail(path, backend)
            return JournalStorage(backend)
        except OSError as exc:
            raise GanError(f"hpo.storage {path}: cannot read ({exc.strerror})") from None
        except Exception as exc:  # Optuna replays each line: any of them may be garbage
            what = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc
            raise GanError(
                f"hpo.storage {path}: not an Optuna journal file ({what}); point hpo.storage "
                "at the study's journal, or at a new file to start a new study"
            ) from None
    if url.startswith("postgresql://") and not find_spec("psycopg") and find_spec("psycopg2"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")  # SQLAlchemy 2 wants v3
    if url.startswith("sqlite:///"):
        make_dirs(Path(url.removeprefix("sqlite:///")).parent, f"hpo.storage {url}")
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    last: Exception | None = None
    for attempt in range(5):  # workers racing to create the tables of a new database
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_seconds,
                    grace_period=2 * heartbeat_seconds,
                    heartbeat_stale_trial_callback=_retry_stale,
                )
        except sqlalchemy.exc.ArgumentError as exc:
            raise GanError(f"hpo.storage {redacted(url)}: not a database URL ({exc})") from None
        except ImportError as exc:
            raise GanError(
                f"hpo.storage {redacted(url)}: its database driver is not installed ({exc.__cause__ or exc}); "
                "for PostgreSQL: pip install psycopg2-binary (URL postgresql+psycopg2://...)"
            ) from None
        except Exception as exc:  # sqlalchemy errors: unreachable server, bad credentials, races
            last = exc
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise GanError(f"hpo.storage {redacted(url)}: cannot open ({type(last).__name__}: {last})")


# -- who runs a trial, and whether that process still lives ------------------------------
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "started": _started(pid)}


def _alive(worker: dict[str, Any]) -> bool:
    try:
        os.kill(int(worker["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return worker.get("started") is None or _started(int(worker["pid"])) == worker["started"]


def queue_again(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Queue the trial's params again, once: a retry that dies as well is not retried."""
    if "retry_of" in trial.user_attrs:
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "retry_reason": reason})
    log(f"trial {trial.number} queued again: {reason}")


def _retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    queue_again(study, trial, "its worker stopped sending heartbeats (killed or lost)")


def reap_dead_workers(study: optuna.Study) -> list[int]:
    """Fail (and retry) the RUNNING trials whose worker process on this machine is gone."""
    me = worker_identity()
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        if (w.get("host"), w.get("boot")) != (me["host"], me["boot"]) or _alive(w):
            continue
        reason = f"worker {w['host']}:{w['pid']} died during the trial (killed or crashed)"
        storage = study._storage  # Optuna has no public call to fail another worker's trial
        try:
            storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue  # another worker reaped it first
        reaped.append(t.number)
        queue_again(study, t, reason)
    return reaped


def tidy(study: optuna.Study) -> None:
    """Fail the trials of dead workers: heartbeats (databases) and local pids (any storage)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    reap_dead_workers(study)
