"""Rewrites that keep the old until the new is whole (#27): `gan preprocess` over an existing
dataset builds the new one beside it and swaps it in, so a kill or a full disk mid-rewrite
leaves the old dataset usable; the temp folders of killed preprocesses and promotes are
swept once their process is gone, never while it lives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_data_preprocess import grey, run, save
from test_registry import PROTOCOL, RULE, candidate, make_export
from test_reliability_writes import _mount, fill

import gan.io
from gan.data.shards import MANIFEST, load_split, read_manifest
from gan.errors import GanError
from gan.io import HOST
from gan.registry import Registry


@pytest.fixture(autouse=True)
def fresh_sweeps():
    """Each test is a new process as far as sweeping goes (once per folder and process)."""
    gan.io._swept.clear()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _images(src: Path, n: int = 10) -> Path:
    for i in range(n):
        save(src / f"{i}.png", grey(20 * i))
    return src


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _still_the_old(out: Path, old: dict) -> None:
    assert json.loads((out / MANIFEST).read_text())["content_hash"] == old["content_hash"]
    assert load_split(out, "train").images.shape[-1] == old["resolution"]  # hash checked too


# -------------------------------------------------------------------------- preprocess

DIE_MID_REWRITE = """
import os, sys
import gan.data.preprocess as p
from gan.config import PreprocessConfig

write = p._write_split
def write_then_die(new, split, *args):
    info = write(new, split, *args)
    os._exit(9)  # killed with the train split written and the test split not
p._write_split = write_then_die
p.preprocess(PreprocessConfig(input=sys.argv[1], output=sys.argv[2], resolution=16))
"""


def test_killed_preprocess_leaves_the_old_dataset_and_its_temp_is_swept(tmp_path):
    src, out = _images(tmp_path / "src"), tmp_path / "data" / "d"
    old = run(src, out, resolution=8)
    (out / "notes.txt").write_text("mine")
    killed = subprocess.Popen([sys.executable, "-c", DIE_MID_REWRITE, str(src), str(out)])
    assert killed.wait() == 9
    _still_the_old(out, old)
    temp, lock = _temps(out.parent)  # its half-built dataset and lock file (unlocked now)
    assert lock == ".d.lock" and temp.startswith(f".d.{killed.pid}@{HOST}.")
    assert (out.parent / temp / "train-00000.pt").is_file()
    new = run(src, out, resolution=16)
    assert _temps(out.parent) == []  # swept: its process is gone; the lock file went too
    assert new["resolution"] == 16 and load_split(out, "train").images.shape[-1] == 16
    assert (out / "notes.txt").read_text() == "mine"  # the user's file is kept


def test_temp_of_a_live_preprocess_is_not_swept(tmp_path):
    src, out = _images(tmp_path / "src"), tmp_path / "d"
    alive = out.parent / f".d.{os.getpid()}@{HOST}.abcd1234.tmp"
    dead = out.parent / f".d.{_dead_pid()}@{HOST}.efgh5678.tmp"
    for d in (alive, dead):
        (d / "train-00000.pt").parent.mkdir(parents=True)
        (d / "train-00000.pt").write_bytes(b"half")
    run(src, out, resolution=8)
    assert alive.is_dir() and not dead.exists()


DIE_BETWEEN_RENAMES = """
import os, sys
import gan.folders as f
from gan.config import PreprocessConfig
from gan.data.preprocess import preprocess

f._exchange = lambda a, b: False  # a file system without RENAME_EXCHANGE: two renames
rename = os.rename
def rename_then_die(src, dst):
    if str(src).endswith(".tmp"):  # the new folder's rename in: the old one is aside
        os._exit(9)
    rename(src, dst)
