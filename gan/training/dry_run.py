"""`gan train --dry-run`: what a run would train, what it holds and how fast it steps, on
this device, without writing anything.

It reads only the processed data's manifest (the resolution, channels and classes the
networks are sized by), derives `train.model.preset`'s values (gan/training/preset.py),
builds the run's session as `gan train` does, and runs a few steps of the real objective
on random images of the data's shape: WARMUP steps (the first runs every phase, lazy ones
included, and is the one measured for memory), then TIMED steps, each timed alone.

Memory, per device, in the run's own tensors: the networks' weights and buffers (EMA
copies included), a gradient per trained parameter, Adam's state as the steps left it, and
the activations: the peak of the bytes autograd held for backward during the first step,
counted by saved-tensor hooks that see each saved tensor's storage once and follow it
until its graph is freed (so R1's double backward counts both graphs). Working memory of
single operations comes on top; on CUDA the allocator's measured peak is shown beside it.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import torch

from gan.config import EvaluateConfig, TrainConfig
from gan.data.shards import SplitData, read_manifest
from gan.device import cpu_threads, pick_device
from gan.models.family import DataInfo
from gan.training.budget import available_bytes, check_fits
from gan.training.loop import end_step, precision_for, run_phases
from gan.training.preset import preset_lines, resolve_preset
from gan.training.session import Session

WARMUP, TIMED = 3, 3
MIB = 1 << 20


class SavedTensors:
    """The bytes autograd holds for backward, and their peak. Each saved tensor is packed
    into a token that only the graph refers to, so the token dies with the graph; a storage
    saved several times (or a view of it) counts once, parameters not at all."""

    def __init__(self, excluded: set[int]) -> None:
        self.excluded = excluded  # data pointers of the weights, counted apart
        self.refs: dict[int, int] = {}
        self.bytes = self.peak = 0

    def pack(self, t: torch.Tensor) -> Any:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self.excluded:
            return t
        return _Token(self, key, storage.nbytes(), t)

    @staticmethod
    def unpack(packed: Any) -> torch.Tensor:
        return packed.tensor if isinstance(packed, _Token) else packed

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Token:
    def __init__(self, owner: SavedTensors, key: int, nbytes: int, tensor: torch.Tensor) -> None:
        self.owner, self.key, self.nbytes, self.tensor = owner, key, nbytes, tensor
        count = owner.refs.get(key, 0)
        owner.refs[key] = count + 1
        if not count:
            owner.bytes += nbytes
            owner.peak = max(owner.peak, owner.bytes)

    def __del__(self) -> None:
        owner = self.owner
        owner.refs[self.key] -= 1
        if not owner.refs[self.key]:
            del owner.refs[self.key]
            owner.bytes -= self.nbytes


def random_split(manifest: dict[str, Any], data: DataInfo, batch: int) -> SplitData:
    """One batch per domain of random images, labels and domains in the data's shape."""
    n = batch * data.domains
    gen = torch.Generator().manual_seed(0)
    shape = (n, data.channels, data.resolution, data.resolution)
    images = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    labels = (
        torch.randint(0, data.num_classes, (n,), generator=gen)
        if data.num_classes
        else torch.full((n,), -1, dtype=torch.int64)
    )
    return SplitData(images, labels, torch.arange(n) % data.domains, manifest)


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dry_run(cfg: TrainConfig, evaluate: EvaluateConfig | None = None) -> dict[str, Any]:
    """The report `gan train --dry-run` prints (`describe`); `evaluate` is the train stage's
    other section, which only snapshots read (none are taken here)."""
    manifest = read_manifest(cfg.data)
    data = DataInfo.from_manifest(manifest)
    cfg, preset = resolve_preset(cfg, data)
    device = pick_device(cfg.device)
    per_device = cfg.batch_size // cfg.world_size
    # one device's share of the run: its batch, in one process
    local = cfg.model_copy(update={"batch_size": per_device, "world_size": 1})
    with cpu_threads(cfg.threads):
        precision = precision_for(cfg, device)
        check_fits(cfg, data, device)
        session = Session(local, random_split(manifest, data, per_device), precision)
        family = session.family
        weights = {n: {p.data_ptr() for p in net.parameters()} for n, net in family.nets.items()}
        saved = SavedTensors(set().union(*weights.values()))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = []
        for step in range(WARMUP + TIMED):
            _sync(device)
            start = time.perf_counter()
            with saved.hooks() if step == 0 and not cfg.compile else nullcontext():
                run_phases(session, step, measure=False)
            end_step(session, step)
            _sync(device)
            if step >= WARMUP:
                seconds.append(time.perf_counter() - start)
        trained = [p for opt in session.optimizers.values() for g in opt.param_groups for p in g["params"]]  # fmt: skip
        adam = [t for opt in session.optimizers.values() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]  # fmt: skip
        memory = {
            "weights": sum(_nbytes([*n.parameters(), *n.buffers()]) for n in family.nets.values()),
            "gradients": _nbytes(trained),
            "optimizer": _nbytes(adam),
            "activations": saved.peak if not cfg.compile else None,
        }
        memory["total"] = sum(v for v in memory.values() if v)
        if device.type == "cuda":
            memory["cuda_peak_allocated"] = int(torch.cuda.max_memory_allocated(device))
        memory["free"] = available_bytes(device)
    mean = sum(seconds) / len(seconds)
    return {
        "family": family.name,
        "data": {"path": cfg.data, **data.to_dict()},
        "device": str(device),
        "precision": precision.describe(),
        "world_size": cfg.world_size,
        "batch_size": cfg.batch_size,
        "batch_per_device": per_device,
        "preset": preset,
        "parameters": {
            n: sum(p.numel() for p in net.parameters()) for n, net in family.nets.items()
        },  # fmt: skip
        "ema": dict(family.ema),
        "memory": memory,
        "step_seconds": seconds,
        "mean_step_seconds": mean,
        "img_per_s": per_device / mean if mean > 0 else None,
    }


