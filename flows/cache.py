"""Cache keys for the Prefect tasks whose inputs are files, not just arguments.

Prefect's default policy hashes the arguments only; preprocess must rerun when the raw
images change even though its config did not. A key here hashes what the stage reads:
the input files, the config section and the stage's own source files (as dvc.yaml lists
them), so a changed line of code invalidates the cache too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from gan.io import sha256_file, sha256_tree


def code_hash(*modules: ModuleType) -> str:
    """Hash of the source files of `modules`, in the order given."""
    h = hashlib.sha256()
    for m in modules:
        h.update(sha256_file(Path(m.__file__)).encode())
    return h.hexdigest()


def cache_key(kind: str, section: BaseModel, *parts: str) -> str:
    """The key of one stage call: its kind, its config section and extra content hashes."""
    blob = json.dumps(
        {"kind": kind, "cfg": section.model_dump(mode="json"), "parts": parts}, sort_keys=True
    )
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def preprocess_key(_context: Any, parameters: dict[str, Any]) -> str:
    """Raw folder contents + preprocess params + preprocess code."""
    from gan.data import images, preprocess, shards

    cfg = parameters["cfg"]
    raw = sha256_tree(cfg.input) if Path(cfg.input).is_dir() else "missing"
    return cache_key("preprocess", cfg, raw, code_hash(preprocess, images, shards))


def classifier_key(_context: Any, parameters: dict[str, Any]) -> str:
    """Processed data content hash + classifier params + classifier code."""
    from gan.metrics import classifier

    cfg = parameters["cfg"]
    return cache_key("classifier", cfg, parameters["data_hash"], code_hash(classifier))
