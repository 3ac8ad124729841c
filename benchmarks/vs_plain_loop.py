"""ganops' trainer against the textbook DCGAN loop at the same work, alternating in one process.

The plain loop is pytorch/examples' dcgan/main.py step written out here: contiguous fp32,
torch.optim.Adam with only lr and betas set, BCE (on logits), D on real then on one fake
batch that G's step reuses. It trains the same network classes (gan.models.dcgan, so the
parameters match, checked) at the same batch. ganops runs as `gan train` does, through
`gan.training.loop.train`; after every block of its steps a hook runs a block of the plain
loop, so the two alternate block by block and share whatever else the machine is doing.
Differences that are ganops features, not benchmark choices: ganops keeps an EMA copy of
G and checks losses for NaN (device-side); the textbook's per-step `.item()` prints are
left out of the plain loop.

Rows: `examples` is pytorch/examples' configuration (64x64 RGB, batch 64, z 100,
ngf = ndf = 64, random data); `default` is params.yaml's DCGAN. Also the whole-process
wall time of `gan train` for a short run against the plain loop as a script (`--plain-process`),
since users pay for start-up and the export. Usage:
    python benchmarks/vs_plain_loop.py [--rows examples,default] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
import torch
from torch import nn

# name -> (resolution, channels, batch, z_dim, width, timed steps per block)
EXAMPLES = {"resolution": 64, "channels": 3, "batch": 64, "z_dim": 100, "width": 64, "steps": 4}
QUICK = {"resolution": 16, "channels": 1, "batch": 8, "z_dim": 8, "width": 8, "steps": 2}


def default_row() -> dict[str, int]:
    """params.yaml's DCGAN, read from the file so the row follows it."""
    from gan.config import load_params

    p = load_params(harness.REPO / "params.yaml")
    m = p.train.model
    return {
        "resolution": p.preprocess.resolution,
        "channels": p.preprocess.channels,
        "batch": p.train.batch_size,
        "z_dim": m.z_dim,
        "width": m.width,
        "steps": 20,
    }


class PlainDCGAN:
    """The textbook DCGAN step on ganops' Generator and Discriminator classes."""

    def __init__(self, row: dict[str, int], device: torch.device, seed: int = 0) -> None:
        from gan.models.dcgan import Discriminator, Generator

        torch.manual_seed(seed)
        res, ch = row["resolution"], row["channels"]
        self.G = Generator(row["z_dim"], row["width"], res, ch).to(device)
        self.D = Discriminator(row["width"], res, ch, "batch").to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.criterion = nn.BCEWithLogitsLoss()  # D outputs logits; examples: Sigmoid + BCELoss
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.rand(512, ch, res, res, generator=gen, device="cpu").to(device)
        self.images = self.images * 2 - 1  # examples' --dataset fake: images already in [-1, 1]
        self.batch, self.z_dim, self.device = row["batch"], row["z_dim"], device
        self.order = torch.Generator().manual_seed(seed + 1)

    def step(self) -> None:
        b, device = self.batch, self.device
        idx = torch.randint(len(self.images), (b,), generator=self.order).to(device)
        real = self.images[idx]
        real_label = torch.full((b,), 1.0, device=device)
        fake_label = torch.full((b,), 0.0, device=device)
        self.D.zero_grad()
        err_real = self.criterion(self.D(real), real_label)
        err_real.backward()
        fake = self.G(torch.randn(b, self.z_dim, device=device))
        err_fake = self.criterion(self.D(fake.detach()), fake_label)
        err_fake.backward()
        self.opt_d.step()
        self.G.zero_grad()
        err_g = self.criterion(self.D(fake), real_label)  # the fake batch reused
        err_g.backward()
        self.opt_g.step()

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        harness.sync(self.device)
        return time.perf_counter() - t0


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def train_section(row: dict[str, int], data: Path, device: str) -> dict:
    return {
        "data": str(data),
        "batch_size": row["batch"],
        "device": device,
        "model": {"family": "dcgan", "loss": "nonsaturating", "z_dim": row["z_dim"],
                  "width": row["width"]},
    }  # fmt: skip


def in_process(row: dict[str, int], data: Path, device: str, warmup: int, blocks: int) -> dict:
    """Median ms/step of ganops and of the plain loop, alternating block by block."""
    from gan.device import pick_device

    plain = PlainDCGAN(row, pick_device(device))
    plain_blocks: list[float] = []
    steps = row["steps"]

    def between(k: int) -> None:
        if k == 0:
            plain.run(warmup)
        plain_blocks.append(plain.run(steps))

    def same_networks(session) -> None:
        nets = session.family.nets
        ours = (n_params(nets["G"]), n_params(nets["D"]))
        theirs = (n_params(plain.G), n_params(plain.D))
        if ours != theirs:
            raise RuntimeError(f"parameter counts differ: ganops {ours}, plain {theirs}")

    info = harness.timed_train(
        train_section(row, data, device), warmup, blocks, steps, between, same_networks
    )
    ganops_ms = harness.per_step_ms(info["block_seconds"], steps)
    plain_ms = harness.per_step_ms(plain_blocks, steps)
    return {
        "ganops_ms_per_step": round(ganops_ms, 2),
        "plain_ms_per_step": round(plain_ms, 2),
        "ratio_plain_over_ganops": round(plain_ms / ganops_ms, 3),
        "ganops_img_per_s": round(1000 * row["batch"] / ganops_ms, 1),
        "plain_img_per_s": round(1000 * row["batch"] / plain_ms, 1),
        "ganops_block_s": [round(s, 4) for s in info["block_seconds"]],
        "plain_block_s": [round(s, 4) for s in plain_blocks],
        "params_G": n_params(plain.G),
        "params_D": n_params(plain.D),
        "ganops_chose": {
            k: v for k, v in info.items() if k not in ("block_seconds", "run_seconds")
        },
    }


