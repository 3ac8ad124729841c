"""stylegan2-ada-pytorch's dataset zip (dataset_tool.py output): image files at any depth
plus an optional dataset.json whose "labels" is null or a list of [file name, class] pairs.

Labels come from dataset.json only, never from folder names: dataset_tool.py shards the
images into folders of 1000 (00000/, 00001/), which are not classes. The train/test split
is preprocess's own (test_fraction), as for a folder.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gan.config import PreprocessConfig
from gan.data.images import UNSUPPORTED_IMAGE_EXTENSIONS, decode_image, is_image_file
from gan.data.sources.base import (
    Budget,
    Item,
    Source,
    check_entry_name,
    class_index,
    fail,
    is_hidden,
)
from gan.errors import GanError
from gan.io import sha256_file
from gan.messages import exception_line

LABELS_FILE = "dataset.json"
# what zipfile raises for a damaged or unreadable archive: NotImplementedError is its answer
# to a compression method it lacks (an entry packed by 7-Zip with PPMd, say)
CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


def read_zip(path: Path, cfg: PreprocessConfig) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except CORRUPT as exc:
        raise fail(
            path, f"not a readable zip archive, truncated or corrupt ({exception_line(exc)})"
        ) from None
    with archive:
        names = _checked_names(path, archive)
        images = sorted(n for n in names if is_image_file(n) and not is_hidden(n))
        labels = _labels(path, archive, names, images)
        classes, index = class_index(labels.values()) if labels else ([], {})
        rejected = [
            {"file": n, "reason": f"unsupported image format {Path(n).suffix.lower()}"}
            for n in sorted(names)
            if Path(n).suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS and not is_hidden(n)
        ]
        items = []
        for name in tqdm(images, desc="preprocess", unit="img", disable=None):
            data = _read(path, archive, name)
            result = decode_image(
                io.BytesIO(data), cfg.resolution, cfg.channels, cfg.min_size, f"{path}:{name}"
            )
            if result.ok:
                label = index[labels[name]] if labels else -1
                items.append(Item(name, label=label, image=result.image))
            else:
                rejected.append({"file": name, "reason": str(result.reason)})
    sha = sha256_file(path)
    return Source(
        format="stylegan2-zip",
        layout="classes" if classes else "flat",
        classes=classes,
        items=items,
        rejected=rejected,
        files={str(path): sha},
        sha256=sha,
    )


def _checked_names(path: Path, archive: zipfile.ZipFile) -> set[str]:
    """The file entries' names, after refusing escaping paths, bombs, encrypted entries
    and names given twice (which of the two would be the image?)."""
    budget = Budget(path)
    names: set[str] = set()
    for info in archive.infolist():
        check_entry_name(path, info.filename)
        budget.declare(info.filename, info.file_size, info.compress_size)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise fail(path, f"entry {info.filename!r} is encrypted: unpack it yourself")
        if info.filename in names:
            raise fail(path, f"entry {info.filename!r} appears twice: refused as ambiguous")
        names.add(info.filename)
    return names


def _read(path: Path, archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)  # bounded by the declared size; a bad CRC raises
    except CORRUPT as exc:
        raise fail(
            path, f"entry {name!r} cannot be read: corrupt archive ({exception_line(exc)})"
        ) from None


def _labels(
    path: Path, archive: zipfile.ZipFile, names: set[str], images: list[str]
) -> dict[str, int] | None:
    """{image: class} from dataset.json, which must name every image and only those."""
    if LABELS_FILE not in names:
        return None
    try:
        meta = json.loads(_read(path, archive, LABELS_FILE).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad(path, f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _bad(path, 'must be a JSON object with a "labels" key')
    pairs = meta.get("labels")
    if pairs is None:
        return None
    if not isinstance(pairs, list):
        raise _bad(path, '"labels" must be null or a list of [file name, class] pairs')
    labels: dict[str, int] = {}
    for k, pair in enumerate(pairs):
        name, label = _pair(path, k, pair)
        if name in labels:
            raise _bad(path, f"labels[{k}]: {name!r} is labelled twice")
        labels[name] = label
    missing = sorted(set(labels) - set(images))
    if missing:
        raise _bad(
            path,
            f"labels name {len(missing)} file(s) that are not images in the zip, "
            f"e.g. {missing[0]!r}",
        )
    unlabelled = [n for n in images if n not in labels]
    if unlabelled:
        raise _bad(
            path,
            f"{len(labels)} labels for {len(images)} images (wrong count): "
            f"no label for {unlabelled[0]!r}",
        )
    return labels


def _pair(path: Path, k: int, pair: Any) -> tuple[str, int]:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
        raise _bad(path, f"labels[{k}]: expected a [file name, class] pair, got {pair!r}")
    label = pair[1]
    if not isinstance(label, int) or isinstance(label, bool):
        raise _bad(
            path,
            f"labels[{k}]: class {label!r} is not a whole number "
            "(vector labels are not supported: ganops conditions on classes)",
        )
    return pair[0].replace("\\", "/"), label


def _bad(path: Path, what: str) -> GanError:
    return fail(path, f"{LABELS_FILE}: {what}")
