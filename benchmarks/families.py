"""Per family preset: training speed and memory at a few batch sizes, data loading,
evaluation feature extraction and start-up, as a table and reports/bench/families.json.

Each (preset, batch) point runs in its own process so its peak RSS is its own (CUDA: max
allocated). Training runs the real trainer (harness.timed_train) on random data of the
preset's shape (its resolution, channels, 10 classes, two domains for CycleGAN); img/s
is batch size / step time, one step being one update of every network (BigGAN's
d_steps D updates included). Data loading is the project's BatchLoader over the processed
digits; evaluation is the classifier extractor torch-fidelity calls (gan/metrics/extractors.py)
on uint8 RGB batches. Start-up is the wall time of `gan --help`, `gan train --help` and
of a whole one-step `gan train` of the default DCGAN. Usage:
    python benchmarks/families.py [--families dcgan,stylegan2] [--batches 0.5,1,2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import torch

# family -> (params file, domains of its data)
PRESETS = {
    "dcgan": ("params.yaml", 0),
    "stylegan2": ("params-stylegan2.yaml", 0),
    "biggan": ("params-biggan.yaml", 0),
    "r3gan": ("params-r3gan.yaml", 0),
    "cyclegan": ("params-cyclegan.yaml", 2),
}
# Keys the harness sets for a timed run (temp run dir, no grids, checkpoints or metric
# snapshots inside it: snapshots measure, they are not the step being timed).
HARNESS_KEYS = frozenset(
    {"runs_dir", "run", "steps", "data", "progress", "sample_every", "checkpoint_every",
     "log_every", "grid_size", "metrics_every", "export"}
)  # fmt: skip


def preset_section(family: str, batch: int, device: str, data: Path) -> dict:
    """The preset's train section, on `data`, at `batch`, with its own run keys dropped."""
    from gan.config import dump_section, load_params

    params = load_params(harness.REPO / PRESETS[family][0])
    section = {k: v for k, v in dump_section(params.train).items() if k not in HARNESS_KEYS}
    return section | {"data": str(data), "batch_size": batch, "device": device}


def preset_shape(family: str) -> tuple[int, int]:
    from gan.config import load_params

    pre = load_params(harness.REPO / PRESETS[family][0]).preprocess
    return pre.resolution, pre.channels


def preset_batch(family: str) -> int:
    from gan.config import load_params

    return load_params(harness.REPO / PRESETS[family][0]).train.batch_size


