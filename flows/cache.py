"""Cache keys for the Prefect tasks of the stages whose inputs are files, not just params.

Prefect's default policy hashes the arguments only; preprocess must rerun when the raw
images change even though its params did not. A stage's key hashes what the stage reads,
as the stage table (gan/stages.py) declares it: its params sections, the content of its
inputs (`FlowCache.content`) and its code (the files and folders of `Stage.code`, its DVC
code deps), so a changed line of code invalidates the cache too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from gan.io import sha256_file, sha256_tree
from gan.stages import Stage, code_paths


def code_hash(stage: Stage) -> str:
    """Hash of the stage's source files (folders: their .py files), in the table's order."""
    h = hashlib.sha256()
    for path in code_paths(stage):
        digest = sha256_tree(path, "*.py") if path.is_dir() else sha256_file(path)
        h.update(digest.encode())
    return h.hexdigest()


def cache_key(kind: str, sections: list[BaseModel], *parts: str) -> str:
    """The key of one stage call: its kind, its params sections and content hashes."""
    cfg = [s.model_dump(mode="json") for s in sections]
    blob = json.dumps({"kind": kind, "cfg": cfg, "parts": parts}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def stage_key(stage: Stage) -> Callable[[Any, dict[str, Any]], str]:
    """The cache_key_fn of a cached stage's task (its one parameter: `params`)."""
    if stage.flow_cache is None:
        raise ValueError(f"stage {stage.name} is not cached")
    content = stage.flow_cache.content

    def key(_context: Any, parameters: dict[str, Any]) -> str:
        params = parameters["params"]
        inputs = [content(io.resolve(params)) for io in stage.inputs]
        sections = [getattr(params, s) for s in stage.sections]
        return cache_key(stage.name, sections, *inputs, code_hash(stage))

    return key
