"""Inputs that were accepted and should not be, and messages that named the wrong thing
(#27): threads beyond the cores, a missing init_from on resume, NaN exports, a file as
registry, `--out x.jpg`, links out of the raw data folder, full disks under a registry copy
and `--out-dir`, /proc as runs_dir, --trials -1, a params path that is a folder, torch
files that fail to load, and Python warnings printed raw; an init_from that is a folder,
a folder that is no registry, and a study whose trials all failed."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_promote import config, make_eval, make_run
from test_reliability_tracebacks import one_error
from test_training import tiny

from gan.cli import main
from gan.config import PreprocessConfig, parse_params
from gan.data.preprocess import preprocess
from gan.errors import GanError
from gan.export import WEIGHTS, load_export
from gan.io import load_torch
from gan.metrics.core import generate_samples
from gan.registry.promote import promote
from gan.training.loop import train

pytest_plugins = ["test_hpo_support", "test_reliability_writes"]  # params_file, full_disk


def test_threads_beyond_the_cores_are_one_error(digits16, tmp_path):
    with pytest.raises(GanError, match="train.threads 1000000: more than the .* CPU cores"):
        train(tiny(digits16, tmp_path, threads=1_000_000))
    assert not (tmp_path / "runs" / "t").exists()


def test_missing_init_from_fails_a_resume_too(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, steps=4)
    train(cfg)
    resumed = cfg.model_copy(update={"steps": 8, "init_from": str(tmp_path / "gone.pt")})
    with pytest.raises(GanError, match=f"train.init_from {tmp_path / 'gone.pt'}: file not found"):
        train(resumed)
    with pytest.raises(GanError, match=f"train.init_from {tmp_path}: a folder, not a checkpoint"):
        train(resumed.model_copy(update={"init_from": str(tmp_path)}))  # was "file not found"


def _nan_run(tmp_path: Path) -> Path:
    run = make_run(tmp_path, "nan", seed=0)
    from safetensors.torch import load_file, save_file

    tensors = load_file(run / "export" / WEIGHTS)
    save_file({k: v * float("nan") for k, v in tensors.items()}, run / "export" / WEIGHTS)
    return run


def test_nan_export_is_neither_measured_nor_promoted(tmp_path):
    run = _nan_run(tmp_path)
    exported = load_export(run / "export")
    with pytest.raises(GanError, match=f"{run / 'export'}: outputs NaN or inf"):
        generate_samples(exported, 8, 0, 8, progress=False, source=str(run / "export"))
    metrics = make_eval(tmp_path, {"fid": 10.0})  # an evaluation of another export, say
    with pytest.raises(GanError, match=f"{run / 'export'}: its weights hold NaN or inf"):
        promote(config(tmp_path, run, metrics))
    assert not (tmp_path / "registry").exists()


def test_nan_export_draws_no_grid_and_no_pngs(tmp_path):
    """`gan sample` refuses it too: black squares in a grid look like a model's output."""
    from gan.sample import sample

    run = _nan_run(tmp_path)
    for kwargs in ({"out": tmp_path / "grid.png"}, {"out": None, "out_dir": tmp_path / "pngs"}):
        with pytest.raises(GanError, match=f"{run}: outputs NaN or inf.*nothing written"):
            sample(str(run), 4, **kwargs)
    assert not (tmp_path / "grid.png").exists() and not (tmp_path / "pngs").exists()


