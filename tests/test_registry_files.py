"""The registry's files: all-or-nothing writes, one registration per export, clear errors.

Torn and hand-edited history lines, a failing write, absurd metrics, file modes, where a
relative registry lives under DVC, and `gan registry show | head`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_promote import config, make_eval, make_run

from gan.errors import GanError
from gan.registry import Registry, files
from gan.registry.promote import promote


def promoted(tmp_path: Path, name: str = "first", seed: int = 1, fid: float = 40.0) -> dict:
    run = tmp_path / "runs" / name
    if not run.exists():
        make_run(tmp_path, name, seed=seed)
    return promote(config(tmp_path, run, make_eval(tmp_path, {"fid": fid, "kid": 0.01})))


def test_the_same_export_is_registered_once(tmp_path):
    first = promoted(tmp_path)
    assert first["registered"] and first["version"] == 1
    again = promoted(tmp_path, fid=1.0)  # a rerun of the same run, even with other metrics
    assert not again["registered"] and again["version"] == 1
    assert "already registered as v1" in again["reason"] and "nothing changed" in again["reason"]
    assert len(Registry(tmp_path / "registry").history()) == 1
    assert promoted(tmp_path, "second", seed=2)["version"] == 2


def test_a_torn_last_line_is_skipped_with_a_warning_and_dropped_by_the_next_write(tmp_path):
    promoted(tmp_path)
    history = tmp_path / "registry" / "history.jsonl"
    with open(history, "a") as f:
        f.write('{"version": 2, "decision": "prom')  # a full disk mid-append (older ganops)
    reg = Registry(tmp_path / "registry")
    with pytest.warns(UserWarning, match=r"history.jsonl:2: skipping a torn last line"):
        assert [r["version"] for r in reg.history()] == [1]
    with pytest.warns(UserWarning):
        assert promoted(tmp_path, "second", seed=2)["version"] == 2
    lines = history.read_text().splitlines()
    assert [json.loads(line)["version"] for line in lines] == [1, 2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"version": "two", "decision": "promoted", "time": "t"}', "'version' must be"),
        ('{"version": 2, "decision": "maybe", "time": "t"}', "'decision' must be one of"),
        ('{"version": 2, "decision": "rejected", "time": "t"}', "'export' must be an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_hand_edited_line_is_one_error_naming_file_and_line(tmp_path, line, message):
    promoted(tmp_path)
    history = tmp_path / "registry" / "history.jsonl"
    history.write_text(history.read_text() + line + "\n")
    with pytest.raises(GanError, match=rf"history.jsonl:2: .*{message}"):
        Registry(tmp_path / "registry").champion()


def test_a_failed_history_write_leaves_no_copy_and_the_old_history(tmp_path, monkeypatch):
    promoted(tmp_path)
    root = tmp_path / "registry"
    before = (root / "history.jsonl").read_bytes()

    def full_disk(path, lines):
        raise GanError(f"{path}: cannot write: no space left on device")

    monkeypatch.setattr(files, "write_lines", full_disk)
    with pytest.raises(GanError, match="no space left"):
        promoted(tmp_path, "second", seed=2, fid=1.0)  # would be promoted to v2
    assert sorted(p.name for p in (root / "models").iterdir()) == ["v1"]
    assert (root / "history.jsonl").read_bytes() == before
    monkeypatch.undo()
    assert promoted(tmp_path, "second", seed=2, fid=1.0)["version"] == 2


@pytest.mark.parametrize("fid", [-1e308, float("nan"), float("inf")])
def test_absurd_metrics_are_refused_before_anything_is_registered(tmp_path, fid):
    run = make_run(tmp_path, "first", seed=1)
    with pytest.raises(GanError, match=r"metrics.json: .*fid.*nothing was registered"):
        promote(config(tmp_path, run, make_eval(tmp_path, {"fid": fid})))
    with pytest.raises(GanError, match=r"precision is 1.5, outside"):
        promote(config(tmp_path, run, make_eval(tmp_path, {"fid": 3.0, "precision": 1.5})))
    assert not (tmp_path / "registry").exists()


def test_registry_and_export_files_are_group_readable(tmp_path):
    promoted(tmp_path)
    paths = [p for p in (tmp_path / "registry").rglob("*") if p.is_file()]
    paths += [p for p in (tmp_path / "runs").rglob("export/*") if p.is_file()]
    assert len(paths) > 5
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044, p


def test_a_relative_registry_is_the_repositorys_when_dvc_runs_us(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert files.locate("registry/digits") == Path("registry/digits")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # what DVC sets, also in queued copies
    assert files.locate("registry/digits") == tmp_path / "registry/digits"
    assert files.locate("/srv/shared") == Path("/srv/shared")


def test_registry_show_into_a_closed_pipe_has_no_traceback(tmp_path):
    """What `gan registry show | head` does once head has exited: writes hit EPIPE."""
    promoted(tmp_path)
    gan = Path(sys.executable).parent / "gan"
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    for action in ("show", "list"):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first write
        proc = subprocess.run(
            [gan, "registry", action, "--registry", tmp_path / "registry"],
            stdout=write, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        os.close(write)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_a_registry_of_the_older_shared_layout_is_pointed_out(tmp_path):
    promoted(tmp_path)  # registry/history.jsonl: the layout before registry/<dataset>
    run = make_run(tmp_path, "second", seed=2)
    cfg = config(tmp_path, run, make_eval(tmp_path, {"fid": 3.0}))
    cfg = cfg.model_copy(update={"registry": str(tmp_path / "registry" / "digits")})
    with pytest.warns(UserWarning, match="older layout"):
        assert promote(cfg)["version"] == 1
