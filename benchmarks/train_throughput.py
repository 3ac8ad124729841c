"""Training throughput of each loss and resolution on this machine, printed as a table.

Runs the real trainer (no checkpoints or grids inside the timed window) on random uint8
data and reports images per second. Usage: python benchmarks/train_throughput.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import harness
import pandas as pd

from gan.training.loop import run_phases


def measure(data: Path, loss: str, batch: int, width: int, steps: int, device: str) -> float:
    model = {"family": "dcgan", "loss": loss, "width": width}
    session = harness.trainer_session(data, batch, device, model)
    dev = session.precision.device
    for step in range(3):  # warm-up
        run_phases(session, step, measure=False)
    harness.sync(dev)
    t0 = time.perf_counter()
    for step in range(3, 3 + steps):
        run_phases(session, step, measure=False)
    harness.sync(dev)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resolutions", default="16,32,64")
    ap.add_argument("--losses", default="nonsaturating,hinge,lsgan,wgan-gp")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in map(int, args.resolutions.split(",")):
            data = harness.random_dataset(Path(tmp) / f"r{res}", res, 1)
            for loss in args.losses.split(","):
                ips = measure(data, loss, batch=64, width=32, steps=args.steps, device=args.device)
                rows.append(
                    {
                        "resolution": res,
                        "loss": loss,
                        "batch": 64,
                        "width": 32,
                        "img_per_s": round(ips, 1),
                    }
                )
                print(rows[-1], flush=True)
    env = harness.environment(args.device)
    path = harness.write_report("train_throughput", {"environment": env, "rows": rows})
    print()
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(f"\n{harness.env_line(env)}; JSON: {path}")


if __name__ == "__main__":
    main()
