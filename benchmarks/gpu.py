"""`make bench-gpu`: every family preset on CUDA with each speed switch off and on, then
data-parallel over all visible GPUs with torchrun; img/s, memory and each switch's speed-up.

Switches: bf16 autocast (train.precision), channels_last (train.channels_last) and
torch.compile (train.compile, skipped with a note where this trainer has no such key).
Rows per preset: `fp32` (all off), each switch alone, `all` (every switch on); the speed-up
of a switch is its row's img/s over the fp32 row's. Each run is the real `gan train`
loop (gan.training.loop.train) for (blocks + 1) x log_every steps on random data of the
preset's shape; img/s is the trainer's own figure from log.csv (real images drawn per
second, docs/training.md), median over the rows after the first, which holds warm-up and compilation
(reported as first_block_s). Memory is torch.cuda.max_memory_allocated of the run. The
data-parallel rows run `torchrun --standalone --nproc_per_node N -m gan.cli train` with
train.world_size N and the `all` switches at N times the preset's batch (the same batch
per GPU), and report the speed-up over the one-GPU `all` row.

Without CUDA it prints one line saying so and exits with status 0 (nothing measured, no
JSON written); `--quick --device cpu` runs the same code on the CPU in a few seconds per
family to check the script itself (compile rows skipped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import harness
import torch
from families import PRESETS, preset_batch, preset_section, preset_shape

SWITCHES = {
    "fp32": {"precision": "fp32", "channels_last": False, "compile": False},
    "bf16": {"precision": "bf16", "channels_last": False, "compile": False},
    "channels_last": {"precision": "fp32", "channels_last": True, "compile": False},
    "compile": {"precision": "fp32", "channels_last": False, "compile": True},
    "all": {"precision": "bf16", "channels_last": True, "compile": True},
}


def has_compile() -> bool:
    from gan.config import TrainConfig

    return "compile" in TrainConfig.model_fields


def switches(name: str, compile_ok: bool) -> dict:
    s = dict(SWITCHES[name])
    if not compile_ok:
        s.pop("compile")
    return s


def log_img_per_s(run_dir: Path) -> list[float]:
    import pandas as pd

    return [float(v) for v in pd.read_csv(run_dir / "log.csv")["img_per_s"]]


def one_gpu(section: dict, every: int, blocks: int) -> dict:
    """One in-process run; img/s from its log rows after the first, CUDA peak memory."""
    from gan.config import TrainConfig
    from gan.training.loop import train

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="gan-bench-gpu-") as tmp:
        cfg = TrainConfig.model_validate(
            section | {"runs_dir": tmp, "run": "gpu", "steps": (blocks + 1) * every,
                       "log_every": every, "sample_every": 10**9, "checkpoint_every": 10**9,
                       "grid_size": 4, "progress": False}
        )  # fmt: skip
        summary = train(cfg)
        rates = log_img_per_s(cfg.run_dir)
    if section.get("compile"):
        torch._dynamo.reset()  # the next row compiles its own graphs
    out = {
        "img_per_s": round(statistics.median(rates[1:]), 1),
        "first_block_img_per_s": round(rates[0], 1),
        "first_block_s": round(every * _images_per_step(summary, cfg.steps) / rates[0], 2),
        "run_s": summary["seconds"],
        "bf16": summary["bf16"],
    }
    if cuda:
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _images_per_step(summary: dict, steps: int) -> float:
    """Real images the trainer draws per step (its img/s counts those), from run.json."""
    return summary["img_per_s"] * summary["seconds"] / steps


def data_parallel(section: dict, world: int, every: int, blocks: int, tmp: Path) -> dict:
    """`torchrun` over `world` GPUs: img/s from rank 0's log rows after the first."""
    import yaml

    run = tmp / f"ddp-{world}"
    run.mkdir()
    params = section | {"world_size": world, "runs_dir": str(run / "runs"), "run": "ddp",
                        "steps": (blocks + 1) * every, "log_every": every, "progress": False,
                        "sample_every": 10**9, "checkpoint_every": 10**9, "grid_size": 4}  # fmt: skip
    (run / "params.yaml").write_text(yaml.safe_dump({"train": params}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={world}", "-m", "gan.cli", "train", "-p", "params.yaml"]  # fmt: skip
    wall = harness.run_wall(cmd, run)
    rates = log_img_per_s(run / "runs" / "ddp")
    return {"world_size": world, "batch": params["batch_size"],
            "img_per_s": round(statistics.median(rates[1:]), 1), "process_s": round(wall, 1)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(PRESETS))
    ap.add_argument("--rows", default=",".join(SWITCHES), help="switch rows to run")
    ap.add_argument("--log-every", type=int, default=50, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=3, help="timed blocks after the warm-up one")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only with --quick")
    ap.add_argument("--no-ddp", action="store_true", help="skip the torchrun rows")
    ap.add_argument("--gpus", type=int, default=None, help="ranks of the torchrun rows (all GPUs)")
    ap.add_argument("--quick", action="store_true", help="tiny step counts: checks the script")
    ap.add_argument("--out-dir", type=Path, default=None, help="JSON folder (reports/bench)")
    args = ap.parse_args()
    if args.device != "cuda" and not args.quick:
        ap.error("--device cpu is only for checking the script (--quick)")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"bench-gpu: no CUDA device visible (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda}); nothing measured", file=sys.stderr)  # fmt: skip
        return 0
    families = [f for f in args.families.split(",") if f]
    rows = [r for r in args.rows.split(",") if r]
    if set(families) - set(PRESETS) or set(rows) - set(SWITCHES):
        ap.error(f"use --families from {list(PRESETS)} and --rows from {list(SWITCHES)}")
    compile_ok = has_compile() and args.device == "cuda"
    if args.quick:
        families, args.log_every, args.blocks = families[:1], 2, 1
    gpus = args.gpus or (torch.cuda.device_count() if args.device == "cuda" else 1)
    env = harness.environment(args.device)
    report = {"benchmark": "gpu", "environment": env, "quick": args.quick,
              "log_every": args.log_every, "blocks": args.blocks, "rows": [], "data_parallel": [],
              "notes": []}  # fmt: skip
    if not has_compile():
        report["notes"].append("train.compile does not exist in this trainer: compile rows skipped")
    elif not compile_ok:
        report["notes"].append("compile rows skipped off CUDA (--quick on the CPU)")
    with tempfile.TemporaryDirectory(prefix="gan-bench-") as tmp:
        tmp = Path(tmp)
        for family in families:
            res, ch = preset_shape(family)
            batch = max(2, preset_batch(family) // (4 if args.quick else 1))
            domains = PRESETS[family][1]
            data = harness.random_dataset(
                tmp / f"data-{family}", res, ch, max(256, 4 * batch * gpus), 10, domains
            )
            base = preset_section(family, batch, args.device, data)
            fp32 = None
            for row in rows:
                if row == "compile" and not compile_ok:
                    continue  # and `all` runs without it
                result = {"family": family, "row": row, "batch": batch}
                result |= one_gpu(base | switches(row, compile_ok), args.log_every, args.blocks)
                fp32 = result["img_per_s"] if row == "fp32" else fp32
                result["speedup_vs_fp32"] = round(result["img_per_s"] / fp32, 3) if fp32 else None
                report["rows"].append(result)
                print(result, flush=True)
            if gpus >= 2 and not args.no_ddp:
                mine = [r for r in report["rows"] if r["family"] == family and r["row"] == "all"]
                on = switches("all", compile_ok) | {"batch_size": batch * gpus}
                ddp = data_parallel(base | on, gpus, args.log_every, args.blocks, tmp)
                ddp["family"] = family
                one = mine[0]["img_per_s"] if mine else None
                ddp["speedup_vs_one_gpu_all"] = round(ddp["img_per_s"] / one, 3) if one else None
                report["data_parallel"].append(ddp)
                print(ddp, flush=True)
    if gpus < 2:
        report["notes"].append(f"{gpus} device(s) visible: data-parallel rows need 2 or more")
    path = harness.write_report("gpu", report, args.out_dir)
    print()
    harness.print_table(report["rows"])
    if report["data_parallel"]:
        print()
        harness.print_table(report["data_parallel"])
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"{harness.env_line(env)}; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