def whole_process(row: dict[str, int], tmp: Path, device: str, steps: int, repeats: int) -> dict:
    """Wall time of `gan train` (start-up, training, final checkpoint, export, grids) and of
    the plain loop as a script (start-up, training, a torch.save of both networks),
    alternating, median of `repeats`."""
    import yaml

    data = harness.random_dataset(tmp / "data", row["resolution"], row["channels"])
    section = train_section(row, data, device) | {"steps": steps, "progress": False}
    gan_s, plain_s = [], []
    for r in range(repeats):
        run = tmp / f"gan-{r}"
        run.mkdir()
        params = {"train": section | {"runs_dir": str(run / "runs"), "run": "whole"}}
        (run / "params.yaml").write_text(yaml.safe_dump(params))
        gan_s.append(harness.run_wall([*harness.gan_command(), "train", "-p", "params.yaml"], run))
        plain_cmd = [sys.executable, __file__, "--plain-process", _row_arg(row), "--device",
                     device, "--process-steps", str(steps), "--out", str(tmp / f"plain-{r}.pt")]  # fmt: skip
        plain_s.append(harness.run_wall(plain_cmd))
    g, p = statistics.median(gan_s), statistics.median(plain_s)
    return {
        "steps": steps,
        "gan_train_s": round(g, 2),
        "plain_script_s": round(p, 2),
        "ratio_plain_over_ganops": round(p / g, 3),
        "gan_train_runs_s": [round(s, 2) for s in gan_s],
        "plain_script_runs_s": [round(s, 2) for s in plain_s],
    }


def _row_arg(row: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in row.items())


def plain_process(arg: str, device: str, steps: int, out: str) -> None:
    """The plain loop as its own script: what a textbook user runs end to end."""
    from gan.device import pick_device

    row = {k: int(v) for k, v in (kv.split("=") for kv in arg.split(","))}
    plain = PlainDCGAN(row, pick_device(device))
    plain.run(steps)
    torch.save({"G": plain.G.state_dict(), "D": plain.D.state_dict()}, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="examples,default", help="examples and/or default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the blocks")
    ap.add_argument("--blocks", type=int, default=3, help="timed blocks per side (median)")
    ap.add_argument("--process-steps", type=int, default=50, help="steps of the whole-process runs")
    ap.add_argument("--process-repeats", type=int, default=1)
    ap.add_argument("--process-rows", default="default", help="rows timed as whole processes")
    ap.add_argument("--quick", action="store_true", help="tiny networks: checks the script works")
    ap.add_argument("--out-dir", type=Path, default=None, help="JSON folder (reports/bench)")
    ap.add_argument("--plain-process", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_process:
        plain_process(args.plain_process, args.device, args.process_steps, args.out)
        return
    if args.quick:
        args.warmup, args.blocks, args.process_steps = 1, 2, 3
    names = [r for r in args.rows.split(",") if r]
    unknown = set(names + args.process_rows.split(",")) - {"examples", "default", ""}
    if unknown:
        ap.error(f"--rows/--process-rows: unknown row(s) {sorted(unknown)}; use examples, default")
    rows_cfg = {"examples": EXAMPLES, "default": default_row()}
    if args.quick:
        rows_cfg = {k: QUICK for k in rows_cfg}
    env = harness.environment(args.device)
    report = {"benchmark": "vs_plain_loop", "environment": env, "quick": args.quick,
              "warmup": args.warmup, "blocks": args.blocks, "rows": {}, "whole_process": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gan-bench-") as tmp:
        tmp = Path(tmp)
        for name in names:
            row = rows_cfg[name]
            data = harness.random_dataset(tmp / f"data-{name}", row["resolution"], row["channels"])
            report["rows"][name] = {"config": row} | in_process(
                row, data, args.device, args.warmup, args.blocks
            )
            print(f"{name}: {report['rows'][name]}", flush=True)
        for name in (r for r in args.process_rows.split(",") if r):
            where = tmp / f"process-{name}"
            where.mkdir()
            report["whole_process"][name] = {"config": rows_cfg[name]} | whole_process(
                rows_cfg[name], where, args.device, args.process_steps, args.process_repeats
            )
            print(f"{name} whole process: {report['whole_process'][name]}", flush=True)
    path = harness.write_report("vs_plain_loop", report, args.out_dir)
    table = [{"row": n, "what": "ms/step", "ganops": r["ganops_ms_per_step"],
              "plain": r["plain_ms_per_step"], "plain/ganops": r["ratio_plain_over_ganops"]}
             for n, r in report["rows"].items()]  # fmt: skip
    table += [{"row": n, "what": f"whole process s ({r['steps']} steps)", "ganops": r["gan_train_s"],
               "plain": r["plain_script_s"], "plain/ganops": r["ratio_plain_over_ganops"]}
              for n, r in report["whole_process"].items()]  # fmt: skip
    print()
    harness.print_table(table)
    print(f"\n{harness.env_line(env)}; plain/ganops > 1: ganops is faster; JSON: {path}")


if __name__ == "__main__":
    main()
