"""The exported generator as ONNX, for a service without PyTorch, and running it back.

`gan export --format onnx` writes, beside generator.safetensors, generator.onnx (a sampling
family: inputs z, labels for a conditional model, truncation) or generator-AtoB.onnx and
generator-BtoA.onnx (CycleGAN: images in, translated images out), with a dynamic batch.
The graph is the export's network in eval mode, as `gan sample` runs it (EMA weights,
BigGAN's standing batch-norm statistics, spectral norm's stored vectors), traced through
the family's `export_forward` (docs/architecture.md, 'Export'); every file is checked in
onnxruntime against PyTorch before it is written. The model's metadata (key `ganops`,
JSON) says what made it, so `gan sample --model x.onnx` (`OnnxGenerator`) draws the
latents the family's `generate` draws for a seed and feeds them to onnxruntime.

onnx and onnxruntime are optional (`pip install 'ganops[onnx]'`): imported here only, and
their absence is one error naming the package.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gan.errors import GanError
from gan.export import Exported, load_export
from gan.io import sha256_file, write_bytes
from gan.messages import exception_line
from gan.models import get_family
from gan.models.family import DataInfo

FORMATS = ("onnx",)  # what `gan export` writes (safetensors is what training writes)
ONNX = "generator.onnx"
OPSET = 17
META_KEY = "ganops"
CHECK_TOLERANCE = 1e-3  # onnxruntime against PyTorch on the check batch, images in [-1, 1]
TRUNCATION = (
    "float32 scalar; StyleGAN2: psi around the average w (0: the average image), BigGAN: "
    "latents beyond +-truncation resampled, DCGAN and R3GAN: scale of z; 1 is none"
)


def require(package: str, purpose: str) -> Any:
    """Import onnx or onnxruntime, or fail with one line saying what to install."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise GanError(
            f"{purpose} needs the {package} package, which is not installed: "
            "pip install 'ganops[onnx]' (onnx and onnxruntime)"
        ) from None


def onnx_names(exported: Exported) -> dict[str, str | None]:
    """File name -> translation direction (None: the sampling network)."""
    if exported.family.task == "translate":
        directions = exported.meta["signature"]["directions"]
        return {f"generator-{d}.onnx": d for d in directions}
    return {ONNX: None}


class _Sampling(nn.Module):
    """forward(z, [labels], truncation) -> images, through the family's export_forward."""

    def __init__(self, family, G: nn.Module, conditional: bool) -> None:
        super().__init__()
        self.family, self.G, self.conditional = family, G, conditional

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        labels = rest[0] if self.conditional else None
        return self.family.export_forward(self.G, z, labels, rest[-1])


class _Translation(nn.Module):
    def __init__(self, family, G: nn.Module, direction: str) -> None:
        super().__init__()
        self.family, self.G, self.direction = family, G, direction

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.family.translate(self.G, images, self.direction)


def _graph(exported: Exported, direction: str | None):
    """The module to trace, its example inputs by name and the model's metadata. The module
    is in eval mode, as `export_onnx` compares it: the exporter puts a module back in the
    mode it found it in, the exported generator inside it included."""
    family, G, data = exported.family, exported.generator, exported.data
    gen = torch.Generator().manual_seed(0)
    meta: dict[str, Any] = {"family": family.name, "task": family.task, "data": data.to_dict()}
    if direction is not None:
        images = torch.randn(2, data.channels, data.resolution, data.resolution, generator=gen)
        meta["direction"] = direction
        meta["inputs"] = {"images": "float32 [n, C, H, W] in [-1, 1], the source domain"}
        module: nn.Module = _Translation(family, G, direction)
        return module.eval(), {"images": images.clamp(-1, 1)}, meta
    z_dim, classes = family.latent_size(G)
    z, labels = family.draw(2, z_dim, classes, gen)
    inputs = {"z": z}
    described = {"z": f"float32 [n, {z_dim}], N(0, 1)"}
    if exported.conditional:
        inputs["labels"] = labels
        described["labels"] = f"int64 [n], a class index in 0..{classes - 1}"
    inputs["truncation"] = torch.tensor(0.7)  # not 1: the check runs the truncation too
    described["truncation"] = TRUNCATION
    classes_named = exported.meta.get("signature", {}).get("labels", {}).get("classes")
    meta.update(
        z_dim=z_dim,
        classes=classes,
        conditional=exported.conditional,
        class_names=classes_named if exported.conditional else None,
        inputs=described,
    )
    return _Sampling(family, G, exported.conditional).eval(), inputs, meta


