"""The registry's files on disk: where the root is, reading the history, all-or-nothing writes.

The history is rewritten whole through gan.io's temp file, fsync and rename, so a full disk or a
kill leaves either the old history or the new one, never half a line. A torn last line
left by an older, appending version is skipped with a warning (the next write drops it);
any other bad line is one error naming the file and the line.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gan.errors import GanError
from gan.io import write_text

DECISIONS = ("promoted", "rejected", "rollback")
HISTORY = "history.jsonl"
CHAMPION = "champion.json"
MODELS = "models"


def locate(root: str | os.PathLike) -> Path:
    """The registry root a path names; relative paths are the repository's when DVC runs us.

    DVC runs a queued or `--temp` experiment in a throwaway copy under .dvc/tmp/exps/ and
    sets DVC_ROOT to the repository that queued it (to the repository itself for workspace
    runs). Resolving against DVC_ROOT makes every experiment append to one registry instead
    of an empty one in its copy that is deleted afterwards.
    """
    path = Path(root).expanduser()
    if not path.is_absolute() and os.environ.get("DVC_ROOT"):
        path = Path(os.environ["DVC_ROOT"]) / path
    if path.exists() and not path.is_dir():
        raise GanError(f"{path}: is a file, not a registry folder")
    if path.is_dir() and not (path / HISTORY).exists():
        _not_another_folder(path)
    return path


def _not_another_folder(path: Path) -> None:
    """Refuse a folder without a history that holds files of its own (a run, the registries'
    parent folder): reading it as an empty registry, or promoting into it, hides the mistake.
    An empty folder, or one with hidden files only, becomes a registry on the first promote."""
    others = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    others = [name for name in others if name not in (CHAMPION, MODELS)]
    if not others:
        return
    inside = sorted(str(p.parent) for p in path.glob(f"*/{HISTORY}"))
    shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
    hint = f"; the registries in it: {', '.join(inside)}" if inside else ""
    raise GanError(f"{path}: not a registry folder (no {HISTORY}; it holds {shown}){hint}")


def _fail(path: Path, lineno: int, what: str) -> GanError:
    return GanError(
        f"{path}:{lineno}: {what}; the history is the registry's source of truth, "
        "so fix or remove that line by hand"
    )


def check_record(obj: Any, path: Path, lineno: int) -> dict[str, Any]:
    """One history line has the shape the registry wrote, or a GanError names it."""
    if not isinstance(obj, dict):
        raise _fail(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(path, lineno, f"'version' must be a whole number >= 1, got {version!r}")
    decision = obj.get("decision")
    if decision not in DECISIONS:
        raise _fail(
            path, lineno, f"'decision' must be one of {', '.join(DECISIONS)}, got {decision!r}"
        )
    if not isinstance(obj.get("time"), str):
        raise _fail(path, lineno, "'time' must be a string")
    if decision == "rollback":
        return obj
    export = obj.get("export")
    if not isinstance(export, dict) or not isinstance(export.get("sha256"), str):
        raise _fail(path, lineno, "'export' must be an object with a 'sha256' string")
    for key in ("metrics", "protocol"):
        if not isinstance(obj.get(key), dict):
            raise _fail(path, lineno, f"'{key}' must be an object")
    model_dir = obj.get("model_dir")
    if decision == "promoted" and not isinstance(model_dir, str):
        raise _fail(path, lineno, "a promoted version needs its 'model_dir'")
    if model_dir is not None and not isinstance(model_dir, str):
        raise _fail(path, lineno, "'model_dir' must be a string or null")
    return obj


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of a history file and their raw lines (rewritten verbatim on append)."""
    if not path.is_file():
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GanError(f"{path}: not UTF-8 text ({exc})") from None
    lines = text.split("\n")
    records, raw = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines):  # the last line and no newline after it: a torn write
                warnings.warn(
                    f"{path}:{i}: skipping a torn last line (an interrupted write); "
                    "the next registry write removes it",
                    stacklevel=3,
                )
                continue
            raise _fail(path, i, f"not valid JSON ({exc})") from None
        records.append(check_record(obj, path, i))
        raw.append(line)
    return records, raw


def write_lines(path: Path, lines: list[str]) -> None:
    """Replace the history all-or-nothing (gan.io: temp file, fsync, rename, fsync of the dir)."""
    write_text(path, "".join(f"{line}\n" for line in lines))


def json_safe(obj: Any) -> Any:
    """Non-finite floats become null, so every history line is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