def test_a_file_as_registry_is_one_error(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  steps: 10\n")
    for action in ("list", "show"):
        code = main(["registry", action, "-p", str(params), "--registry", str(params)])
        assert one_error(capsys, code) == f"error: {params}: is a file, not a registry folder"


def test_a_folder_that_is_no_registry_is_one_error_naming_those_in_it(tmp_path, capsys):
    """`--registry registry` (their parent) or a run folder read as "registry is empty"."""
    parent = tmp_path / "registry"
    (parent / "digits").mkdir(parents=True)
    (parent / "digits" / "history.jsonl").write_text("")
    for action in ("list", "show"):
        code = main(["registry", action, "--registry", str(parent)])
        assert one_error(capsys, code) == (
            f"error: {parent}: not a registry folder (no history.jsonl; it holds digits); "
            f"the registries in it: {parent / 'digits'}"
        )
    new = tmp_path / "new"  # no folder yet, or an empty one: nothing promoted there yet
    assert main(["registry", "list", "--registry", str(new)]) == 0
    assert capsys.readouterr().out.strip() == f"registry is empty: {new}"


def test_sample_writes_the_format_its_suffix_names(dcgan_export, tmp_path, capsys):
    base = ["sample", "--model", str(dcgan_export), "--registry", str(tmp_path), "-n", "4"]
    for name, fmt in (("s.jpg", "JPEG"), ("s.webp", "WEBP"), ("s.png", "PNG"), ("s", "PNG")):
        assert main([*base, "--out", str(tmp_path / name)]) == 0
        with Image.open(tmp_path / name) as img:
            assert img.format == fmt
    bad = tmp_path / "s.xyz"
    line = one_error(capsys, main([*base, "--out", str(bad)]))
    assert (
        line == f"error: {bad}: Pillow cannot write .xyz images; name the file .png, .jpg or .webp"
    )
    xbm = tmp_path / "s.xbm"  # Pillow knows the suffix but writes 1-bit images only
    assert "cannot write the grid as XBM" in one_error(capsys, main([*base, "--out", str(xbm)]))
    assert not bad.exists() and not xbm.exists()
    walk = tmp_path / "walk.gif"  # the strip and its GIF would be one file
    code = main([*base, "--interpolate", "--out", str(walk)])
    assert "--interpolate writes its GIF beside the strip" in one_error(capsys, code)


# ------------------------------------------------------------------ links out of the raw data


def _linked_folder(tmp_path: Path) -> Path:
    src, outside = tmp_path / "raw", tmp_path / "elsewhere"
    for folder in (src, outside):
        folder.mkdir()
    for i in range(4):
        Image.new("L", (16, 16), 40 * i).save(src / f"{i}.png")
    Image.new("L", (16, 16), 200).save(outside / "other.png")
    (src / "other.png").symlink_to(outside / "other.png")
    (src / "passwd.png").symlink_to("/etc/passwd")
    (src / "inside.png").symlink_to(src / "0.png")  # a link within the folder is fine
    return src


def test_links_out_of_the_raw_folder_are_rejected_unless_asked_for(tmp_path):
    src = _linked_folder(tmp_path)
    cfg = PreprocessConfig(input=str(src), output=str(tmp_path / "out"), resolution=8)
    manifest = preprocess(cfg.model_copy(update={"test_fraction": 0.0}))
    reasons = {r["file"]: r["reason"] for r in manifest["rejected"]}
    assert sorted(reasons) == ["other.png", "passwd.png"]
    assert (
        "outside" in reasons["other.png"] and "preprocess.follow_symlinks" in reasons["other.png"]
    )
    assert manifest["splits"]["train"]["count"] == 5

    followed = cfg.model_copy(update={"test_fraction": 0.0, "follow_symlinks": True})
    manifest = preprocess(followed.model_copy(update={"output": str(tmp_path / "out2")}))
    assert manifest["splits"]["train"]["count"] == 6  # other.png read; passwd.png no image
    assert [r["file"] for r in manifest["rejected"]] == ["passwd.png"]


def test_follow_symlinks_is_validated():
    assert parse_params({"preprocess": {"follow_symlinks": True}}).preprocess.follow_symlinks
    with pytest.raises(GanError, match="preprocess.follow_symlinks: Input should be a valid bool"):
        parse_params({"preprocess": {"follow_symlinks": "sometimes"}})


# ------------------------------------------------------------------ messages that name the right thing


def test_full_registry_disk_names_the_registry_copy(tmp_path, full_disk):
    run = make_run(tmp_path, "a", seed=0)
    cfg = config(tmp_path, run, make_eval(tmp_path, {"fid": 10.0}))
    registry = full_disk / "registry"
    with pytest.raises(GanError) as info:
        promote(cfg.model_copy(update={"registry": str(registry)}))
    assert str(info.value) == f"{registry / 'models' / 'v1'}: cannot write: no space left on device"


def test_full_disk_under_out_dir_names_the_folder(dcgan_export, full_disk, capsys):
    out = full_disk / "pngs"
    args = ["sample", "--model", str(dcgan_export), "--registry", str(full_disk)]
    code = main([*args, "-n", "500", "--out-dir", str(out)])
    assert one_error(capsys, code) == f"error: {out}: cannot write: no space left on device"


def test_a_virtual_file_system_is_not_called_full(digits16, tmp_path):
    with pytest.raises(GanError, match=r"^/proc/1/\S+: cannot write: a virtual file system"):
        train(tiny(digits16, tmp_path).model_copy(update={"runs_dir": "/proc/1"}))


def test_trials_below_one_and_a_params_folder_are_named(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  steps: 10\n")
    code = main(["hpo", "run", "-p", str(params), "--trials", "-1"])
    assert one_error(capsys, code) == "error: --trials must be at least 1, not -1"
    code = main(["train", "-p", str(tmp_path)])
    assert one_error(capsys, code) == f"error: {tmp_path}: is a folder, not a params file"


def test_a_study_without_a_complete_trial_says_why_its_trials_failed(params_file, capsys):
    """Its last line said only "no trial has completed yet"."""
    code = main(["hpo", "run", "-p", str(params_file), "-S", "train.threads=1000000",
                 "--trials", "1"])  # fmt: skip
    assert one_error(capsys, code).endswith(
        "no trial has completed yet (`gan hpo run`); trial 0 failed: train.threads 1000000: "
        f"more than the {os.cpu_count()} CPU cores here (null: one each)"
    )


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "content, expected",
    [
        (_torch_bytes({"s": slice(1, 2)}), "refused: loading it would call slice"),
        (pickle.dumps({"a": 1}), "not a weights-only torch file"),
        (_torch_bytes({"w": torch.zeros(100)})[:300], "truncated or empty"),
        (b"", "truncated or empty"),
        (b"hello\n", "not a torch file, or corrupt"),
    ],
    ids=["global", "plain-pickle", "truncated", "empty", "text"],
)
def test_failed_torch_load_is_one_line_never_suggesting_unpickling(tmp_path, content, expected):
    path = tmp_path / "train-00000.pt"  # a data shard, not a checkpoint
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "pickle protocol" warning is kept inside
        with pytest.raises(GanError) as info:
            load_torch(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {expected}") and "\n" not in message
    assert "weights_only" not in message and "checkpoint" not in message


# ------------------------------------------------------------------ warnings as one line


def _gan(cwd: Path, *args: str, setup: str = "") -> subprocess.CompletedProcess:
    """`gan` in its own process: pytest records warnings in-process, before they print."""
    code = f"import sys\n{setup}\nfrom gan.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def test_torn_history_line_is_one_warning_line(tmp_path):
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "history.jsonl").write_text('{"version": 1, "deci')
    done = _gan(tmp_path, "registry", "list", "--registry", str(registry))
    assert done.returncode == 0 and done.stderr.splitlines() == [
        f"warning: {registry / 'history.jsonl'}:1: skipping a torn last line (an interrupted "
        "write); the next registry write removes it"
    ]


def test_decompression_bomb_warning_is_one_line_naming_the_file(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    for i in range(3):
        Image.new("L", (16 + 24 * (i == 0), 40), 60 * i).save(src / f"{i}.png")
    (tmp_path / "params.yaml").write_text(
        f"preprocess:\n  input: {src}\n  output: {tmp_path / 'out'}\n  resolution: 8\n"
    )
    bomb = "from PIL import Image; Image.MAX_IMAGE_PIXELS = 1000"  # 40x40: a "bomb" here
    done = _gan(tmp_path, "preprocess", setup=bomb)
    warned = [line for line in done.stderr.splitlines() if "warn" in line.lower()]
    assert done.returncode == 0 and len(warned) == 1, done.stderr
    assert warned[0].startswith(f"warning: {src / '0.png'}: Image size (1600 pixels) exceeds")
