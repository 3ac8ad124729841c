"""The exported generator: safetensors weights plus a JSON config, usable without a checkpoint.

This is what evaluation measures, what the registry promotes and what `gan sample` and
`gan translate` load. Loading never executes code from a file
(docs/architecture.md, 'No-pickle loading') and needs only torch, safetensors and the
family's module (pydantic validates its config): no DVC, Prefect, Optuna, pandas or yaml.
generator.json's `signature` says what the network takes and returns, for a reader without
this code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gan.errors import GanError
from gan.io import FILE_MODE, atomic_path, make_dirs, write_json
from gan.models import get_family
from gan.models.family import DataInfo

WEIGHTS = "generator.safetensors"
CONFIG = "generator.json"
DERIVED = "generator*.onnx"  # made from the weights by `gan export` (gan/onnx_export.py)


@dataclass
class Exported:
    family: Any  # the GANFamily subclass
    generator: nn.Module
    meta: dict[str, Any]
    data: DataInfo
    conditional: bool = False  # the generator honours the labels it is given


def signature(
    family_name: str, model_cfg: dict[str, Any], data: DataInfo, classes: list[str] | None = None
) -> dict[str, Any]:
    """What the exported generator takes and returns, and how to call it."""
    family = get_family(family_name)
    images = {
        "layout": "NCHW float32",
        "shape": ["n", data.channels, data.resolution, data.resolution],
        "channels": {1: "grayscale", 3: "RGB"}.get(data.channels, f"{data.channels} channels"),
        "range": [-1.0, 1.0],
        "to_uint8": "((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)",
    }
    load = "e = gan.export.load_export(folder)"
    if family.task == "translate":
        return {
            "task": "translate",
            "input": {**images, "meaning": "images of domain A (AtoB) or B (BtoA)"},
            "output": {**images, "meaning": "the same images in the other domain"},
            "directions": ["AtoB", "BtoA"],
            "call": f"{load}; e.family.translate(e.generator, images, 'AtoB')",
        }
    conditional = family.is_conditional(family.config_class.model_validate(model_cfg), data)
    labels: dict[str, Any] = {"conditional": conditional, "num_classes": data.num_classes}
    if conditional:
        labels["meaning"] = "int64 [n], class k of `classes` (the training data's folders)"
        labels["classes"] = classes
    return {
        "task": "sample",
        "input": {"z_dim": model_cfg.get("z_dim"), "latent": "float32 [n, z_dim], N(0, 1)"},
        "labels": labels,
        "output": images,
        "call": f"{load}; e.family.generate(e.generator, n, torch.Generator().manual_seed(0)"
        + (", labels=labels" if conditional else "")
        + ", truncation=1.0)",
    }


def save_export(
    out_dir: str | Path,
    family_name: str,
    model_cfg: dict[str, Any],
    data: DataInfo,
    generator: nn.Module,
    extra: dict[str, Any] | None = None,
    classes: list[str] | None = None,
) -> Path:
    """Write the weights and generator.json (family, model config, data, signature).

    ONNX files `gan export` made of the weights there before are removed first: a resumed
    run re-exports, and a graph of older weights beside the new ones would be shipped or
    sampled as this export (docs/architecture.md, 'Export')."""
    out_dir = Path(out_dir)
    make_dirs(out_dir)
    for stale in out_dir.glob(DERIVED):
        stale.unlink()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    with atomic_path(out_dir / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
        os.chmod(tmp, FILE_MODE)  # safetensors writes a new 0600 file; exports are shared
    meta = {
        "family": family_name,
        "model": model_cfg,
        "data": data.to_dict(),
        "signature": signature(family_name, model_cfg, data, classes),
        **(extra or {}),
    }
    write_json(out_dir / CONFIG, meta)
    return out_dir


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= 1 << 16


def load_export(path: str | Path, device: str | torch.device = "cpu") -> Exported:
    """Rebuild the generator from an export directory; errors name the file at fault."""
    path = Path(path)
    weights, config = path / WEIGHTS, path / CONFIG
    for f in (weights, config):
        if not f.is_file():
            raise GanError(f"{f}: exported generator file not found")
    try:
        meta = json.loads(config.read_text())
        family = get_family(meta["family"])
        cfg = family.config_class.model_validate(meta["model"])
        data = DataInfo(**meta["data"])
        bad = [
            k for k, v in data.to_dict().items() if not _whole(v, 1 if k != "num_classes" else 0)
        ]
        if bad:
            raise ValueError(f"data.{bad[0]} must be a whole number")
        G = family.build_generator(cfg, data)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise GanError(f"{config}: not a valid generator config ({exc})") from None
    except GanError as exc:  # e.g. an unknown family
        raise GanError(f"{config}: {exc}") from None
    try:
        state = load_file(str(weights))
        G.load_state_dict(state)
    except Exception as exc:
        raise GanError(f"{weights}: cannot load generator weights ({exc})") from None
    return Exported(
        family=family,
        generator=G.to(device).eval(),
        meta=meta,
        data=data,
        conditional=family.is_conditional(cfg, data),
    )
