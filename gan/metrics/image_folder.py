"""A folder of images made elsewhere (a peer's samples, an older model's, the official
StyleGAN2 or BigGAN code's) as the images `gan evaluate --images` scores.

Every file is converted exactly as `gan preprocess` converts the data (gan.data.images:
the same decoding, mode conversion and Lanczos resize-and-crop) to the processed data's
resolution and channels, so the folder meets the test split on its own terms. Unlike
preprocess, which sets a bad file aside, any file that cannot be read stops the
evaluation naming it: a score over a silently smaller set would pass for the whole.
What the folder held (count, source sizes and modes, how many were converted, whether it
had labels) becomes the protocol's ``images`` entry.

Labels: when every image sits in a top-level folder named as one of the data's classes
(``DIR/<class>/*.png``, the class names of manifest.json), each image is a sample asked
for that class; any other layout is unlabelled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gan.data.images import IMAGE_EXTENSIONS, decode_image
from gan.data.preprocess import find_images
from gan.errors import GanError

# Preprocess's smallest side refuses thumbnails of training data; a folder of samples is
# measured at whatever size it was drawn, and its sizes are recorded instead.
ANY_SIZE = 1


@dataclass(frozen=True)
class FolderImages:
    """The folder's images as uint8 [N, C, R, R], their labels (None: unlabelled) and the
    protocol's record of them."""

    images: torch.Tensor
    labels: torch.Tensor | None
    record: dict[str, Any]


def read_image_folder(folder: str | Path, manifest: dict[str, Any]) -> FolderImages:
    """Every image below `folder`, converted to the data of `manifest` (preprocess's)."""
    root = Path(folder)
    if not root.exists():
        raise GanError(f"{root}: evaluate.images folder not found")
    if not root.is_dir():
        raise GanError(f"{root}: evaluate.images must be a folder of images")
    skipped: list[dict[str, str]] = []
    files = find_images(root, skipped, follow_symlinks=True)  # a folder the user named
    if skipped:
        raise GanError(f"{root / skipped[0]['file']}: {skipped[0]['reason']}")
    if not files:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise GanError(f"{root}: no image files found (looked recursively for {exts})")
    classes = [str(c) for c in manifest.get("classes") or []]
    labels = folder_labels(root, files, classes)
    resolution, channels = int(manifest["resolution"]), int(manifest["channels"])
    target_mode = "L" if channels == 1 else "RGB"
    images, sizes, modes, converted = [], Counter(), Counter(), 0
    for rel in tqdm(files, desc="reading", unit="img", disable=None):
        path = root / rel
        decoded = decode_image(path, resolution, channels, ANY_SIZE)
        if not decoded.ok:
            raise GanError(f"{path}: {decoded.reason}")
        (w, h), mode = decoded.size, decoded.mode
        sizes[f"{w}x{h}"] += 1
        modes[mode] += 1
        converted += (w, h) != (resolution, resolution) or mode != target_mode
        images.append(decoded.image)
    record = {
        "folder": str(root),
        "count": len(files),
        "labels": "class folders" if labels is not None else "none",
        "source_sizes": dict(sorted(sizes.items())),
        "source_modes": dict(sorted(modes.items())),
        "resolution": resolution,
        "channels": channels,
        "converted": int(converted),
    }
    return FolderImages(torch.stack(images), labels, record)


def folder_labels(root: Path, files: list[str], classes: list[str]) -> torch.Tensor | None:
    """Class indices of `files` (relative paths) when each sits in a top-level folder named
    as one of `classes`; None when none does. A mix is refused: half the images labelled
    would make conditional figures of a part taken for the whole."""
    tops = [f.split("/", 1)[0] if "/" in f else None for f in files]
    named = [t in classes for t in tops]
    if not any(named):
        return None
    if not all(named):
        odd = next(f for f, ok in zip(files, named, strict=True) if not ok)
        raise GanError(
            f"{root / odd}: not in a class folder, while other images are (classes of the "
            f"data: {', '.join(classes)}); put every image in a class folder, or none"
        )
    return torch.tensor([classes.index(t) for t in tops], dtype=torch.int64)
