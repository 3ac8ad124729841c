"""Throughput of data-parallel training by world size, printed as a table.

Runs the real `gan train` path (spawned ranks, gradient all-reduce, buffer broadcast) on
random uint8 data at a fixed global batch and reports images per second from each run's
run.json. On one GPU-less machine the ranks share its cores, so expect no gain there;
on N GPUs the same command shows the scaling. Usage:
python benchmarks/ddp_scaling.py --world-sizes 1,2 --steps 60
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import harness
import pandas as pd

from gan.config import TrainConfig
from gan.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world-sizes", default="1,2")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = harness.random_dataset(Path(tmp) / "data", args.resolution, 1)
        for world in (int(w) for w in args.world_sizes.split(",")):
            cfg = TrainConfig.model_validate(
                {"data": str(data), "runs_dir": str(Path(tmp) / "runs"), "run": f"w{world}",
                 "steps": args.steps, "batch_size": args.batch, "device": args.device,
                 "world_size": world, "progress": False, "sample_every": 10**9,
                 "checkpoint_every": 10**9, "model": {"family": "dcgan", "width": args.width}}
            )  # fmt: skip
            summary = train(cfg)
            rows.append({"world_size": world, "img_per_s": summary["img_per_s"],
                         "seconds": summary["seconds"], "device": summary["device"]})  # fmt: skip
    env = harness.environment(args.device)
    path = harness.write_report("ddp_scaling", {"environment": env, "rows": rows})
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"\n{harness.env_line(env)}; JSON: {path}")


if __name__ == "__main__":
    main()
