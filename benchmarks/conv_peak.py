"""What fraction of this machine's convolution throughput a conv-bound training step reaches.

The peak is measured here, not taken from a datasheet, per precision: the best GFLOP/s of
a few large 3x3 and 4x4-stride-2 convolutions and transposed convolutions (forward, input
gradient and weight gradient, in both layouts), and of each convolution of pytorch/examples'
DCGAN alone (which of a step's layers run below the peak, and how far the whole step is
from its own layers' speed), in fp32 and, where `train.precision: auto` picks it, under
bf16 autocast. A step's fraction is of the peak of the precision it ran in. A training step's work is
counted by torch's FlopCounterMode on one real step of the trainer (every phase, forward
and backward); its time is the median of blocks of steps. Usage:
python benchmarks/conv_peak.py [--device cpu] [--families dcgan,biggan]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import harness
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gan.device import pick_device, pick_precision
from gan.training.loop import run_phases

# (kind, channels in, channels out, input size, batch): shapes like the presets' big layers
PEAK_SHAPES = [
    ("conv3x3", 128, 128, 32, 32),
    ("conv3x3", 256, 256, 16, 32),
    ("conv4x4s2", 128, 256, 32, 64),
    ("convT4x4s2", 256, 128, 16, 64),
]
MODELS = {
    "dcgan": {"family": "dcgan", "width": 64, "z_dim": 100, "conditional": False},
    "biggan": {"family": "biggan", "ch": 16, "g_widths": [4, 4, 2, 1], "d_widths": [1, 2, 4, 4]},
}
DCGAN_RES_BATCH = (64, 64)  # pytorch/examples: 64 px, batch 64
QUICK_MODEL = {"width": 4, "z_dim": 8}  # --quick: tiny networks at 16 px, batch 4
DCGAN_RES_BATCH_QUICK = (16, 4)


def _layer(kind: str, c_in: int, c_out: int) -> nn.Module:
    if kind == "conv3x3":
        return nn.Conv2d(c_in, c_out, 3, 1, 1)
    if kind == "conv4x4s2":
        return nn.Conv2d(c_in, c_out, 4, 2, 1)
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


QUICK_SHAPES = [("conv3x3", 8, 8, 16, 4)]  # --quick: the script's own test


def time_layer(
    layer: nn.Module, x: torch.Tensor, device: torch.device, repeats: int, bf16: bool = False
) -> tuple[float, int]:
    """(median seconds, FLOPs counted by torch) of one forward + backward of `layer` on `x`,
    under bf16 autocast with `bf16`."""

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = layer(x)
        out.float().sum().backward()
        harness.sync(device)

    with FlopCounterMode(display=False) as counter:
        step()
    return _median_seconds(step, repeats), counter.get_total_flops()


def peak_gflops(
    device: torch.device, channels_last: bool, repeats: int, shapes: list[tuple], bf16: bool
) -> list[dict]:
    """GFLOP/s of forward + both gradients of each shape (FLOPs counted by torch)."""
    rows, precision = [], "bf16" if bf16 else "fp32"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for kind, c_in, c_out, size, batch in shapes:
        layer = _layer(kind, c_in, c_out).to(device, memory_format=fmt)
        x = torch.randn(batch, c_in, size, size, device=device).to(memory_format=fmt)
        seconds, flops = time_layer(layer, x.requires_grad_(True), device, repeats, bf16)
        gflops = flops / seconds / 1e9
        layout = "" if channels_last else " (contiguous)"
        rows.append({"what": f"{kind} {c_in}->{c_out} @{size} x{batch}{layout}",
                     "precision": precision, "gflops": gflops})  # fmt: skip
    return rows


def dcgan_layers(width: int, z_dim: int, res: int, channels: int) -> list[tuple]:
    """(name, layer, input shape without batch, input needs a gradient) of pytorch/examples'
    DCGAN: D's strided 4x4 convolutions, then G's transposed ones, in the order they run."""
    stages, rows, c = res.bit_length() - 3, [], channels  # 64 px: 4 strided stages + 4x4 head
    for i in range(stages):
        out = width * 2**i
        rows.append((f"D conv {c}->{out} @{res >> i}", nn.Conv2d(c, out, 4, 2, 1, bias=False),
                     (c, res >> i, res >> i), i > 0))  # fmt: skip
        c = out
    rows.append((f"D conv {c}->1 @4", nn.Conv2d(c, 1, 4, 1, 0, bias=False), (c, 4, 4), True))
    rows.append((f"G convT {z_dim}->{c} @1", nn.ConvTranspose2d(z_dim, c, 4, 1, 0, bias=False),
                 (z_dim, 1, 1), False))  # fmt: skip
    for i in reversed(range(stages)):
        out = width * 2 ** (i - 1) if i else channels
        size = res >> (i + 1)
        rows.append((f"G convT {c}->{out} @{size}", nn.ConvTranspose2d(c, out, 4, 2, 1, bias=False),
                     (c, size, size), True))  # fmt: skip
        c = out
    return rows


def layer_gflops(
    device: torch.device, layers: list[tuple], batch: int, repeats: int, bf16: bool
) -> list[dict]:
    """Each layer's forward + gradients alone, in the trainer's CPU layout (channels_last):
    which of a step's convolutions run below the peak."""
    rows = []
    for name, layer, shape, input_grad in layers:
        layer = layer.to(device, memory_format=torch.channels_last)
        x = torch.randn(batch, *shape, device=device).to(memory_format=torch.channels_last)
        seconds, flops = time_layer(layer, x.requires_grad_(input_grad), device, repeats, bf16)
        rows.append({"layer": name, "precision": "bf16" if bf16 else "fp32", "ms": seconds * 1e3,
                     "gflop": flops / 1e9, "gflops": flops / seconds / 1e9})  # fmt: skip
    return rows


