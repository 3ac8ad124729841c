"""Sample grids: the picture a person looks at to judge a generator."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from PIL import Image

from gan.errors import GanError
from gan.io import write_bytes

_QUALITY = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}  # a grid to look at, not to archive


def image_format(path: str | Path) -> str:
    """The Pillow format the file name's suffix names (PNG without a suffix), so that
    `--out grid.jpg` holds a JPEG; a suffix Pillow cannot write is refused."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "PNG"
    Image.init()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise GanError(
            f"{path}: Pillow cannot write {suffix} images; name the file .png, .jpg or .webp"
        )
    return fmt


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (or uint8 already) NCHW -> uint8 NCHW on the CPU."""
    if images.dtype == torch.uint8:
        return images.cpu()
    x = (images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8)


def require_finite(images: torch.Tensor, source: object, outcome: str) -> torch.Tensor:
    """`images`, refusing NaN or inf: they would become black pixels in a grid or a score,
    looking like a model's output. `outcome` says what was not done."""
    if images.dtype != torch.uint8 and not bool(torch.isfinite(images).all()):
        raise GanError(f"{source}: outputs NaN or inf (diverged or damaged weights); {outcome}")
    return images


def tile(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: int = 255) -> torch.Tensor:
    """NCHW images as one CHW picture of `nrow` columns with `padding` between them, as
    torchvision's make_grid lays it out (grey images become RGB; one image is returned
    unpadded), without importing torchvision (seconds of `gan train`'s start-up)."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, c, h, w = images.shape
    if n == 1:
        return images[0].clone()
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cell_h, cell_w = h + padding, w + padding
    grid = images.new_full((c, rows * cell_h + padding, cols * cell_w + padding), pad_value)
    for i, image in enumerate(images):
        y, x = divmod(i, cols)
        top, left = y * cell_h + padding, x * cell_w + padding
        grid[:, top : top + h, left : left + w] = image
    return grid


def save_grid(
    images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1
) -> Path:
    """Write images as one grid, atomically, in the format `path`'s suffix names (PNG by
    default); `scale` enlarges small images for viewing."""
    fmt = image_format(path)
    x = to_uint8(images)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(x)))))
    grid = tile(x, nrow)
    array = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt, **_QUALITY.get(fmt, {}))
    except (OSError, ValueError, KeyError) as exc:  # e.g. XBM holds 1-bit images only
        raise GanError(f"{path}: cannot write the grid as {fmt} ({exc})") from None
    write_bytes(path, buf.getvalue())
    return Path(path)


def save_gif(frames: torch.Tensor, path: str | Path, scale: int = 1, ms: int = 80) -> Path:
    """Write frames (NCHW) as an endlessly looping animated GIF, atomically."""
    x = to_uint8(frames)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    arrays = x.permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a) for a in arrays]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=ms, loop=0)
    write_bytes(path, buf.getvalue())
    return Path(path)
