"""`make bench-gpu`: every family preset on CUDA with each speed switch off and on, then
data-parallel over all visible GPUs with torchrun; img/s, memory and each switch's speed-up.

Switches: bf16 autocast (train.precision), channels_last (train.channels_last) and
torch.compile (train.compile, skipped with a note where this trainer has no such key).
Rows per preset: `fp32` (all off), each switch alone, `all` (every switch on); the speed-up
of a switch is its row's img/s over the fp32 row's. Each run is the real `gan train`
loop (gan.training.loop.train) for (blocks + 1) x log_every steps on random data of the
preset's shape; img/s is the trainer's own figure from log.csv (real images drawn per
second, docs/training.md), median over the rows after the first, which holds warm-up and compilation
(reported as first_block_s); ms/step is the real images of one step over that rate. Memory
is torch.cuda.max_memory_allocated of the run (on the CPU: the process's peak RSS). The
data-parallel rows run `torchrun --standalone --nproc_per_node N -m gan.cli train` with
train.world_size N and the `all` switches at N times the preset's batch (the same batch
per GPU), and report the speed-up over the one-GPU `all` row.

Without CUDA it prints one line saying so and exits with status 0 (nothing measured, no
JSON written). `--quick` runs every family for a few steps per row (scripts/gpu-check.sh on a
lent GPU machine); `--quick --device cpu` runs the same code on the CPU in a few seconds per
family to check the script itself (compile rows skipped). The JSON and a Markdown copy of
the tables (gpu.md) are rewritten after every row, so a run stopped by a time limit keeps
what it measured; `--budget-s` starts no row after that many seconds (noted).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
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
    img_per_s = statistics.median(rates[1:])
    per_step = _images_per_step(summary, cfg.steps)
    out = {
        "img_per_s": round(img_per_s, 1),
        "ms_per_step": round(1000 * per_step / img_per_s, 2),
        "first_block_img_per_s": round(rates[0], 1),
        "first_block_s": round(every * per_step / rates[0], 2),
        "run_s": summary["seconds"],
        "bf16": summary["bf16"],
    }
    if cuda:
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:  # the CPU check: this process's peak so far, the only memory figure there
        out["peak_rss_mib"] = round(harness.peak_rss_mib(), 1)
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
    ap.add_argument("--budget-s", type=float, default=None, help="start no row after this")
    args = ap.parse_args()
    deadline = time.perf_counter() + (args.budget_s if args.budget_s is not None else float("inf"))
    late: list[str] = []  # rows not started: the budget was spent
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
        args.log_every, args.blocks = 2, 1
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
        bases = {f: family_base(f, args.device, args.quick, gpus, tmp) for f in families}
        plan = [(f, r) for f in families for r in rows if r != "compile" or compile_ok]
        # the rows that compile last (every family's others first): a spent budget cuts them
        for family, row in sorted(
            plan, key=lambda fr: switches(fr[1], compile_ok).get("compile", False)
        ):
            if time.perf_counter() > deadline:
                late.append(f"{family} {row}")
                continue
            batch, base = bases[family]
            result = {"family": family, "row": row, "batch": batch}
            result |= measured(base | switches(row, compile_ok), args.log_every, args.blocks)
            report["rows"].append(result)
            if "error" not in result and (fp32 := figure(report["rows"], family, "fp32")):
                result["speedup_vs_fp32"] = round(result["img_per_s"] / fp32, 3)
            print(result, flush=True)
            write(report, args.out_dir)  # kept if a time limit stops a later row
        report["rows"].sort(key=lambda r: (families.index(r["family"]), rows.index(r["row"])))
        for family in families if gpus >= 2 and not args.no_ddp else []:
            if time.perf_counter() > deadline:
                late.append(f"{family} data-parallel")
                continue
            batch, base = bases[family]
            on = switches("all", compile_ok) | {"batch_size": batch * gpus}
            ddp = data_parallel(base | on, gpus, args.log_every, args.blocks, tmp)
            ddp["family"] = family
            one = figure(report["rows"], family, "all")
            ddp["speedup_vs_one_gpu_all"] = round(ddp["img_per_s"] / one, 3) if one else None
            report["data_parallel"].append(ddp)
            print(ddp, flush=True)
    if gpus < 2:
        report["notes"].append(f"{gpus} device(s) visible: data-parallel rows need 2 or more")
    if late:
        report["notes"].append(f"--budget-s {args.budget_s:g} spent, not run: {', '.join(late)}")
    path = write(report, args.out_dir)
    print(f"\n{markdown(report)}JSON: {path}")
    failed = [f"{r['family']} {r['row']}: {r['error']}" for r in report["rows"] if "error" in r]
    for line in failed:
        print(f"bench-gpu: failed: {line}", file=sys.stderr)
    return 1 if failed else 0


def family_base(family: str, device: str, quick: bool, gpus: int, tmp: Path) -> tuple[int, dict]:
    """The family's batch and train section (switches off) on random data of its shape."""
    res, ch = preset_shape(family)
    batch = max(2, preset_batch(family) // (4 if quick else 1))
    n = max(256, 4 * batch * gpus)
    data = harness.random_dataset(tmp / f"data-{family}", res, ch, n, 10, PRESETS[family][1])
    return batch, preset_section(family, batch, device, data)


def figure(rows: list[dict], family: str, row: str) -> float | None:
    """img/s of the family's row, if it ran and measured."""
    return next((r["img_per_s"] for r in rows if (r["family"], r["row"]) == (family, row)
                 and "img_per_s" in r), None)  # fmt: skip


def measured(section: dict, every: int, blocks: int) -> dict:
    """one_gpu's figures, or the error that stopped the row: on a lent GPU's few minutes,
    one failing switch must not cost the other rows their figures (exit status 1 at the end)."""
    try:
        return one_gpu(section, every, blocks)
    except Exception as exc:
        traceback.print_exc()
        if section.get("compile"):
            torch._dynamo.reset()
        first = str(exc).strip().splitlines()
        return {"error": f"{type(exc).__name__}: {first[0] if first else ''}"}


def markdown(report: dict) -> str:
    """The tables, notes and environment line, as printed and as gpu.md holds them."""
    parts = [harness.markdown_table(report["rows"])] if report["rows"] else []
    if report["data_parallel"]:
        parts.append(harness.markdown_table(report["data_parallel"]))
    notes = "".join(f"note: {note}\n" for note in report["notes"])
    return "\n\n".join(parts) + f"\n\n{notes}{harness.env_line(report['environment'])}\n"


def write(report: dict, out_dir: Path | None) -> Path:
    """gpu.json, and gpu.md beside it, as they stand now."""
    from gan.io import write_text

    path = harness.write_report("gpu", report, out_dir)
    write_text(path.with_suffix(".md"), markdown(report))
    return path


if __name__ == "__main__":
    sys.exit(main())
