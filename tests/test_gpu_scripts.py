"""The GPU check's scripts, here without a GPU: scripts/gpu-check.sh --cpu runs the steps a
lent GPU machine runs and writes their tables; the shipped wheels and the machine's own
packages cover what the GPU path imports; scripts/gpu-wheels.sh fills and sizes its folder
(offline, from the wheels it fetched before, when .gpu-wheels exists)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO
from packaging.utils import canonicalize_name
from test_imports import imported_names, package_of, stage_code

from gan.models import FAMILIES

SCRIPTS = REPO / "scripts"
WHEELS = REPO / ".gpu-wheels"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPTS / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)
PRESETS = json.loads(
    subprocess.run(
        [sys.executable, "-c", "import json, families; print(json.dumps(list(families.PRESETS)))"],
        cwd=REPO / "benchmarks", capture_output=True, text=True, check=True,
    ).stdout
)  # fmt: skip  # the families benchmarks/gpu.py times (those with a preset file)
# Imported only where the GPU check never goes: gpu-check.sh unsets DVC_ROOT (no dvclive
# view), and its timed runs take no metric snapshots (torch-fidelity: train.metrics_every)
NOT_ON_THE_GPU_PATH = {"dvclive", "torch_fidelity"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "PYTHONPATH")}
    return env | {"PYTHON": sys.executable, "TMPDIR": str(tmp_path)} | extra


def _allowed() -> set[str]:
    """What the GPU machine holds after the install: its packages, what they require, ours."""
    machine = gpu_check.required(gpu_check.listed("machine"))
    return {canonicalize_name(d.metadata["Name"]) for d in machine} | {
        canonicalize_name(n) for n in gpu_check.listed("ship")
    }


def test_cpu_fallback_runs_every_step_and_writes_the_tables(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(SCRIPTS / "gpu-check.sh"), "--cpu"],
        cwd=tmp_path, env=_env(tmp_path, OUT=str(out)), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    log = (out / "gpu-check.log").read_text()
    assert log == proc.stdout  # every line of the run, kept under $OUT
    said = "install offline" if WHEELS.is_dir() else "its offline install not tried"
    assert said in log and "everything the project uses is there" in log
    assert 'skipped="4"' in (out / "pytest-gpu.xml").read_text()  # the CUDA tests, collected
    report = json.loads((out / "gpu.json").read_text())
    ran = {(r["family"], r["row"]) for r in report["rows"]}
    timed = [f for f in FAMILIES if f in PRESETS]  # every family with a preset file
    assert {"dcgan", "stylegan2", "biggan", "cyclegan"} <= set(timed)
    assert ran == {(f, r) for f in timed for r in ("fp32", "bf16", "channels_last", "all")}
    for row in report["rows"]:
        assert row["img_per_s"] > 0 and row["ms_per_step"] > 0 and row["peak_rss_mib"] > 0
        assert row["speedup_vs_fp32"] == pytest.approx(
            row["img_per_s"] / report_figure(report, row["family"], "fp32"), abs=0.002
        )
    assert any("compile rows skipped" in note for note in report["notes"])
    table = (out / "gpu.md").read_text()
    assert "| ms_per_step |" in table.replace("  ", "") and "speedup_vs_fp32" in table


def report_figure(report: dict, family: str, row: str) -> float:
    (rate,) = [r["img_per_s"] for r in report["rows"] if (r["family"], r["row"]) == (family, row)]
    return rate


def test_the_cpu_fallback_environment_holds_only_the_listed_distributions(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    python = tmp_path / "venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    gpu_check.isolate(Path(site))
    probe = textwrap.dedent("""
        import importlib.util, json
        names = ["pydantic", "PIL", "tabulate", "pytest", "sklearn", "yaml", "torch",
                 "optuna", "prefect", "dvclive", "dvc", "torch_fidelity", "matplotlib"]
        print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))
    """)
    found = json.loads(
        subprocess.run(
            [str(python), "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            env=_env(tmp_path),
        ).stdout  # fmt: skip
    )
    assert [n for n, ok in found.items() if ok] == [
        "pydantic", "PIL", "tabulate", "pytest", "sklearn", "yaml", "torch"
    ]  # fmt: skip


def imports_of(path: Path) -> set[str]:
    """Top-level names a file imports anywhere (inside functions too), as test_imports reads them."""
    tree = ast.parse(path.read_text(), str(path))
    return {n.split(".")[0] for n in imported_names(tree, package_of(path))}


def third_party(names: set[str]) -> set[str]:
    ours = {p.stem for d in (REPO, REPO / "tests", REPO / "benchmarks") for p in d.iterdir()}
    return {n for n in names if n and n not in sys.stdlib_module_names and n not in ours}


def test_the_lists_cover_what_the_gpu_path_imports(tmp_path):
    # what the project's own code imports, where the GPU check goes: anywhere in the code
    # `gan train` may run (any family, imports inside functions too) ...
    needed = set().union(*(imports_of(p) for p in stage_code("gan train")))
    # ... and what the test and benchmark modules load when they are imported (not what
    # torch or pandas try and do without, nor families.py's evaluation-only imports)
    probe = textwrap.dedent("""
        import json, sys
        import test_gpu, gpu  # tests/test_gpu.py, benchmarks/gpu.py
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
    """)
    paths = os.pathsep.join(str(p) for p in (REPO, REPO / "tests", REPO / "benchmarks"))
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
        env=_env(tmp_path, PYTHONPATH=paths), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    ours = set().union(*(imports_of(p) for p in gpu_check.gpu_path_files()))
    needed = third_party(needed | (loaded & ours)) - NOT_ON_THE_GPU_PATH
    owners = metadata.packages_distributions()
    dists = {canonicalize_name(d) for m in needed for d in owners[m]}
    assert {"pydantic", "pillow", "pytest", "torch", "pandas"} <= dists
    missing = sorted(dists - _allowed())
    assert not missing, f"add to scripts/gpu-packages.txt (ship): {missing}"
    # pip installs the shipped wheels offline: whatever they require is shipped or there
    shipped = gpu_check.required(gpu_check.listed("ship"))
    requires = {canonicalize_name(d.metadata["Name"]) for d in shipped}
    assert requires <= _allowed(), sorted(requires - _allowed())


@pytest.mark.skipif(not WHEELS.is_dir(), reason="run scripts/gpu-wheels.sh once (network)")
def test_gpu_wheels_fills_and_sizes_its_folder_offline(tmp_path):
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}  # the wheels fetched before
    dest = tmp_path / "wheels"
    run = subprocess.run(
        [str(SCRIPTS / "gpu-wheels.sh")], capture_output=True, text=True, timeout=300,
        env=_env(tmp_path, GPU_WHEELS=str(dest), **offline),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    assert len(wheels) == len(gpu_check.listed("ship")) and sorted(os.listdir(dest)) == wheels
    assert all("cp312" in w or "py3-none-any" in w for w in wheels)
    mib = sum(p.stat().st_size for p in dest.glob("*.whl")) / 2**20
    assert f"{len(wheels)} wheels, {mib:.1f} MiB in {dest}" in run.stdout
    over = subprocess.run(
        [str(SCRIPTS / "gpu-wheels.sh")], capture_output=True, text=True, timeout=300,
        env=_env(tmp_path, GPU_WHEELS=str(dest), MAX_MIB="1", **offline),
    )  # fmt: skip
    assert over.returncode == 1 and "over the 1 MiB limit" in over.stderr
