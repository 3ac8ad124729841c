"""Static import structure of gan/: it never imports flows/, and DVC stages depend on their code;
and what `gan --help` and `gan train` import when they run (their start-up time).

The walk is ast-based (imports inside functions count, and so do "gan.x.y:Name" strings,
the way gan.models.FAMILIES imports a family lazily), so it sees code a stage may run
without running it.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from gan import cli

GAN = REPO / "gan"
PIPELINES = [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]


def module_file(name: str) -> Path | None:
    """The file of module `name` (gan.x.y) in this checkout, or None if it is not one."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, package: str) -> set[str]:
    """Every module name the tree may import: statements anywhere, and "gan.x:Name" strings."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.split(":")[0]
            if text.startswith("gan.") and text.replace(".", "").replace("_", "").isalnum():
                names.add(text)
    return names


def gan_files(names: set[str]) -> set[Path]:
    """The files of the gan modules among `names`, with the package __init__s they run."""
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "gan":
            continue
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None:
                files.add(path)
    return files


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


# Edges not followed: imports that only validate params and cannot change a stage's outputs.
# gan.train_config imports gan.models in TrainConfig's validator to check train.model against
# the family's options and gan.objectives to check train.model.loss against the objective
# registry; gan.config imports gan.metrics.registry to check metric names (evaluate.metrics,
# promote.primary_metric, hpo.objective); every stage loads (validates) all of params.yaml,
# but only the stages that build models or measure run them, and those import them themselves.
VALIDATION_ONLY = {
    "gan.config": {"gan.metrics.registry"},
    "gan.train_config": {"gan.models", "gan.objectives"},
}


def closure(start: set[Path]) -> set[Path]:
    """All gan/ files reachable from `start` through imports."""
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), str(path))
        names = imported_names(tree, package_of(path))
        skip = VALIDATION_ONLY.get(module_name(path), set())
        names = {n for n in names if not any(n == s or n.startswith(f"{s}.") for s in skip)}
        todo.extend(gan_files(names) - seen)
    return seen


def runs_code(path: Path) -> bool:
    """False for a package __init__ that imports nothing (a docstring and a version)."""
    if path.name != "__init__.py":
        return True
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree))


def handler_imports(fn) -> set[str]:
    """Imports of a cli handler and of the gan/cli.py helpers it calls (`_params`)."""
    names: set[str] = set()
    todo, seen = [fn], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        tree = ast.parse(textwrap.dedent(inspect.getsource(f)))
        names |= imported_names(tree, "gan")
        for node in ast.walk(tree):
            helper = getattr(cli, node.id, None) if isinstance(node, ast.Name) else None
            if inspect.isfunction(helper) and helper.__module__ == cli.__name__:
                todo.append(helper)
    return names


def stage_code(cmd: str) -> set[Path]:
    """The gan/ files that `gan <subcommand>` may run, from the handler gan/cli.py picks."""
    argv = shlex.split(cmd)
    assert argv[0] == "gan", f"{cmd}: a stage calls one `gan` command"
    args = cli._parser().parse_args(argv[1:])
    names = handler_imports(args.fn)
    if hasattr(args, "stage"):  # a stage of gan/stages.py: the handler calls its function
        names.add(args.stage.function.split(":")[0])
    return {p for p in closure(gan_files(names)) if runs_code(p)}


def stages() -> list:
    return [
        pytest.param(dvc_file, stage, id=f"{dvc_file.relative_to(REPO)}:{name}")
        for dvc_file in PIPELINES
        for name, stage in yaml.safe_load(dvc_file.read_text())["stages"].items()
    ]


@pytest.mark.parametrize(("dvc_file", "stage"), stages())
def test_stage_deps_cover_the_code_it_runs(dvc_file, stage):
    wdir = (dvc_file.parent / stage.get("wdir", ".")).resolve()
    deps = [
        (wdir / d).resolve() for d in stage.get("deps", []) if isinstance(d, str) and "${" not in d
    ]
    missing = sorted(
        str(f.relative_to(REPO))
        for f in stage_code(stage["cmd"])
        if not any(f == d or f.is_relative_to(d) for d in deps)
    )
    assert not missing, f"`{stage['cmd']}` runs code its deps do not cover: {missing}"


def test_the_walk_sees_lazy_and_function_level_imports():
    train = stage_code("gan train")
    assert GAN / "models/dcgan.py" in train  # named by a string in gan.models.FAMILIES
    assert GAN / "config.py" in train  # imported inside cli._params
    assert GAN / "__init__.py" not in train


def test_gan_never_imports_flows():
    offenders = []
    for path in sorted(GAN.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        bad = {n for n in imported_names(tree, package_of(path)) if n.split(".")[0] == "flows"}
        offenders += [f"{path.relative_to(REPO)}: {name}" for name in sorted(bad)]
    assert not offenders, "gan/ must not import flows/:\n" + "\n".join(offenders)


def test_flows_commands_plug_in_through_the_entry_point_group(monkeypatch):
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][cli.COMMANDS]["serve"] == "flows.cli:serve"

    def hello(sub):
        sub.add_parser("hello").set_defaults(fn=lambda args: print("hello from a plugin"))

    class Point:
        name = "hello"
        load = staticmethod(lambda: hello)

    monkeypatch.setattr(
        cli, "entry_points", lambda group: [Point()] if group == cli.COMMANDS else []
    )
    assert cli.main(["hello"]) == 0


# -- what a command imports when it runs (start-up time) ----------------------------------
HEAVY_FOR_TRAIN = ("prefect", "dvc", "dvclive", "optuna", "torchvision", "torch_fidelity", "pandas")

_RUN_AND_LIST_MODULES = """
import json, sys
from gan import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def modules_after(args: list[str], cwd: Path) -> set[str]:
    """Top-level modules loaded by the time `gan <args>` returns, in a fresh interpreter
    outside DVC (under `dvc repro` the train stage adds dvclive on purpose)."""
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST_MODULES, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), out.stderr
    return set(result["modules"])


def test_gan_help_imports_no_torch(tmp_path):
    loaded = modules_after(["--help"], tmp_path)
    assert not loaded & {"torch", "numpy", "pandas", "prefect", "dvc", "optuna"}


def test_gan_train_imports_no_pipeline_or_search_libraries(digits16, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "train": {
                    "data": str(digits16), "runs_dir": str(tmp_path / "runs"), "steps": 2,
                    "batch_size": 8, "device": "cpu", "threads": 1, "progress": False,
                    "log_every": 1, "sample_every": 1, "checkpoint_every": 1, "grid_size": 4,
                    "model": {"family": "dcgan", "z_dim": 8, "width": 8},
                }
            }
        )
    )  # fmt: skip
    loaded = modules_after(["train", "-p", str(params)], tmp_path)
    assert (tmp_path / "runs" / "default" / "export").is_dir()  # it trained and exported
    assert "torch" in loaded and not loaded & set(HEAVY_FOR_TRAIN), loaded & set(HEAVY_FOR_TRAIN)
