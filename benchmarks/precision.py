"""Per family preset: the training step in fp32 and bf16 autocast, each contiguous and
channels_last, and which layout is faster in each precision on this device.

This is what `train.precision: auto` and `train.channels_last: auto` follow: the families'
`cpu_channels_last` comes from these rows on the CPU (docs/benchmarks.md has the machines'
tables). Each (precision, layout) point is the real trainer (harness.timed_train) on random
data of the preset's shape at its batch; the points of a family run in turn, `rounds`
times, and each figure is the median of its rounds, so a busy moment of the machine does
not land on one point only. Usage:
    python benchmarks/precision.py [--families dcgan,stylegan2] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import harness
from families import PRESETS, preset_batch, preset_section, preset_shape

POINTS = [(p, cl) for p in ("fp32", "bf16") for cl in (False, True)]
# timed steps per point
STEPS = {"dcgan": 10, "stylegan2": 3, "biggan": 2, "r3gan": 2, "cyclegan": 2}


def point_name(precision: str, channels_last: bool) -> str:
    return f"{precision} {'channels_last' if channels_last else 'contiguous'}"


def measure(family: str, data: Path, device: str, rounds: int, quick: bool) -> dict:
    batch = 4 if quick else preset_batch(family)
    steps = 1 if quick else STEPS[family]
    section = preset_section(family, batch, device, data)
    blocks: dict[str, list[float]] = {point_name(*p): [] for p in POINTS}
    for _ in range(rounds):
        for precision, cl in POINTS:
            point = section | {"precision": precision, "channels_last": cl}
            info = harness.timed_train(point, warmup=2, blocks=1, steps=steps)
            blocks[point_name(precision, cl)] += info["block_seconds"]
    ms = {k: 1000 * statistics.median(v) / steps for k, v in blocks.items()}
    best = {
        p: min((False, True), key=lambda cl, p=p: ms[point_name(p, cl)]) for p in ("fp32", "bf16")
    }
    fastest_fp32 = ms[point_name("fp32", best["fp32"])]
    return {
        "family": family,
        "batch": batch,
        "steps_per_point": steps,
        "ms_per_step": {k: round(v, 2) for k, v in ms.items()},
        "channels_last_faster": best,
        "bf16_speedup": round(fastest_fp32 / ms[point_name("bf16", best["bf16"])], 3),
        "block_s": {k: [round(s, 4) for s in v] for k, v in blocks.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(PRESETS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--quick", action="store_true", help="batch 4, one round, one step: checks the script"
    )
    ap.add_argument("--out-dir", type=Path, default=None, help="JSON folder (reports/bench)")
    args = ap.parse_args()
    families = [f for f in args.families.split(",") if f]
    unknown = set(families) - set(PRESETS)
    if unknown:
        ap.error(f"--families: unknown {sorted(unknown)}; choose from {', '.join(PRESETS)}")
    rounds = 1 if args.quick else args.rounds
    env = harness.environment(args.device)
    report = {"benchmark": "precision", "environment": env, "quick": args.quick,
              "rounds": rounds, "families": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gan-bench-") as tmp:
        for family in families:
            res, ch = preset_shape(family)  # --quick too: CycleGAN's D needs its size
            domains = PRESETS[family][1]
            data = harness.random_dataset(
                Path(tmp) / family, res, ch, classes=0 if domains else 10, domains=domains
            )
            row = measure(family, data, args.device, rounds, args.quick)
            report["families"].append(row)
            print(f"{family}: {row['ms_per_step']}", flush=True)
    path = harness.write_report("precision", report, args.out_dir)
    table = [
        {"family": r["family"], "batch": r["batch"], **r["ms_per_step"],
         "bf16 speed-up": r["bf16_speedup"],
         "channels_last faster (fp32/bf16)":
             f"{r['channels_last_faster']['fp32']}/{r['channels_last_faster']['bf16']}"}
        for r in report["families"]
    ]  # fmt: skip
    print()
    harness.print_table(table)
    print(f"\n{harness.env_line(env)}; ms per step, median of {rounds} rounds; JSON: {path}")


if __name__ == "__main__":
    main()