def _trace(module: nn.Module, inputs: dict[str, torch.Tensor], output: str) -> bytes:
    """The TorchScript exporter (no onnxscript), batch dimension dynamic."""
    buf = io.BytesIO()
    dynamic = {name: {0: "n"} for name, x in inputs.items() if x.ndim}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's notes
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=list(inputs),
            output_names=[output],
            dynamic_axes={**dynamic, output: {0: "n"}},
        )
    return buf.getvalue()


def _session(model: bytes | str, ort):
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _feeds(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in inputs.items()}


def export_onnx(folder: str | Path) -> list[Path]:
    """Write the ONNX files of the export in `folder` beside its safetensors; returns them.

    Each is checked before it is written: onnx's checker, then onnxruntime's images on a
    fixed batch against PyTorch's within CHECK_TOLERANCE.
    """
    onnx = require("onnx", "ONNX export")
    ort = require("onnxruntime", "ONNX export")
    folder = Path(folder)
    exported = load_export(folder)
    weights_sha = sha256_file(folder / "generator.safetensors")
    written = []
    for name, direction in onnx_names(exported).items():
        module, inputs, meta = _graph(exported, direction)
        output = "translated" if direction else "images"
        model = onnx.load_from_string(_trace(module, inputs, output))
        meta.update(output=f"{output}: float32 [n, C, H, W] in [-1, 1]", weights=weights_sha)
        model.doc_string = f"ganops {exported.family.name} generator: " + json.dumps(meta["inputs"])
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)
        onnx.checker.check_model(model)
        data = model.SerializeToString()
        with torch.no_grad():
            want = module(*inputs.values()).numpy()
        got = _session(data, ort).run([output], _feeds(inputs))[0]
        gap = float(np.abs(got - want).max())
        if not gap <= CHECK_TOLERANCE:  # NaN too
            raise GanError(
                f"{folder / name}: onnxruntime's output differs from PyTorch's by {gap:.3g} "
                f"(more than {CHECK_TOLERANCE:g}); not written"
            )
        write_bytes(folder / name, data)
        written.append(folder / name)
    return written


class OnnxGenerator:
    """A generator.onnx that `gan export` wrote, run by onnxruntime: `generate` takes the
    arguments of a family's generate (without the network) and draws the same latents."""

    def __init__(self, path: str | Path) -> None:
        self.path = path = Path(path)
        if not path.is_file():
            raise GanError(f"{path}: ONNX model not found")
        ort = require("onnxruntime", "running an ONNX model")
        try:
            self.session = _session(str(path), ort)
        except Exception as exc:  # onnxruntime's own exception types
            reason = exception_line(exc, 300)
            raise GanError(f"{path}: not a readable ONNX model ({reason})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise GanError(
                f"{path}: not an ONNX model `gan export` wrote (no '{META_KEY}' metadata)"
            )
        try:
            meta = json.loads(raw)
            self.family = get_family(meta["family"])
            self.data = DataInfo(**meta["data"])
            self.task = meta["task"]
            if self.task == "sample":
                self.z_dim, self.classes = int(meta["z_dim"]), int(meta["classes"])
                self.conditional = bool(meta["conditional"])
        except (TypeError, KeyError, ValueError, GanError) as exc:
            raise GanError(
                f"{path}: its '{META_KEY}' metadata is not what `gan export` writes ({exc})"
            ) from None
        self.meta = meta
        if self.task != "sample":
            raise GanError(
                f"{path}: a {self.family.name} {meta.get('direction', '')} translator; "
                "`gan sample` draws from sampling models (run it in your own runtime, or "
                "`gan translate` on the export folder)"
            )

    def generate(
        self,
        n: int,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
        truncation: float = 1.0,
    ) -> torch.Tensor:
        """`n` images in [-1, 1], NCHW: the family's `draw`, then the graph."""
        if not math.isfinite(truncation):
            raise GanError(f"--truncation must be a finite number, not {truncation}")
        z, y = self.family.draw(n, self.z_dim, self.classes, generator, labels, truncation)
        feeds = {"z": z, "truncation": torch.tensor(float(truncation))}
        if self.conditional:
            feeds["labels"] = y
        try:
            (images,) = self.session.run(["images"], _feeds(feeds))
        except Exception as exc:  # onnxruntime's own exception types
            reason = exception_line(exc, 300)
            raise GanError(f"{self.path}: onnxruntime cannot run it ({reason})") from None
        return torch.from_numpy(images)
