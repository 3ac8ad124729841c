"""What every benchmark script shares: the environment a figure was taken in, random
processed datasets in the project's format, timing the real trainer in blocks of steps,
and the report (a table on stdout, JSON written atomically under reports/bench/).

The trainer is driven through `gan.training.loop.train` itself, in a temporary run dir,
with a step hook that reads the clock at block boundaries: what is timed is exactly the
loop `gan train` runs (phases, schedulers, EMA), never a copy of it. A step hook makes
the trainer check its NaN watch every step (one tiny device-to-host copy), which on a
GPU is a synchronisation per step; the figures include that cost.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
REPORT_DIR = REPO / "reports" / "bench"  # gitignored, and not a DVC output


def environment(device: str = "auto") -> dict[str, Any]:
    """The facts every figure is read against."""
    from gan.device import pick_device

    dev = pick_device(device)
    env = {
        "device": str(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
    }
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
        env["gpus"] = torch.cuda.device_count()
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def env_line(env: dict[str, Any]) -> str:
    gpu = f" ({env['gpu']})" if "gpu" in env else ""
    return (
        f"device {env['device']}{gpu}, torch {env['torch']}, threads {env['threads']}, "
        f"cpu affinity {env['cpu_affinity']}, {env['cpu']}"
    )


def random_dataset(
    root: Path, resolution: int, channels: int, n: int = 512, classes: int = 0, domains: int = 0
) -> Path:
    """A processed dataset dir (uint8 shards + manifest.json, gan/data/shards.py) of random
    pixels; `classes` > 0 gives labels, `domains` 2 an unpaired A/B split (CycleGAN)."""
    from gan.data.shards import write_split
    from gan.io import write_json

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (n, channels, resolution, resolution), dtype=torch.uint8, generator=gen
    )
    labels = torch.arange(n) % classes if classes else torch.full((n,), -1, dtype=torch.long)
    doms = torch.arange(n) % domains if domains else torch.zeros(n, dtype=torch.long)
    shards = write_split(root, "train", images, labels, doms, 4096)
    write_json(
        root / "manifest.json",
        {
            "resolution": resolution,
            "channels": channels,
            "classes": [str(i) for i in range(classes)],
            "domains": ["A", "B"] if domains else [],
            "content_hash": f"bench-{resolution}-{channels}-{n}-{classes}-{domains}",
            "splits": {"train": {"count": n, "shards": shards}},
        },
    )
    return root


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


BlockFn = Callable[[int], None]  # called with the block index at each block boundary


def trainer_session(data: Path, batch: int, device: str, model: dict[str, Any]):
    """The trainer's Session for `model` on `data`, as `gan train` builds it (precision and
    layout resolved per family), for benchmarks that drive run_phases step by step."""
    from gan.config import TrainConfig
    from gan.data.shards import load_split
    from gan.device import pick_device
    from gan.training.loop import precision_for
    from gan.training.session import Session

    cfg = TrainConfig.model_validate(
        {"data": str(data), "batch_size": batch, "device": device, "progress": False,
         "model": model}
    )  # fmt: skip
    dev = pick_device(cfg.device)
    return Session(cfg, load_split(data, "train"), precision_for(cfg, dev))


def timed_train(
    train_section: dict[str, Any],
    warmup: int,
    blocks: int,
    steps: int,
    between: BlockFn | None = None,
    on_session: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Run ganops' trainer for warmup + blocks * steps steps in a temporary run dir and
    time each block of `steps` steps. `between(k)` runs at each block boundary, outside
    the timed window (the other side of an alternating comparison); `on_session` sees the
    session once, after the first step. Returns block seconds and what the run chose."""
    from gan.config import TrainConfig
    from gan.training.loop import train

    seconds: list[float] = []
    info: dict[str, Any] = {}
    mark = [0.0]

    def hook(done: int, session) -> None:
        if done == 1:
            info.update(chosen(session))
            if on_session is not None:
                on_session(session)
        if done < warmup or (done - warmup) % steps:
            return
        sync(session.precision.device)
        k = (done - warmup) // steps
        if k > 0:
            seconds.append(time.perf_counter() - mark[0])
        if k < blocks and between is not None:
            between(k)
        mark[0] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="gan-bench-run-") as tmp:
        section = {
            "runs_dir": tmp,
            "run": "bench",
            "progress": False,
            "sample_every": 10**9,
            "checkpoint_every": 10**9,
            "log_every": 10**9,
            "grid_size": 4,
            **train_section,
            # one step past the last block: the last step writes the final checkpoint
            "steps": warmup + blocks * steps + 1,
        }
        cfg = TrainConfig.model_validate(section)
        if warmup < 1:
            raise ValueError("warmup must be at least one step")
        t0 = time.perf_counter()
        train(cfg, hooks=[hook])
        info["run_seconds"] = time.perf_counter() - t0
    info["block_seconds"] = seconds
    return info


def chosen(session) -> dict[str, Any]:
    """What the trainer decided for this run: precision and layout, and the train options
    compile and reuse_fake where this version of the trainer has them."""
    p = session.precision
    out = {"bf16": p.bf16, "channels_last": p.channels_last}
    for key in ("compile", "reuse_fake"):
        if getattr(session.cfg, key, None) is not None:
            out[key] = getattr(session.cfg, key)
    return out


def per_step_ms(block_seconds: list[float], steps: int) -> float:
    return 1000.0 * statistics.median(block_seconds) / steps


def peak_rss_mib() -> float:
    """This process's peak resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_wall(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall seconds of a whole process; its failure is an error carrying its stderr tail."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return wall


def gan_command() -> list[str]:
    """The `gan` console script beside this interpreter, else `python -m gan.cli`."""
    script = Path(sys.executable).with_name("gan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gan.cli"]


def write_report(name: str, report: dict[str, Any], out_dir: Path | None = None) -> Path:
    from gan.io import write_json

    path = (out_dir or REPORT_DIR) / f"{name}.json"
    write_json(path, report)
    return path


def markdown_table(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(markdown_table(rows))
