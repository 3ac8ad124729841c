"""What the runners add: the default pipeline with small settings, run three ways in fresh
temporary copies of the repository (HEAD), each from nothing, timed as whole processes.

1. `gan <stage>` for each stage of dvc.yaml in order: the stages' own compute, each paying
   its own process start-up (the same start-up `dvc repro` pays, as it runs these commands);
2. `dvc repro`: overhead = its wall time minus (1): DVC's start-up, hashing of deps and
   outs, cache copies, dvc.lock;
3. the Prefect flow `pipeline` (flows/pipeline.py) in one process with a temporary
   PREFECT_HOME (an ephemeral API server): overhead = its wall time minus (1); it skips
   the stages' separate start-ups, so this can come out below zero.

Too slow for `make bench` (the pipeline runs three times): `make bench-pipeline`.
Small settings by default (--steps 50 train steps, --epochs 1 classifier epoch,
--samples 256 evaluation samples). The code run is the installed `gan` package.
Usage: python benchmarks/pipeline_overhead.py [--quick] [--no-prefect]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import harness
import yaml


def fresh_copy(dest: Path, settings: dict[str, dict]) -> Path:
    """HEAD's files in `dest`, a git repository of its own, with small params."""
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=harness.REPO, capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in settings.items():
        params.setdefault(section, {}).update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@invalid"}  # fmt: skip
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, env=env, capture_output=True, check=True)
    return dest


def stage_commands(root: Path) -> list[tuple[str, str]]:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return [(name, stage["cmd"]) for name, stage in stages.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--no-prefect", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 train steps, 64 samples")
    ap.add_argument("--out-dir", type=Path, default=None, help="JSON folder (reports/bench)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.samples = 2, 64
    settings = {"classifier": {"epochs": args.epochs},
                "train": {"steps": args.steps, "progress": False},
                "evaluate": {"num_samples": args.samples}}  # fmt: skip
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    report = {"benchmark": "pipeline_overhead", "environment": harness.environment("auto"),
              "quick": args.quick, "settings": settings, "stages_s": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gan-bench-pipeline-") as tmp:
        tmp = Path(tmp)
        direct = fresh_copy(tmp / "direct", settings)
        for name, cmd in stage_commands(direct):
            report["stages_s"][name] = round(harness.run_wall(cmd.split(), direct, env), 2)
            print(f"gan {name}: {report['stages_s'][name]} s", flush=True)
        stages = sum(report["stages_s"].values())
        repro = fresh_copy(tmp / "repro", settings)
        report["dvc_repro_s"] = round(harness.run_wall(["dvc", "repro", "-q"], repro, env), 2)
        report["dvc_overhead_s"] = round(report["dvc_repro_s"] - stages, 2)
        print(f"dvc repro: {report['dvc_repro_s']} s", flush=True)
        if not args.no_prefect:
            flow = fresh_copy(tmp / "prefect", settings)
            code = "from flows.pipeline import pipeline_flow; pipeline_flow()"
            # the ephemeral API server's 20 s start-up limit is too short on a busy 2-core box
            flow_env = {**env, "PREFECT_HOME": str(tmp / "prefect-home"),
                        "PYTHONPATH": str(flow), "PREFECT_LOGGING_LEVEL": "WARNING",
                        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600"}  # fmt: skip
            try:
                wall = harness.run_wall([sys.executable, "-c", code], flow, flow_env)
            except RuntimeError as exc:  # the other figures stand; say why this one is missing
                report["prefect_error"] = str(exc)[-500:]
                print(f"prefect flow failed: {exc}", file=sys.stderr)
            else:
                report["prefect_flow_s"] = round(wall, 2)
                report["prefect_overhead_s"] = round(wall - stages, 2)
    report["stages_total_s"] = round(stages, 2)
    path = harness.write_report("pipeline_overhead", report, args.out_dir)
    rows = [{"runner": f"gan {k}", "wall_s": v} for k, v in report["stages_s"].items()]
    rows += [{"runner": "stages (sum)", "wall_s": report["stages_total_s"]},
             {"runner": "dvc repro", "wall_s": report["dvc_repro_s"],
              "overhead_s": report["dvc_overhead_s"]}]  # fmt: skip
    if "prefect_flow_s" in report:
        rows.append({"runner": "prefect flow", "wall_s": report["prefect_flow_s"],
                     "overhead_s": report["prefect_overhead_s"]})  # fmt: skip
    print()
    harness.print_table(rows)
    print(f"\n{harness.env_line(report['environment'])}; JSON: {path}")


if __name__ == "__main__":
    main()
