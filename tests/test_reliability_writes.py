"""Nothing lost or half-written when a write fails (#14): full and read-only disks on
small tmpfs mounts (skipped where mounting is not allowed), fault injection where the
kernel cannot be made to fail, fsync before rename, and temps of killed writes cleaned."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training import tiny

import gan.io
from gan.errors import GanError
from gan.io import (
    atomic_path,
    check_writable,
    clean_stale_temps,
    is_stale_temp,
    save_torch,
    write_json,
)
from gan.training.checkpoint import set_aside
from gan.training.loop import train


def _mount(target: Path, options: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    return target


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte."""
    try:
        with open(disk / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return disk


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs filled to the last byte."""
    disk = fill(_mount(tmp_path / "full", "size=256k"))
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def read_only(tmp_path):
    disk = _mount(tmp_path / "ro", "ro,size=64k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_json(p / "metrics.json", {"x": list(range(100_000))}),
        lambda p: save_torch(p / "ckpt.pt", {"w": torch.zeros(100_000)}),
        lambda p: gan.io.write_bytes(p / "sub" / "a.bin", b"x" * 1_000_000),
    ],
    ids=["json", "torch", "bytes-in-new-folder"],
)
def test_full_disk_is_one_error_naming_path_and_cause(full_disk, write):
    with pytest.raises(GanError, match="no space left on device") as info:
        write(full_disk)
    assert str(full_disk) in str(info.value) and "Traceback" not in str(info.value)
    assert info.value.__cause__ is None  # printed as one line by the CLI
    assert _temps(full_disk) == []  # the half-written temp is gone


def test_torch_iostream_error_on_full_disk_names_the_cause(full_disk, monkeypatch):
    def failing_save(obj, f):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(GanError, match="ckpt.pt: cannot write: no space left on device"):
        save_torch(full_disk / "ckpt.pt", {"w": torch.zeros(1)})


def test_read_only_folder_is_one_error(read_only):
    with pytest.raises(GanError, match="read-only file system"):
        write_json(read_only / "run.json", {})
    with pytest.raises(GanError, match=f"{read_only}.*read-only"):
        check_writable(read_only / "runs" / "t")


def test_permission_denied_is_one_error(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(gan.io.tempfile, "mkstemp", denied)
    with pytest.raises(GanError, match="x.json: cannot write: permission denied"):
        write_json(tmp_path / "x.json", {})


def test_training_refuses_a_read_only_run_folder_before_the_first_step(
    digits16, read_only, monkeypatch
):
    import gan.training.loop as loop

    monkeypatch.setattr(loop, "Session", lambda *a: pytest.fail("built a session"))
    cfg = tiny(digits16, read_only).model_copy(update={"runs_dir": str(read_only / "runs")})
    with pytest.raises(GanError, match="read-only file system"):
        train(cfg)


def test_checkpoint_write_failure_names_the_last_good_checkpoint(digits16, tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def save_once(obj, f):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_once)
    cfg = tiny(digits16, tmp_path)
    with pytest.raises(GanError) as info:
        train(cfg)
    message = str(info.value)
    assert "ckpt-00000008.pt: cannot write: no space left on device" in message
    assert "the last good checkpoint is" in message and "ckpt-00000004.pt" in message
    assert _temps(cfg.run_dir / "checkpoints") == []


def test_file_is_fsynced_before_rename_and_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")) else "file"
        events.append(f"fsync-{kind}")
        real_fsync(fd)

    def replace(a, b):
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(gan.io.os, "fsync", fsync)
    monkeypatch.setattr(gan.io.os, "replace", replace)
    save_torch(tmp_path / "a.pt", {"x": torch.ones(2)})
    assert events == ["fsync-file", "replace", "fsync-dir"]


# ------------------------------------------------------------------ stale temp files


def _age(path: Path, seconds: float) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_only_temps_of_dead_writers_are_removed(tmp_path):
    host = gan.io.HOST
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    files = {
        "dead": f".a.pt.{dead}@{host}.x1y2.tmp",
        "alive": f".a.pt.{os.getpid()}@{host}.x1y2.tmp",
        "other_host_new": f".a.pt.{dead}@elsewhere.x1y2.tmp",
        "other_host_old": f".b.pt.{dead}@elsewhere.x1y2.tmp",
        "legacy_old": ".c.json.abcd1234.tmp",
        "legacy_new": ".d.json.abcd1234.tmp",
        "users": ".notes.tmp",
    }
    for name in files.values():
        (tmp_path / name).write_bytes(b"x")
    _age(tmp_path / files["other_host_old"], gan.io.STALE_SECONDS + 60)
    _age(tmp_path / files["legacy_old"], gan.io.LEGACY_STALE_SECONDS + 60)
    _age(tmp_path / files["users"], 10 * gan.io.STALE_SECONDS)
    removed = {p.name for p in clean_stale_temps(tmp_path, force=True)}
    assert removed == {files[k] for k in ("dead", "other_host_old", "legacy_old")}
    assert is_stale_temp(tmp_path / files["alive"]) is False


def test_temp_of_a_killed_write_is_removed_on_the_next_write(tmp_path):
    code = (
        "import os, sys; from gan.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half' * 1000); os._exit(9)\n"
    )
    target = tmp_path / "ckpt-00000004.pt"
    subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert len(_temps(tmp_path)) == 1 and not target.exists()
    gan.io._swept.discard(str(tmp_path.resolve()))  # a new process would sweep afresh
    write_json(tmp_path / "other.json", {})
    assert _temps(tmp_path) == []


def test_atomic_path_leaves_the_old_file_when_the_body_fails(tmp_path):
    target = tmp_path / "log.csv"
    target.write_text("old")
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise ValueError("boom")
    assert target.read_text() == "old" and _temps(tmp_path) == []


# ------------------------------------------------------------------ set-aside generations


def _fake_checkpoints(run: Path, steps: list[int]) -> None:
    d = run / "checkpoints"
    d.mkdir(parents=True, exist_ok=True)
    for s in steps:
        (d / f"ckpt-{s:08d}.pt").write_bytes(b"x")


def test_set_aside_keeps_generations_up_to_the_bound(tmp_path):
    for gen in range(1, 6):
        _fake_checkpoints(tmp_path, [gen, gen + 10])
        assert set_aside(tmp_path, keep=3).name == f"previous-{gen}"
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["previous-3", "previous-4", "previous-5"]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "previous-5").iterdir()) == [
        "ckpt-00000005.pt",
        "ckpt-00000015.pt",
    ]


def test_set_aside_zero_deletes_and_leaves_the_old_previous_folder(tmp_path):
    (tmp_path / "checkpoints" / "previous").mkdir(parents=True)
    _fake_checkpoints(tmp_path, [1])
    assert set_aside(tmp_path, keep=0) is None
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["previous"]


def test_keep_set_aside_is_a_neutral_train_param():
    from gan.config import TrainConfig
    from gan.training.fingerprint import NEUTRAL_KEYS

    assert "keep_set_aside" in NEUTRAL_KEYS and TrainConfig().keep_set_aside == 3
