"""The stage table (gan/stages.py) is what the CLI, the flows and every dvc.yaml run.

Each committed dvc.yaml holds the stages the table writes, with paths that resolve to the
paths gan/config.py gives; `gan <stage>` and the flows' tasks exist for every stage; and a
stage added to the table alone is a command, a task and a dvc.yaml stage. No Prefect server:
tasks are called as the plain functions they wrap.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from gan import cli
from gan.config import Params, load_params
from gan.dvc_stages import Pipeline, params_data, pipelines, render_stages, stale
from gan.stages import SEARCH, STAGES, Io, Stage, code_paths, lookup


def written(pipeline: Pipeline) -> dict:
    return yaml.safe_load((REPO / pipeline.file).read_text())["stages"]


def test_committed_dvc_yaml_files_hold_the_tables_stages():
    assert stale(REPO) == [], "run `python -m gan.dvc_stages` (or `make dvc-yaml`)"


@pytest.mark.parametrize("pipeline", pipelines(), ids=lambda p: p.file)
def test_each_dvc_stage_is_its_table_entry(pipeline):
    stages = written(pipeline)
    assert list(stages) == [s.name for s in pipeline.stages]
    for entry in pipeline.stages:
        dvc = stages[entry.name]
        argv = shlex.split(dvc["cmd"])
        assert argv[:1] == ["gan"]
        args = cli._parser().parse_args(argv[1:])  # the command is the CLI's, for this stage
        assert getattr(args, "stage", SEARCH) is entry and args.params == pipeline.params
        assert [d for d in dvc["deps"] if d.startswith("gan/")] == list(entry.code)
        params = dvc["params"]
        if pipeline.params != "params.yaml":
            ((name, params),) = params[0].items()  # the one entry: {file: keys}
            assert len(dvc["params"]) == 1
            assert name == pipeline.params
        assert params == [p.key for p in entry.dvc_params()]


def interpolate(text: str, data: dict) -> str:
    """${key} replaced by the params file's value, as DVC does."""

    def value(m: re.Match) -> str:
        node = data
        for part in m[1].split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([\w.]+)\}", value, text)


@pytest.mark.parametrize("pipeline", pipelines(), ids=lambda p: p.file)
def test_written_paths_are_the_paths_params_give(pipeline):
    """A path DVC tracks is the path the stage reads or writes, with the table's flags: a
    derived key is written as gan/config.py derives it (gan/dvc_stages.py DERIVED)."""
    data = params_data(pipeline, REPO)
    params = load_params(REPO / pipeline.params)
    stages = written(pipeline)
    for entry in pipeline.stages:
        dvc = stages[entry.name]
        fields = (("deps", entry.inputs), ("outs", entry.outputs), ("metrics", entry.metrics))
        for field, ios in fields:
            found = []
            for item in dvc.get(field, []):
                path, flags = next(iter(item.items())) if isinstance(item, dict) else (item, {})
                if not path.startswith("gan/"):
                    found.append((interpolate(path, data), flags))
            wanted = [(io.resolve(params), io.dvc_flags()) for io in ios if lookup_set(io, params)]
            assert found == wanted, f"{pipeline.file}:{entry.name} {field}"


def lookup_set(io: Io, params: Params) -> bool:
    """Whether an optional path is set in these params (always for the others)."""
    return not io.optional or all(lookup(params, k) is not None for k in io.names())


def test_code_deps_exist():
    for entry in (*STAGES, SEARCH):
        missing = [str(p) for p in code_paths(entry) if not p.exists()]
        assert not missing, f"{entry.name}: {missing}"


def test_every_stage_is_a_command_and_a_task():
    from flows.tasks import TASKS

    sub = next(a for a in cli._parser()._actions if a.dest == "command")
    for entry in STAGES:
        assert sub.choices[entry.name].get_default("stage") is entry
        assert sub.choices[entry.name].get_default("fn") is cli.cmd_stage
        assert TASKS[entry.name].name == entry.name
        assert TASKS[entry.name].retries == len(entry.retry_delays)
    assert TASKS["promote"].retries == 0  # appends to the registry: never twice


def test_a_flag_is_its_override(tmp_path):
    args = cli._parser().parse_args(["train", "-S", "train.steps=3", "--fresh"])
    assert args.set == ["train.steps=3", "train.resume=false"]
    assert cli._parser().parse_args(["train"]).set == []  # the default list is not shared


# -- adding a stage is one registration ---------------------------------------------------


def count_raw_files(cfg) -> dict:
    """The toy stage: what a stage function is, a section in, a result out (and a file)."""
    out = Path(cfg.out)
    files = sorted(p.name for p in out.iterdir() if p.name != "count.json")
    (out / "count.json").write_text(json.dumps(len(files)))
    return {"files": len(files)}


TOY = Stage(
    name="count",
    help="count the raw files",
    function=f"{__name__}:count_raw_files",
    sections=("prepare",),
    code=("gan/io.py",),
    inputs=(Io("{prepare.out}"),),
    outputs=(Io("{prepare.out}/count.json", cache=False),),
    says=lambda result: f"{result['files']} files",
)


def test_a_stage_added_to_the_table_is_a_command_a_task_and_a_dvc_stage(tmp_path, capsys):
    from flows.tasks import stage_tasks

    stages = (*STAGES, TOY)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.png").write_bytes(b"x")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prepare": {"out": str(raw)}}))

    args = cli._parser(stages).parse_args(["count", "-p", str(params)])
    args.fn(args)
    assert capsys.readouterr().out == "1 files\n"
    assert json.loads((raw / "count.json").read_text()) == 1

    task = stage_tasks(stages)["count"]
    assert task.name == "count" and task.retries == 2
    assert task.fn(load_params(params)) == {"files": 1}

    root = Pipeline("dvc.yaml", "params.yaml", stages)
    block = yaml.safe_load(render_stages(root, params_data(root, REPO)))["stages"]
    assert block["count"] == {
        "cmd": "gan count",
        "deps": ["${prepare.out}", "gan/io.py"],
        "params": ["prepare"],
        "outs": [{"${prepare.out}/count.json": {"cache": False}}],
    }


# -- a plain shell ------------------------------------------------------------------------


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="not in a virtual environment")
def test_the_venv_path_hook_finds_gan_from_a_plain_shell():
    """scripts/venv-path.pth (installed by `make setup`): a venv Python started without the
    venv on PATH, as `.venv/bin/dvc` from a plain shell is, gives its commands the venv's."""
    (hook,) = [
        line
        for line in (REPO / "scripts/venv-path.pth").read_text().splitlines()
        if line.startswith("import ")
    ]
    code = hook + "\nimport shutil; print(shutil.which('gan'))"
    env = {"PATH": os.pathsep.join(["/usr/bin", "/bin"]), "HOME": os.environ.get("HOME", "/")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(Path(sys.prefix) / "bin" / "gan"), out.stderr