def step_gflops(data: Path, model: dict, batch: int, device: str, steps: int) -> dict:
    """One trainer step's counted FLOPs over its median time."""
    session = harness.trainer_session(data, batch, device, model)
    dev = session.precision.device
    for step in range(2):  # warm-up
        run_phases(session, step, measure=False)
    with FlopCounterMode(display=False) as counter:
        run_phases(session, 2, measure=False)
    flops = counter.get_total_flops()
    blocks = []
    for b in range(3):
        t0 = time.perf_counter()
        for step in range(3 + b * steps, 3 + (b + 1) * steps):
            run_phases(session, step, measure=False)
        harness.sync(dev)
        blocks.append((time.perf_counter() - t0) / steps)
    seconds = statistics.median(blocks)
    return {
        "gflop_per_step": flops / 1e9,
        "ms_per_step": seconds * 1e3,
        "gflops": flops / seconds / 1e9,
        "precision": "bf16" if session.precision.bf16 else "fp32",
        "channels_last": session.precision.channels_last,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--families", default="dcgan,biggan")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny shapes and networks (tests)")
    ap.add_argument("--out-dir", type=Path, default=None, help="JSON folder (reports/bench)")
    args = ap.parse_args()
    if args.quick:
        args.families, args.steps, args.repeats = "dcgan", 1, 1
    dev = pick_device(args.device)
    shapes = QUICK_SHAPES if args.quick else PEAK_SHAPES
    # bf16 where `auto` picks it: elsewhere it has no fast kernels and would take long
    precisions = [False, True] if pick_precision(dev).bf16 else [False]
    examples = {**MODELS["dcgan"], **(QUICK_MODEL if args.quick else {})}
    layer_res, batch = DCGAN_RES_BATCH_QUICK if args.quick else DCGAN_RES_BATCH
    peak_rows, layers = [], []
    for bf16 in precisions:
        for channels_last in (True, False):
            peak_rows += peak_gflops(dev, channels_last, args.repeats, shapes, bf16)
        net = dcgan_layers(examples["width"], examples["z_dim"], layer_res, 3)
        layers += layer_gflops(dev, net, batch, args.repeats, bf16)
    # each precision's peak is its best convolution measured here, DCGAN's layers included
    peaks = {
        p: max(r["gflops"] for r in peak_rows + layers if r["precision"] == p)
        for p in {r["precision"] for r in peak_rows}
    }
    for r in layers:
        r["fraction_of_peak"] = r["gflops"] / peaks[r["precision"]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families.split(","):
            res, step_batch = DCGAN_RES_BATCH if name == "dcgan" else (32, 32)
            model = MODELS[name]
            if args.quick:
                res, step_batch = DCGAN_RES_BATCH_QUICK
                model = {**model, **QUICK_MODEL}
            dcgan = name == "dcgan"  # pytorch/examples' configuration; BigGAN's preset
            data = harness.random_dataset(
                Path(tmp) / name, res, 3 if dcgan else 1, classes=0 if dcgan else 10
            )
            r = step_gflops(data, model, step_batch, args.device, args.steps)
            rows.append({"family": name, "resolution": res, "batch": step_batch, **r,
                         "fraction_of_peak": r["gflops"] / peaks[r["precision"]]})  # fmt: skip
            print(rows[-1], flush=True)
    env = harness.environment(args.device)
    report = {"environment": env, "quick": args.quick, "peak_gflops": peaks["fp32"],
              "peak_gflops_by_precision": peaks, "peak_rows": peak_rows, "steps": rows,
              "dcgan_layers": layers}  # fmt: skip
    path = harness.write_report("conv_peak", report, args.out_dir)
    harness.print_table(peak_rows)
    print("\npeak: " + ", ".join(f"{p} {v:.1f} GFLOP/s" for p, v in peaks.items()))
    harness.print_table(rows)
    print(f"\nDCGAN (pytorch/examples), each convolution alone at batch {batch}:")
    harness.print_table(layers)
    print(f"\n{harness.env_line(env)}; JSON: {path}")


if __name__ == "__main__":
    main()
