"""`gan translate`: run a trained translation model (CycleGAN) over a folder of images.

Every image below the input folder is decoded the way preprocess decodes training data
(resized to the model's resolution and channels), translated in batches, and written as a
PNG under the output folder with the same relative name. A file that cannot be read is
reported and skipped; it never stops the rest.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from gan.data.images import decode_image, is_image_file
from gan.device import pick_device
from gan.errors import GanError
from gan.export import load_export
from gan.grid import to_uint8
from gan.io import write_bytes
from gan.progress import progress
from gan.registry.resolve import resolve_model


def find_inputs(input_dir: Path, output_dir: Path) -> list[Path]:
    """Image files below `input_dir`, sorted; hidden ones and the output folder skipped."""
    out = output_dir.resolve()
    found = []
    for path in sorted(input_dir.rglob("*")):
        rel = path.relative_to(input_dir)
        if any(part.startswith(".") for part in rel.parts) or not is_image_file(path):
            continue
        if path.resolve().is_relative_to(out) or not path.is_file():
            continue
        found.append(path)
    return found


def output_names(files: list[Path], input_dir: Path) -> dict[Path, Path]:
    """Same relative name with a .png suffix; where two inputs would collide (a.jpg and
    a.png), each keeps its own suffix as well (a.jpg.png, a.png.png)."""
    plain = {f: f.relative_to(input_dir).with_suffix(".png") for f in files}
    counts = Counter(plain.values())
    return {
        f: rel if counts[rel] == 1 else f.relative_to(input_dir).with_name(f.name + ".png")
        for f, rel in plain.items()
    }


def png_bytes(image: torch.Tensor) -> bytes:
    """uint8 [C, H, W] with 1 or 3 channels -> PNG file contents."""
    array = image.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(buf, format="PNG")
    return buf.getvalue()


def load_translator(model: str, registry: str | Path = "registry", device: str = "cpu"):
    """The exported model, checked to be a translation family."""
    exported = load_export(resolve_model(model, registry), pick_device(device))
    if exported.family.task != "translate":
        raise GanError(
            f"{model}: a {exported.meta['family']} model samples images and cannot translate; "
            "use `gan sample`"
        )
    return exported


def translate(
    model: str,
    direction: str,
    input_dir: str | Path,
    output_dir: str | Path,
    batch_size: int = 16,
    registry: str | Path = "registry",
    device: str = "cpu",
) -> int:
    """Translate every image in `input_dir` into `output_dir`; returns the number written.

    `model` is "champion", a registry version ("v3") or an export directory.
    """
    if batch_size <= 0:
        raise GanError(f"batch size must be greater than 0, not {batch_size}")
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise GanError(f"{input_dir}: input folder not found")
    if direction not in ("AtoB", "BtoA"):
        raise GanError(f"--direction must be AtoB or BtoA, not {direction!r}")
    exported = load_translator(model, registry, device)
    files = find_inputs(input_dir, output_dir)
    if not files:
        raise GanError(f"{input_dir}: no image files found")
    names = output_names(files, input_dir)
    res, channels = exported.data.resolution, exported.data.channels
    module = exported.generator
    dev = next(module.parameters()).device
    written = 0
    bar = progress(len(files), f"translate {direction}", unit="img")
    for start in range(0, len(files), batch_size):
        chunk, images = [], []
        for path in files[start : start + batch_size]:
            decoded = decode_image(path, res, channels, min_size=1)
            if decoded.ok:
                chunk.append(path)
                images.append(decoded.image)
            else:
                tqdm.write(f"[translate] skipped {path}: {decoded.reason}")
        if images:
            x = torch.stack(images).to(dev).float().div_(127.5).sub_(1.0)
            with torch.inference_mode():
                y = to_uint8(exported.family.translate(module, x, direction))
            for path, image in zip(chunk, y, strict=True):
                write_bytes(output_dir / names[path], png_bytes(image))
                written += 1
        bar.update(len(files[start : start + batch_size]))
    bar.close()
    return written
