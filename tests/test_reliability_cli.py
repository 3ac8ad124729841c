"""The command line under bad arguments and signals (#14): one line, never a traceback.

`gan sample` refuses NaN truncation, huge -n and an --out that is a folder; Ctrl-C or
SIGTERM during `gan train` finishes the step, saves its checkpoint, prints one line and
exits 128 + the signal number, and the run resumes from that checkpoint exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gan.cli import main
from gan.io import load_torch
from gan.training.checkpoint import list_checkpoints


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--truncation", "nan"], "--truncation must be a finite number"),
        (["--truncation", "inf"], "--truncation must be a finite number"),
        (["-n", "100000000"], "-n must be between 1 and 4096"),
        (["-n", "0"], "-n must be between 1 and"),
        (["--seed", str(2**70)], "seeds must be between 0 and"),
        (["--interpolate", "--frames", "100000000"], "--frames must be between"),
        (["--out", "{tmp}"], "is a folder"),
        (["--out", "{tmp}/file.txt/x.png"], "file.txt is a file, not a folder"),
    ],
)
def test_bad_sample_arguments_are_one_line(dcgan_export, tmp_path, capsys, args, expected):
    (tmp_path / "file.txt").write_text("x")
    args = [a.format(tmp=tmp_path) for a in args]
    out = ["--out", str(tmp_path / "s.png")] if "--out" not in args else []
    code = main(["sample", "--model", str(dcgan_export), "--registry", str(tmp_path), *out, *args])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_good_sample_still_works(dcgan_export, tmp_path, capsys):
    assert main(["sample", "--model", str(dcgan_export), "--registry", str(tmp_path),
                 "-n", "4", "--out", str(tmp_path / "s.png")]) == 0  # fmt: skip
    assert (tmp_path / "s.png").is_file()


def test_ctrl_c_elsewhere_is_one_line(monkeypatch, capsys):
    import gan.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gan.cli, "cmd_stage", interrupted)
    assert main(["prepare"]) == 130
    assert capsys.readouterr().err.strip() == "stopped: interrupted"


def test_disk_error_outside_gan_io_is_one_line(monkeypatch, capsys):
    import errno

    import gan.cli

    def read_only(args):
        raise OSError(errno.EROFS, "Read-only file system", "/data/raw/digits")

    def other(args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(gan.cli, "cmd_stage", read_only)
    assert main(["prepare"]) == 2
    assert capsys.readouterr().err.strip() == "error: /data/raw/digits: read-only file system"
    monkeypatch.setattr(gan.cli, "cmd_stage", other)
    with pytest.raises(OSError):  # not a disk-space or permission problem: a real bug
        main(["prepare"])


# ------------------------------------------------------------------ signals during training


def _params(digits16: Path, tmp_path: Path) -> Path:
    train = {
        "data": str(digits16), "runs_dir": str(tmp_path / "runs"), "run": "sig",
        "steps": 100_000, "batch_size": 16, "device": "cpu", "threads": 1,
        "model": {"family": "dcgan", "z_dim": 8, "width": 8},
        "log_every": 5, "sample_every": 100_000, "checkpoint_every": 5, "grid_size": 4,
        "progress": False,
    }  # fmt: skip
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": train}))
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training_saves_the_current_step_and_stops(digits16, tmp_path, signum):
    params = _params(digits16, tmp_path)
    run = tmp_path / "runs" / "sig"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan.cli", "train", "-p", str(params)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.time() + 120
    while not list_checkpoints(run) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list_checkpoints(run), proc.communicate()[1]
    time.sleep(0.3)  # some steps past the checkpoint
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("stopped:")]
    assert len(lines) == 1 and signal.Signals(signum).name in lines[0]
    saved = list_checkpoints(run)[-1]
    step = load_torch(saved)["step"]
    assert f"step {step} of 100000" in lines[0] and str(saved) in lines[0]
    assert f"ckpt-{step:08d}.pt" == saved.name  # the step it stopped at, not an older one
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