def _mib(n: int | None) -> str:
    return "not measured" if n is None else f"{n / MIB:,.1f} MiB"


def describe(report: dict[str, Any]) -> str:
    """The report as `gan train --dry-run` prints it."""
    d = report["data"]
    classes = f", {d['num_classes']} classes" if d["num_classes"] else ""
    lines = [
        f"dry run: {report['family']} on {d['path']} ({d['resolution']} px, {d['channels']} "
        f"channel{'s' if d['channels'] > 1 else ''}{classes}); {report['device']}, "
        f"{report['precision']}; batch {report['batch_size']}"
        + (
            f" ({report['batch_per_device']} per device, {report['world_size']} devices)"
            if report["world_size"] > 1
            else ""
        ),
    ]
    lines += preset_lines(report["preset"]) or ["preset: none (train.model.preset unset)"]
    ema = report["ema"]
    counts = [
        f"{name} {n:,}" + (f" (EMA copy of {ema[name]})" if name in ema else "")
        for name, n in report["parameters"].items()
    ]
    lines.append("parameters: " + ", ".join(counts))
    m = report["memory"]
    lines += [
        f"memory, estimated per device: {_mib(m['total'])}",
        f"  weights and buffers      {_mib(m['weights'])}  (every network, EMA copies too)",
        f"  gradients                {_mib(m['gradients'])}  (one per trained parameter)",
        f"  Adam state               {_mib(m['optimizer'])}  (measured after the steps)",
        f"  activations              {_mib(m['activations'])}  (peak held for backward in the "
        "first step, every phase; measured by saved-tensor hooks; per-op working memory on top)",
    ]
    if "cuda_peak_allocated" in m:
        lines.append(f"  CUDA peak allocated      {_mib(m['cuda_peak_allocated'])}  (measured)")
    if m.get("free") is not None:
        lines.append(f"  free now                 {_mib(m['free'])}  (on {report['device']})")
    secs = ", ".join(f"{s:.3f}" for s in report["step_seconds"])
    lines.append(
        f"step time: {report['mean_step_seconds']:.3f} s ({report['img_per_s']:,.1f} img/s per "
        f"device): the mean of {TIMED} steps ({secs} s) after {WARMUP} warm-up steps, on random "
        "images of the data's shape"
    )
    lines.append("nothing written (a dry run)")
    return "\n".join(lines)
