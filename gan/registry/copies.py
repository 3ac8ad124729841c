"""The registry's own copies of promoted exports, models/v<N>/ (gan/registry/store.py): a
champion outlives the run folder it came from, and a copy is whole or absent."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from gan.errors import GanError
from gan.export import CONFIG, WEIGHTS
from gan.folders import replaced_dir
from gan.io import FILE_MODE, clean_stale_temps, pid_alive, sha256_file, write_json
from gan.registry.files import MODELS, json_safe

if TYPE_CHECKING:
    from gan.registry.store import Candidate

_LEGACY_COPY = re.compile(r"\.v\d+\.tmp-(\d+)")


def keep_copy(
    root: Path, version: int, cand: Candidate, weights_sha: str, onnx: bool = False
) -> tuple[str, dict[str, str]]:
    """Copy the export into models/v<N>/ through a temp folder swapped into place (a
    v<N> left by a crash before its history line was written is replaced); with
    `onnx`, write its ONNX files there too. Returns the folder and the ONNX files'
    sha256 by name."""
    onnx_files: dict[str, str] = {}
    rel = f"{MODELS}/v{version}"
    with replaced_dir(root / rel) as tmp:
        for name in (WEIGHTS, CONFIG):
            shutil.copyfile(Path(cand.export_dir) / name, tmp / name)
        if sha256_file(tmp / WEIGHTS) != weights_sha:
            raise GanError(f"{cand.export_dir / WEIGHTS}: changed while being registered")
        if onnx:
            from gan.onnx_export import export_onnx

            onnx_files = {f.name: sha256_file(f) for f in export_onnx(tmp)}
        write_json(tmp / "metrics.json", json_safe(cand.metrics))
        write_json(tmp / "protocol.json", json_safe(cand.protocol))
        for f in tmp.iterdir():
            os.chmod(f, FILE_MODE)
    return rel, onnx_files


def sweep_copies(models_dir: Path) -> None:
    """Remove the temp copies of killed promotes, those whose process is gone (called
    under the registry's lock, so no live promote is copying anyway)."""
    clean_stale_temps(models_dir, force=True)
    for p in models_dir.glob(".v*.tmp-*"):  # older ganops named them .v<N>.tmp-<pid>
        legacy = _LEGACY_COPY.fullmatch(p.name)
        if legacy and not pid_alive(int(legacy[1])):
            shutil.rmtree(p, ignore_errors=True)
