"""Which export dir a model argument names: the one rule `gan sample` and `gan translate` share.

Registry models resolve to the registry's own copy, so they work after the run dir that
trained them is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

from gan.errors import GanError
from gan.registry.store import Registry


def resolve_model(model: str, registry: str | Path = "registry") -> Path:
    """Map "champion" or "v3" to the registry's export dir; anything else is an export dir path."""
    if model == "champion" or re.fullmatch(r"v\d+", model):
        return Registry(registry).model_dir(model)
    path = Path(model)
    if not path.is_dir():
        raise GanError(f"{model}: not 'champion', a registry version like v3, or an export dir")
    return path
