"""How the flows cache the preprocess and classifier stages (gan/stages.py, FlowCache): the
content of a stage's inputs, and whether its outputs still hold a cached result."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan.errors import GanError
from gan.io import read_json, sha256_file, sha256_tree

if TYPE_CHECKING:
    from gan.config import Params


def tree_content(path: str) -> str:
    """Every file below `path` (raw images are not described anywhere else), or every file
    a dataset file's reader opens (an IDX file's labels beside it too)."""
    if Path(path).is_dir():
        return sha256_tree(path)
    if not Path(path).is_file():
        return "missing"
    from gan.data.sources import input_files

    return "\n".join(f"{p.name}\0{sha256_file(p)}" for p in input_files(Path(path)))


def processed_content(path: str) -> str:
    """The content hash preprocess recorded for a processed dataset (no rehashing)."""
    from gan.data.shards import MANIFEST

    try:
        return str(read_json(Path(path) / MANIFEST).get("content_hash"))
    except GanError:
        return "missing"


def preprocessed(params: Params, manifest: dict[str, Any]) -> bool:
    """Whether preprocess.output still holds the data `manifest` describes."""
    return processed_content(params.preprocess.output) == manifest["content_hash"]


def classified(params: Params, _result: Any) -> bool:
    """Whether classifier.output still holds a classifier of today's data, intact."""
    from gan.metrics.classifier import CONFIG, WEIGHTS

    cfg = params.classifier
    out = Path(cfg.output)
    try:
        meta = read_json(out / CONFIG)
    except GanError:
        return False
    weights = out / WEIGHTS
    return (
        meta.get("data_content_hash") == processed_content(cfg.data)
        and weights.is_file()
        and sha256_file(weights) == meta.get("weights_sha256")
    )
