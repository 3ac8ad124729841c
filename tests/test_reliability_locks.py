"""One process per folder (#27): a second `gan train` of a run, or `gan preprocess` of a
dataset, refuses at once with one line naming the holder's PID and host; the lock of a
killed process is taken over; data-parallel training takes one lock, in its launcher."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_data_preprocess import grey, run, save
from test_training import tiny

from gan.cli import main
from gan.errors import GanError
from gan.io import HOST
from gan.lock import acquire, folder_lock, lock_path, release
from gan.training.loop import train

HOLD = """
import os, sys, time
from gan.lock import acquire
acquire(sys.argv[1], sys.argv[2])
if len(sys.argv) > 3 and os.fork():  # the parent dies, its forked child lives on
    os._exit(0)
print(os.getpid(), flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def held(folder: Path, what: str = "gan train", fork: bool = False) -> Iterator[int]:
    """Another process holding `folder`'s lock; yields the pid of the process left holding."""
    args = [sys.executable, "-c", HOLD, str(folder), what] + (["fork"] if fork else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    if fork:
        proc.wait()  # the parent is gone; its child holds whatever it kept
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def test_second_holder_refuses_naming_pid_and_host(tmp_path):
    with held(tmp_path / "run") as pid, pytest.raises(GanError) as info:
        acquire(tmp_path / "run", "gan train")
    assert f"gan train (PID {pid} on {HOST}) is using it" in str(info.value)
    assert str(tmp_path / "run") in str(info.value)


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    args = [sys.executable, "-c", HOLD, str(tmp_path / "run"), "gan train"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    assert lock_path(tmp_path / "run").read_text().startswith(f"{pid}@{HOST}")  # left behind
    fd = acquire(tmp_path / "run", "gan train")
    assert lock_path(tmp_path / "run").read_text() == f"{os.getpid()}@{HOST} gan train\n"
    release(fd)
    assert not lock_path(tmp_path / "run").exists()  # removed on release


def test_lock_file_naming_a_dead_pid_is_taken_over(tmp_path):
    lock_path(tmp_path / "run").write_text(f"999999999@{HOST} gan train\n")
    with folder_lock(tmp_path / "run", "gan train"):
        assert lock_path(tmp_path / "run").read_text().startswith(f"{os.getpid()}@")


def test_one_process_cannot_take_a_lock_twice(tmp_path):
    """Refused, not deadlocked: a flow or trial that trained a run inside a training of it."""
    with (
        folder_lock(tmp_path / "run", "gan train"),
        pytest.raises(GanError, match=f"PID {os.getpid()}"),
    ):
        acquire(tmp_path / "run", "gan train")


def test_forked_child_does_not_keep_its_parents_lock(tmp_path):
    with held(tmp_path / "run", fork=True):  # the holder died, its forked child lives
        release(acquire(tmp_path / "run", "gan train"))


def test_symlinked_and_real_path_are_one_lock(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with held(tmp_path / "real"), pytest.raises(GanError, match="is using it"):
        acquire(tmp_path / "link", "gan train")


# ---------------------------------------------------------------------- the stages


def _train_params(digits16: Path, tmp_path: Path, **train) -> Path:
    cfg = tiny(digits16, tmp_path, **train).model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": cfg}))
    return path


def test_second_gan_train_of_a_run_refuses_at_once_in_one_line(digits16, tmp_path, capsys):
    params = _train_params(digits16, tmp_path)
    run_dir = tmp_path / "runs" / "t"
    with held(run_dir) as pid:
        start = time.monotonic()
        assert main(["train", "-p", str(params)]) == 2
        assert time.monotonic() - start < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"PID {pid} on {HOST}" in err[0]
    assert not (run_dir / "checkpoints").exists()  # nothing of the holder's run was touched


def test_training_takes_the_lock_over_from_a_killed_one_and_releases_it(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, steps=4, checkpoint_every=4, sample_every=4)
    cfg.run_dir.mkdir(parents=True)
    lock_path(cfg.run_dir).write_text(f"999999999@{HOST} gan train\n")  # killed mid-run
    assert train(cfg)["steps"] == 4
    assert not lock_path(cfg.run_dir).exists()


def test_data_parallel_launcher_holds_the_one_lock(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, world_size=2)
    with held(cfg.run_dir) as pid, pytest.raises(GanError, match=f"PID {pid}"):
        train(cfg)  # refused before any rank is spawned


def test_under_torchrun_rank_0_takes_the_lock_and_every_rank_hears_it_is_held(digits16, tmp_path):
    params = _train_params(digits16, tmp_path, world_size=2)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with held(tmp_path / "runs" / "t") as pid:
        done = subprocess.run([*torchrun, "-m", "gan.cli", "train", "-p", str(params)],
                              capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    refusal = f"gan train (PID {pid} on {HOST}) is using it"  # the ranks' lines may interleave
    assert done.returncode != 0 and done.stderr.count(refusal) == 2  # no rank left waiting


def test_second_preprocess_of_a_dataset_refuses(tmp_path):
    save(tmp_path / "src" / "a.png", grey(0))
    save(tmp_path / "src" / "b.png", grey(99))
    with held(tmp_path / "d", "gan preprocess") as pid, pytest.raises(GanError) as info:
        run(tmp_path / "src", tmp_path / "d", resolution=8)
    assert f"gan preprocess (PID {pid} on {HOST})" in str(info.value)
    assert not (tmp_path / "d").exists()