os.rename = rename_then_die
preprocess(PreprocessConfig(input=sys.argv[1], output=sys.argv[2], resolution=16))
"""


def test_kill_between_the_fallback_renames_never_loses_the_old_dataset(tmp_path):
    """Where the swap is two renames, a kill between them leaves the old dataset aside and
    no output folder: the next reader puts it back, and the next preprocess sweeps the rest."""
    src, out = _images(tmp_path / "src"), tmp_path / "data" / "d"
    old = run(src, out, resolution=8)
    killed = subprocess.Popen([sys.executable, "-c", DIE_BETWEEN_RENAMES, str(src), str(out)])
    assert killed.wait() == 9
    new, aside, lock = _temps(out.parent)
    assert not out.exists() and lock == ".d.lock"
    assert new.startswith(f".d.{killed.pid}@{HOST}.") and aside == new + ".old"
    assert read_manifest(out)["content_hash"] == old["content_hash"]  # put back by the reader
    _still_the_old(out, old)
    assert not any(t.endswith(".old") for t in _temps(out.parent))
    run(src, out, resolution=16)
    assert _temps(out.parent) == []  # the new one it had built is swept too


def test_set_aside_folders_are_settled_only_once_their_process_is_gone(tmp_path):
    """The old outputs of a swap whose new folder made it in are removed; a live process's
    are left alone; without an output folder they are put back, by the next write too."""
    src, out = _images(tmp_path / "src"), tmp_path / "d"
    old = run(src, out, resolution=8)
    finished = out.parent / f".d.{_dead_pid()}@{HOST}.aaaa1111.tmp.old"
    alive = out.parent / f".d.{os.getpid()}@{HOST}.bbbb2222.tmp.old"
    for d in (finished, alive):
        (d / "train-00000.pt").parent.mkdir(parents=True)
        (d / "train-00000.pt").write_bytes(b"outputs of the swap before")
    other = out.parent / f".e.{_dead_pid()}@{HOST}.cccc3333.tmp.old"
    out.rename(other)  # another folder's old outputs, its output folder gone
    run(src, out, resolution=16)
    assert not finished.exists() and alive.is_dir() and not other.exists()
    _still_the_old(out.parent / "e", old)


@pytest.fixture
def small_disk(tmp_path):
    disk = _mount(tmp_path / "disk", "size=512k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_mid_rewrite_leaves_the_old_dataset(tmp_path, small_disk):
    src, out = _images(tmp_path / "src"), small_disk / "d"
    old = run(src, out, resolution=8)
    fill(small_disk)
    with pytest.raises(GanError, match="no space left on device"):
        run(src, out, resolution=16)
    _still_the_old(out, old)
    assert _temps(small_disk) == []  # no half-built dataset, no lock file left


# -------------------------------------------------------------------------- promote

DIE_MID_COPY = """
import json, os, shutil, sys
from pathlib import Path
from gan.registry.decision import Rule
from gan.registry.store import Candidate, Registry

copy = shutil.copyfile
def copy_then_die(src, dst, *args, **kwargs):
    copy(src, dst, *args, **kwargs)
    os._exit(9)  # killed with the weights copied into the temp folder
shutil.copyfile = copy_then_die
cand = Candidate("a", Path(sys.argv[2]), {"fid": 40.0, "kid": 0.01}, json.loads(sys.argv[3]))
Registry(sys.argv[1]).register(cand, Rule("fid", "min", 0.5))
"""


def test_temp_copies_of_killed_promotes_are_swept(tmp_path):
    reg = Registry(tmp_path / "registry")
    export = make_export(tmp_path / "runs" / "a", b"weights of a")
    args = [str(reg.root), str(export), json.dumps(PROTOCOL)]
    killed = subprocess.Popen([sys.executable, "-c", DIE_MID_COPY, *args])
    assert killed.wait() == 9
    assert _temps(reg.models_dir) == [
        next(reg.models_dir.glob(f".v1.{killed.pid}@{HOST}.*.tmp")).name
    ]
    legacy_dead = reg.models_dir / f".v7.tmp-{_dead_pid()}"  # as older ganops named them
    legacy_alive = reg.models_dir / f".v8.tmp-{os.getpid()}"
    for d in (legacy_dead, legacy_alive):
        d.mkdir()
    record = reg.register(candidate(tmp_path, "b", 30.0), RULE)
    assert record["version"] == 1 and reg.model_dir(1).is_dir()
    assert _temps(reg.models_dir) == [legacy_alive.name]