def worker(spec: dict) -> dict:
    """One (family, batch) point, in this process: warm-up, blocks, peak memory."""
    family, batch = spec["family"], spec["batch"]
    rss_before = harness.peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="gan-bench-data-") as tmp:
        res, ch = preset_shape(family)
        n = max(256, 2 * batch * (2 if PRESETS[family][1] else 1))
        data = harness.random_dataset(Path(tmp), res, ch, n, classes=10, domains=PRESETS[family][1])
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        section = preset_section(family, batch, spec["device"], data)
        info = harness.timed_train(section, spec["warmup"], spec["blocks"], spec["steps"])
    ms = harness.per_step_ms(info["block_seconds"], spec["steps"])
    out = {
        "family": family,
        "batch": batch,
        "ms_per_step": round(ms, 2),
        "img_per_s": round(1000 * batch / ms, 1),
        "peak_rss_mib": round(harness.peak_rss_mib(), 1),
        "rss_after_imports_mib": round(rss_before, 1),
        "block_s": [round(s, 4) for s in info["block_seconds"]],
        "chose": {k: v for k, v in info.items() if k not in ("block_seconds", "run_seconds")},
    }
    if torch.cuda.is_available():
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_point(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(f"{spec}: worker failed:\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loading(device: str, batch: int, batches: int) -> dict:
    """img/s of the project's BatchLoader (indexing, uint8 -> float, layout) over the digits."""
    from gan.data.loader import BatchLoader
    from gan.data.shards import load_split
    from gan.device import pick_device
    from gan.training.streams import Streams

    digits = harness.REPO / "data" / "processed" / "digits"
    with tempfile.TemporaryDirectory(prefix="gan-bench-data-") as tmp:
        if (digits / "manifest.json").is_file():
            source, split = str(digits.relative_to(harness.REPO)), load_split(digits, "train")
        else:  # a fresh clone before `make pipeline`: random data of the same shape
            source = "random 32x32x1 (data/processed/digits not built)"
            split = load_split(harness.random_dataset(Path(tmp), 32, 1, 1437, classes=10), "train")
    loader = BatchLoader(split, batch, pick_device(device), Streams(0))
    for _ in range(5):
        loader.next()
    t0 = time.perf_counter()
    for _ in range(batches):
        loader.next()
    harness.sync(pick_device(device))
    seconds = time.perf_counter() - t0
    return {"data": source, "batch": batch, "img_per_s": round(batches * batch / seconds, 1)}


def extractor_speed(device: str, batch: int, batches: int) -> dict:
    """img/s of the classifier extractor's forward (features and logits) on uint8 RGB."""
    from gan.device import pick_device
    from gan.metrics.classifier import Classifier
    from gan.metrics.extractors import ClassifierExtractor, register_classifier

    classifier = harness.REPO / "models" / "digits" / "classifier"
    if (classifier / "classifier.json").is_file():
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

        weights = str(classifier.relative_to(harness.REPO))
        cls = FEATURE_EXTRACTORS_REGISTRY[register_classifier(classifier).fidelity_name]
    else:  # same network, untrained weights: the same cost per image
        weights = "untrained (models/digits/classifier not built)"
        model = Classifier(1, 10, 128)
        cls = type("BenchExtractor", (ClassifierExtractor,),
                   {"arch": model.architecture(), "state": model.state_dict()})  # fmt: skip
    dev = pick_device(device)
    net = cls("bench", ["features", "logits"]).to(dev)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=dev)
    with torch.no_grad():
        for _ in range(3):
            net(x)
        t0 = time.perf_counter()
        for _ in range(batches):
            net(x)
        harness.sync(dev)
    seconds = time.perf_counter() - t0
    return {"classifier": weights, "batch": batch, "img_per_s": round(batches * batch / seconds, 1)}


def startup(device: str, repeats: int) -> dict:
    """Wall seconds of `gan --help`, `gan train --help` and a whole 1-step `gan train`."""
    import yaml

    gan = harness.gan_command()
    help_s = [harness.run_wall([*gan, "--help"]) for _ in range(repeats)]
    train_help_s = [harness.run_wall([*gan, "train", "--help"]) for _ in range(repeats)]
    with tempfile.TemporaryDirectory(prefix="gan-bench-") as tmp:
        tmp = Path(tmp)
        data = harness.random_dataset(tmp / "data", *preset_shape("dcgan"), classes=10)
        section = preset_section("dcgan", preset_batch("dcgan"), device, data)
        section |= {"steps": 1, "progress": False, "runs_dir": str(tmp / "runs")}
        (tmp / "params.yaml").write_text(yaml.safe_dump({"train": section}))
        one_step = harness.run_wall([*gan, "train", "-p", "params.yaml"], tmp)
    return {
        "gan_help_s": round(statistics.median(help_s), 3),
        "gan_train_help_s": round(statistics.median(train_help_s), 3),
        "gan_train_1_step_s": round(one_step, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(PRESETS), help="comma-separated; '' for none")
    ap.add_argument("--batches", default="0.5,1,2", help="multiples of each preset's batch size")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per block")
    ap.add_argument("--quick", action="store_true", help="one family, one batch, few steps")
    ap.add_argument("--out-dir", type=Path, default=None, help="JSON folder (reports/bench)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    families = [f for f in args.families.split(",") if f]
    if set(families) - set(PRESETS):
        ap.error(f"--families: unknown {sorted(set(families) - set(PRESETS))}; use {list(PRESETS)}")
    mults = [float(m) for m in args.batches.split(",")]
    if args.quick:
        families, mults, args.warmup, args.blocks, args.steps = families[:1], [0.25], 1, 2, 1
    env = harness.environment(args.device)
    report = {"benchmark": "families", "environment": env, "quick": args.quick,
              "warmup": args.warmup, "blocks": args.blocks, "steps_per_block": args.steps,
              "training": []}  # fmt: skip
    for family in families:
        for mult in mults:
            batch = max(1, round(preset_batch(family) * mult))
            spec = {"family": family, "batch": batch, "device": args.device,
                    "warmup": args.warmup, "blocks": args.blocks, "steps": args.steps}  # fmt: skip
            report["training"].append(run_point(spec))
            print(report["training"][-1], flush=True)
            harness.write_report("families", report, args.out_dir)  # kept if a later part fails
    n = 10 if args.quick else 200
    report["loading"] = loading(args.device, 64, n)
    report["evaluation"] = extractor_speed(args.device, 64, n // 4)
    harness.write_report("families", report, args.out_dir)
    report["startup"] = startup(args.device, 1 if args.quick else 3)
    path = harness.write_report("families", report, args.out_dir)
    print()
    cols = ("family", "batch", "ms_per_step", "img_per_s", "peak_rss_mib", "cuda_max_allocated_mib")
    harness.print_table([{k: r[k] for k in cols if k in r} for r in report["training"]])
    print(f"\ndata loading: {report['loading']}\nevaluation: {report['evaluation']}")
    print(f"start-up: {report['startup']}\n{harness.env_line(env)}; JSON: {path}")


if __name__ == "__main__":
    main()
