"""Decode one image file into the tensor the pipeline trains on, or say why it cannot.

Real image folders hold 16-bit scans, palette GIF-likes saved as PNG, transparent logos,
phone photos whose pixels are stored sideways, thumbnails and broken downloads. Each file
either becomes a uint8 [C, R, R] tensor (channels 1 or 3, short side resized to R with an
antialiased Lanczos filter, then centre-cropped) or is rejected with a reason a person can
act on; a bad file never stops the whole stage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})

# Image formats preprocess does not read: files of these types are listed as rejected,
# so a user sees why their GIFs are missing; other files (notes, labels) are not data.
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset(
    {".gif", ".tif", ".tiff", ".heic", ".heif", ".avif", ".svg", ".ico", ".jp2", ".jxl",
     ".psd", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".exr", ".hdr", ".dng", ".cr2", ".nef"}
)  # fmt: skip

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


@dataclass(frozen=True)
class Decoded:
    """Either `image` (uint8 [C, R, R]) or `reason` (why the file was rejected) is set;
    `size` and `mode` are what the file stores (read from its header, before conversion)."""

    image: torch.Tensor | None = None
    reason: str | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None


def is_image_file(path: str | Path) -> bool:
    """True for the extensions preprocess reads (case-insensitive); other files are ignored."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def skip_reason(path: Path, inside: Path | None = None) -> str | None:
    """Why a path found in an image folder is not read as an image, or None when it is (a
    regular file, or a link to one, with a supported extension) or is not an image at all.
    With `inside` (a resolved folder), a link to a file outside it is not read either: a
    dataset should not reach /etc/passwd or another dataset by accident."""
    suffix = path.suffix.lower()
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return "broken symbolic link (its target is missing, or it links in a loop)"
        if target.is_dir():
            return "symbolic link to a folder: not followed (copy or link the files instead)"
        if inside is not None and suffix in IMAGE_EXTENSIONS and not target.is_relative_to(inside):
            return (
                f"symbolic link to {target}, outside {inside}: not read "
                "(preprocess.follow_symlinks: true reads such links)"
            )
    if suffix in IMAGE_EXTENSIONS:
        if path.is_dir():
            return "a folder named like an image file, not an image"
        if not path.is_file():
            return "not a regular file"
        return None
    if suffix in UNSUPPORTED_IMAGE_EXTENSIONS and not path.is_dir():
        supported = ", ".join(sorted(IMAGE_EXTENSIONS))
        return f"unsupported image format {suffix} (convert it to one of {supported})"
    return None


def decode_image(
    path: str | Path | BinaryIO,
    resolution: int,
    channels: int,
    min_size: int,
    name: str | None = None,
) -> Decoded:
    """Read, normalise and resize one image file (or the bytes of an archive's entry, then
    `name` says which); never raises for a bad file. Pillow's warnings (a possible
    decompression bomb, odd palettes) are warned again naming the file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = _decode(path, resolution, channels, min_size)
    for w in caught:
        warnings.warn(f"{name or path}: {w.message}", w.category, stacklevel=2)
    return decoded


def decode_array(array: np.ndarray, resolution: int, channels: int, min_size: int) -> Decoded:
    """A uint8 [H, W] or [H, W, 3] array from an archive (CIFAR, IDX) converted and resized
    exactly as a decoded file is, so the format a dataset came in leaves no trace."""
    h, w = array.shape[:2]
    if min(w, h) < min_size:
        return Decoded(reason=f"too small: {w}x{h}, both sides must be at least {min_size}")
    img = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    mode = img.mode
    return Decoded(image=_tensor(img, resolution, channels), size=(w, h), mode=mode)


def _decode(path: str | Path | BinaryIO, resolution: int, channels: int, min_size: int) -> Decoded:
    try:
        with Image.open(path) as img:
            (w, h), stored_mode = img.size, img.mode
            if min(w, h) < min_size:
                return Decoded(reason=f"too small: {w}x{h}, both sides must be at least {min_size}")
            # JPEG only: decode at a reduced scale that still leaves 2x headroom for Lanczos.
            img.draft(None, (2 * resolution, 2 * resolution))
            img.load()
            img = _upright(img)
    except UnidentifiedImageError:
        return Decoded(reason="not an image Pillow can read")
    except Image.DecompressionBombError as exc:
        return Decoded(reason=f"too many pixels ({exc})")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return Decoded(reason=f"corrupt or truncated ({type(exc).__name__}: {exc})")
    return Decoded(image=_tensor(img, resolution, channels), size=(w, h), mode=stored_mode)


def _tensor(img: Image.Image, resolution: int, channels: int) -> torch.Tensor:
    """Any Pillow image as uint8 [C, R, R]: converted, resized and centre-cropped."""
    img = _to_mode(img, "L" if channels == 1 else "RGB")
    img = _resize_crop(img, resolution)
    array = np.asarray(img, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed tag leaves the pixels as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF blocks raise assorted errors; the pixels are still fine
        return img.copy()


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to 8-bit "L" or "RGB": scale deep images, flatten alpha on white."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = _deep_to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == mode else img.convert(mode)


def _deep_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grey to 8 bits by scaling 0..65535 to 0..255.

    Pillow's own convert("L") clips at 255 instead, which turns most 16-bit images white.
    Float images are taken as 0..1 when they fit in it, else as 0..255.
    """
    a = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        scale = 255.0 if a.size and float(a.max()) <= 1.0 else 1.0
        a = a * scale
    else:
        a = np.clip(a, 0, 65535) * (255.0 / 65535.0)
    return Image.fromarray(np.rint(np.clip(a, 0, 255)).astype(np.uint8))


def _resize_crop(img: Image.Image, resolution: int) -> Image.Image:
    """Resize the short side to `resolution` and keep the centre square, in one resampling.

    Passing the centred square as the source box lets Lanczos see the exact crop, with no
    rounding of an intermediate size.
    """
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    box = (left, top, left + side, top + side)
    if img.size == (resolution, resolution):
        return img
    return img.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)
