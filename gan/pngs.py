"""Folders of individual PNGs, the input other FID tools read.

torch-fidelity's CLI (`fidelity --gpu -1 --fid --input1 A --input2 B`), clean-fid and
pytorch-fid each take two folders of images. `gan sample --out-dir` writes a generator's
images and `gan export-images` a split of the processed data, at the same resolution and
channels, so an independent computation sees what `gan evaluate` measured.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.errors import GanError
from gan.folders import temp_dir_beside
from gan.grid import to_uint8
from gan.io import DIR_MODE, FILE_MODE, disk_errors_name, real_path


def _empty_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise GanError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise GanError(
            f"{out_dir}: folder is not empty; give a new or empty one (images of two "
            "calls mixed in one folder would be measured together)"
        )


def write_pngs(batches: Iterable[torch.Tensor], out_dir: str | os.PathLike) -> int:
    """Write every image of `batches` (NCHW, [-1, 1] float or uint8) as 000000.png, ...

    The folder appears complete or not at all: the PNGs go to a hidden temp folder that
    is renamed into place (an empty `out_dir` is replaced).
    """
    out_dir = real_path(Path(out_dir))  # a symlinked folder: fill its real folder, keep the link
    _empty_target(out_dir)
    with disk_errors_name(out_dir):  # a full disk names the folder, not "a file"
        tmp = temp_dir_beside(out_dir)  # named for this process: swept once a killed one is gone
        count = 0
        try:
            for batch in batches:
                arrays = to_uint8(batch).permute(0, 2, 3, 1).numpy()
                for a in arrays:
                    img = Image.fromarray(
                        np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)
                    )
                    path = tmp / f"{count:06d}.png"
                    img.save(path, format="PNG")
                    os.chmod(path, FILE_MODE)
                    count += 1
            if count == 0:
                raise GanError(f"{out_dir}: no images to write")
            os.chmod(tmp, DIR_MODE)
            if out_dir.is_dir():
                out_dir.rmdir()  # empty, checked above
            os.replace(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return count


def export_split(data_dir: str | os.PathLike, split: str, out_dir: str | os.PathLike) -> int:
    """A split of a processed dataset as PNGs; unpaired data gets one folder per domain."""
    from gan.data.shards import load_split

    data = load_split(data_dir, split)
    domains = data.manifest.get("domains") or []
    if not domains:
        return write_pngs([data.images], out_dir)
    total = 0
    _empty_target(Path(out_dir))
    for d, name in enumerate(domains):
        total += write_pngs([data.domain(d).images], Path(out_dir) / str(name))
    return total
