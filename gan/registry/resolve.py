"""Which export dir a model argument names: the one rule `gan sample` and `gan translate` share.

Registry models resolve to the registry's own copy, so they work after the run dir that
trained them is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

from gan.errors import GanError
from gan.export import WEIGHTS
from gan.registry.store import Registry

RUN_EXPORT = "export"  # a run dir's exported generator (gan/training/loop.py)


def names_registry(model: str) -> bool:
    """Whether a model argument names a registry version ("champion", "v3"), not a path."""
    return model == "champion" or re.fullmatch(r"v\d+", model) is not None


def resolve_model(model: str, registry: str | Path = "registry") -> Path:
    """Map "champion" or "v3" to the registry's export dir, a run dir to its export/;
    anything else is an export dir path."""
    if names_registry(model):
        return Registry(registry).model_dir(model)
    path = Path(model)
    if not path.is_dir():
        raise GanError(
            f"{model}: not 'champion', a registry version like v3, a run dir or an export dir"
        )
    if not (path / WEIGHTS).exists() and (path / RUN_EXPORT / WEIGHTS).is_file():
        return path / RUN_EXPORT
    return path
