"""Only regular files are replaced (#27): a write follows a symlink to its real file and keeps
the link, goes into a character device or FIFO instead of renaming over it (`gan sample
--out /dev/null`), and refuses a block device; `gan hpo apply` edits a symlinked params
file's real file; `--out-dir` fills a symlinked folder's real folder; a file where an
output's folder path needs a folder is one error line naming both, in every stage."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import torch
import yaml
from test_data_preprocess import grey, save
from test_reliability_tracebacks import one_error
from test_training import tiny

from gan.cli import main
from gan.errors import GanError
from gan.io import save_torch, write_bytes, write_json
from gan.pngs import write_pngs


def _null_device(folder: Path) -> Path:
    """A character device like /dev/null (1, 3), made in a temp folder, so that a regression
    could never destroy the machine's /dev/null."""
    path = folder / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("cannot make a device node here (needs CAP_MKNOD)")
    return path


def _is_null_device(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_symlink_is_followed_and_kept(tmp_path):
    real = tmp_path / "real" / "metrics.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "metrics.json"
    link.symlink_to(real)
    write_json(link, {"fid": 1.0})
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text().strip().startswith("{") and not real.is_symlink()
    assert [p.name for p in real.parent.iterdir()] == ["metrics.json"]  # no temp left


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "out.bin"
    link.symlink_to(tmp_path / "target.bin")
    write_bytes(link, b"new")
    assert link.is_symlink() and (tmp_path / "target.bin").read_bytes() == b"new"


def test_link_to_a_write_protected_file_is_replaced_not_written_through(tmp_path):
    """DVC's cache with cache.type symlink: the cache file stays as it was."""
    cached = tmp_path / "cache" / "ab12"
    cached.parent.mkdir()
    cached.write_bytes(b"cached")
    cached.chmod(0o444)
    link = tmp_path / "log.csv"
    link.symlink_to(cached)
    write_bytes(link, b"new")
    assert cached.read_bytes() == b"cached"
    assert not link.is_symlink() and link.read_bytes() == b"new"


def test_symlink_loop_is_one_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(GanError, match="a: cannot write: a loop of symlinks"):
        write_bytes(tmp_path / "a", b"x")


def test_character_device_is_written_through_never_replaced(tmp_path):
    null = _null_device(tmp_path)
    save_torch(null, {"x": 1})
    write_json(null, {"x": 1})
    assert _is_null_device(null)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temp beside it


def test_symlink_to_a_device_is_written_through(tmp_path):
    null = _null_device(tmp_path)
    link = tmp_path / "samples.png"
    link.symlink_to(null)
    write_bytes(link, b"png")
    assert link.is_symlink() and _is_null_device(null)


def test_fifo_gets_the_bytes(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_bytes(fifo, b"x" * 200_000)  # more than a pipe buffer holds
    reader.join(timeout=30)
    assert got == [b"x" * 200_000] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_block_device_is_refused(tmp_path):
    disk = tmp_path / "disk"
    try:
        os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    except PermissionError:
        pytest.skip("cannot make a device node here (needs CAP_MKNOD)")
    with pytest.raises(GanError, match="disk: cannot write: it is a block device"):
        write_bytes(disk, b"x")
    assert stat.S_ISBLK(os.lstat(disk).st_mode)


def test_sample_out_to_a_device_writes_through(dcgan_export, tmp_path, capsys):
    null = _null_device(tmp_path)
    code = main(["sample", "--model", str(dcgan_export), "--registry", str(tmp_path),
                 "-n", "4", "--out", str(null)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert _is_null_device(null)


def test_interpolate_to_a_device_leaves_no_gif_beside_it(tmp_path, capsys):
    from test_onnx_export import tiny_export  # a StyleGAN2 export: DCGAN does not interpolate

    export = tiny_export(tmp_path / "model", "stylegan2")
    out = tmp_path / "out"
    out.mkdir()
    null = _null_device(out)
    code = main(["sample", "--model", str(export), "--registry", str(tmp_path),
                 "--interpolate", "--seeds", "0", "1", "--frames", "3", "--out", str(null)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert _is_null_device(null) and sorted(p.name for p in out.iterdir()) == ["null"]


def test_out_dir_fills_a_symlinked_folders_real_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "pngs"
    link.symlink_to(real)
    assert write_pngs([torch.zeros(3, 1, 16, 16)], link) == 3
    assert link.is_symlink() and sorted(p.name for p in real.iterdir())[0] == "000000.png"


def test_hpo_apply_edits_a_symlinked_params_files_real_file(tmp_path, capsys):
    real = tmp_path / "conf" / "params.yaml"
    real.parent.mkdir()
    real.write_text("train:\n  # the winner goes here\n  batch_size: 16\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    best = tmp_path / "best.json"
    best.write_text('{"params": {"batch_size": 32}}')
    assert main(["hpo", "apply", "-p", str(link), "--best", str(best)]) == 0
    assert "1 value(s) changed" in capsys.readouterr().out
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert yaml.safe_load(real.read_text())["train"]["batch_size"] == 32
    assert "# the winner goes here" in real.read_text()


@pytest.mark.parametrize(
    "args, named",
    [
        (["train"], "{file}/t"),
        (["preprocess"], "{file}/d"),
        (["classifier"], "{file}/c"),
        (["export-images", "--out", "{file}/x"], "{file}/x"),
        (["sample", "--out-dir", "{file}/x", "-n", "2"], "{file}/x"),
    ],
    ids=lambda a: a[0] if isinstance(a, list) else None,
)
def test_a_file_in_an_output_path_is_one_error_naming_it(
    digits16, dcgan_export, tmp_path, capsys, args, named
):
    """mkdir's FileExistsError was a traceback (after training, for `gan classifier`)."""
    file = tmp_path / "file.txt"
    file.write_text("not a folder")
    for i in range(4):
        save(tmp_path / "raw" / f"{i}.png", grey(60 * i))
    train = tiny(digits16, tmp_path, runs_dir=str(file)).model_dump(
        mode="json", exclude_defaults=True
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "preprocess": {"input": str(tmp_path / "raw"), "output": f"{file}/d", "resolution": 8},
        "classifier": {"data": str(digits16), "output": f"{file}/c", "epochs": 1},
        "train": train,
    }))  # fmt: skip
    args = [a.format(file=file) for a in args]
    if args[0] == "export-images":
        args += ["--data", str(digits16)]
    if args[0] == "sample":
        args += ["--model", str(dcgan_export), "--registry", str(tmp_path)]
    line = one_error(capsys, main([*args, "-p", str(params)]))
    assert line == f"error: {named.format(file=file)}: cannot write: {file} is a file, not a folder"
    assert file.read_text() == "not a folder"
