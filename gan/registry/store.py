"""The model registry: an append-only history of candidates and a pointer to the champion.

Layout under the registry root:

- ``history.jsonl``: one JSON object per line, only ever appended to (by rewriting it
  whole through a temp file and a rename, so a write is all-or-nothing). Every candidate
  gets a line with its provenance, metrics, protocol, decision and reason; every rollback
  gets a line too. The history is the source of truth: the champion is its replay. An
  export (by the sha256 of its weights) is registered once; registering it again is a no-op.
- ``champion.json``: the current champion's version and model dir, replaced atomically
  after every change, for tools that only want the pointer.
- ``models/v<N>/``: a copy of each promoted export (generator.safetensors + .json) with
  its metrics.json and protocol.json (gan/registry/copies.py), so a champion outlives the
  run dir it came from; with ``promote.onnx`` also the generator as ONNX
  (gan/onnx_export.py), whose files' sha256 the record's ``export.onnx`` holds.

The decision rule (:func:`decide`) is a pure function; metrics measured under different
protocols are never compared (docs/architecture.md, 'The model registry'). The registry is
not a DVC output: it outlives experiments, and a relative root is resolved by
:func:`files.locate`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gan.errors import GanError
from gan.export import CONFIG, WEIGHTS
from gan.io import make_dirs, sha256_file, write_json
from gan.registry import files
from gan.registry.copies import keep_copy, sweep_copies
from gan.registry.decision import PROMOTED, Rule, decide, metric_value, protocol_differences

HISTORY, CHAMPION, MODELS = files.HISTORY, files.CHAMPION, files.MODELS
LOCK = ".lock"
ROLLBACK = "rollback"

# Evaluates a model dir under the current evaluation protocol: (metrics, protocol).
Remeasure = Callable[[Path], tuple[dict[str, Any], dict[str, Any]]]


# -- the store ---------------------------------------------------------------------------
@dataclass
class Candidate:
    """A trained generator with its evaluation, as promote() gathers it from a run."""

    run_id: str
    export_dir: Path
    metrics: dict[str, Any]
    protocol: dict[str, Any]
    checkpoint: Path | None = None
    data_hash: str | None = None
    params: dict[str, Any] | None = None


def parse_version(version: int | str) -> int:
    """3, "3" and "v3" all mean version 3."""
    s = str(version).strip()
    match = re.fullmatch(r"v?(\d+)", s)
    if not match:
        raise GanError(f"{version!r} is not a registry version (expected e.g. v3)")
    return int(match.group(1))


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """A registry root directory; every write happens under an exclusive file lock."""

    def __init__(self, root: str | os.PathLike = "registry") -> None:
        self.root = files.locate(root)
        self.history_path = self.root / HISTORY
        self.champion_path = self.root / CHAMPION
        self.models_dir = self.root / MODELS

    # -- reading ---------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """Every record, checked for shape (a bad line is an error naming file and line)."""
        return files.read_lines(self.history_path)[0]

    def find_export(self, weights_sha256: str) -> dict[str, Any] | None:
        """The candidate record that registered these weights, if any."""
        for r in self.candidates():
            if r["export"]["sha256"] == weights_sha256:
                return r
        return None

    def candidates(self) -> list[dict[str, Any]]:
        return [r for r in self.history() if r.get("decision") != ROLLBACK]

    def show(self, version: int | str) -> dict[str, Any]:
        """The candidate record of `version`, with whether it is the champion now."""
        v = parse_version(version)
        for r in self.candidates():
            if r["version"] == v:
                return {**r, "champion": self.champion_version() == v}
        raise GanError(f"{self.root}: no version v{v} in the registry")

    def _last_change(self) -> dict[str, Any] | None:
        changes = [r for r in self.history() if r.get("decision") in (PROMOTED, ROLLBACK)]
        return changes[-1] if changes else None

    def champion_version(self) -> int | None:
        """Replay the history: the last promotion or rollback target is the champion."""
        last = self._last_change()
        return None if last is None else last["version"]

    def champion(self) -> dict[str, Any] | None:
        v = self.champion_version()
        return None if v is None else self.show(v)

    def model_dir(self, which: int | str = "champion") -> Path:
        """The export dir of "champion" or a version, checked against its recorded hash.

        Promoted versions come from the registry's own copy; a rejected version only from
        its run's export, while that still exists unchanged.
        """
        if which == "champion":
            record = self.champion()
            if record is None:
                raise GanError(f"{self.root}: the registry has no champion yet; run `gan promote`")
        else:
            record = self.show(which)
        v = record["version"]
        if record.get("model_dir"):
            path = self.root / record["model_dir"]
        else:
            path = Path(record["export"]["path"])
            if not (path / WEIGHTS).is_file():
                raise GanError(
                    f"v{v} was {record['decision']}, so the registry kept no copy, "
                    f"and its export {path} is gone"
                )
        weights = path / WEIGHTS
        if not weights.is_file():
            raise GanError(f"{weights}: exported generator file not found")
        if sha256_file(weights) != record["export"]["sha256"]:
            raise GanError(f"{weights}: does not match the sha256 recorded for v{v}")
        return path

    def table(self) -> pd.DataFrame:
        """Every history line as a row; `champion` marks the current champion's candidate row."""
        cols = ["version", "time", "decision", "metric", "value", "run_id", "champion", "reason"]
        champ = self.champion_version()
        rows = [
            {
                **{c: r.get(c) for c in cols},
                "metric": r.get("primary_metric"),
                "champion": r.get("decision") == PROMOTED and r["version"] == champ,
            }
            for r in self.history()
        ]
        return pd.DataFrame(rows, columns=cols)

    # -- writing ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_dirs(self.root)
        with open(self.root / LOCK, "a") as f:  # the lock outlives every writer: never deleted
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _append(self, record: dict[str, Any]) -> None:
        """The old lines verbatim plus this one, replacing the file all-or-nothing."""
        line = json.dumps(files.json_safe(record), sort_keys=True, allow_nan=False)
        _, lines = files.read_lines(self.history_path)
        files.write_lines(self.history_path, [*lines, line])

    def _write_pointer(self) -> None:
        """Mirror the replayed champion into champion.json (also repairs a stale pointer)."""
        last = self._last_change()
        if last is None:
            return
        record = self.show(last["version"])
        keys = ("version", "run_id", "model_dir", "primary_metric", "value")
        pointer = {k: record.get(k) for k in keys}
        write_json(self.champion_path, {**pointer, "since": last["time"], "via": last["decision"]})

    def register(
        self,
        cand: Candidate,
        rule: Rule,
        remeasure: Remeasure | None = None,
        onnx: bool = False,
    ) -> dict[str, Any]:
        """Decide on a candidate, keep a copy if promoted (`onnx`: with the ONNX export),
        append its record; returns it.

        When the champion was measured under another protocol (new data, a retrained
        classifier), `remeasure(model_dir)` evaluates the champion's model again under the
        candidate's protocol, so a retrain on changed data can still win fairly.
        """
        weights = Path(cand.export_dir) / WEIGHTS
        config = Path(cand.export_dir) / CONFIG
        for f in (weights, config):
            if not f.is_file():
                raise GanError(f"{f}: exported generator file not found")
        ckpt = None
        if cand.checkpoint is not None:
            ckpt = {"path": str(cand.checkpoint), "sha256": sha256_file(cand.checkpoint)}
        weights_sha = sha256_file(weights)
        with self._locked():
            sweep_copies(self.models_dir)
            seen = self.find_export(weights_sha)
            if seen is not None:  # a rerun (dvc repro, a retried flow) of the same export
                return {**files.json_safe(seen), "duplicate": True}
            versions = [r["version"] for r in self.candidates()]
            version = max(versions, default=0) + 1
            before = self.champion()
            judged, remeasured = before, None
            differs = before and protocol_differences(
                cand.protocol, before["protocol"], rule.metric
            )
            if differs and remeasure:
                metrics, protocol = remeasure(self.model_dir(before["version"]))
                if not protocol_differences(cand.protocol, protocol, rule.metric):
                    judged = {**before, "metrics": metrics, "protocol": protocol}
                    remeasured = {
                        "version": before["version"],
                        "metrics": metrics,
                        "protocol": protocol,
                    }
            verdict = decide(cand.metrics, cand.protocol, judged, rule)
            reason = verdict.reason
            if remeasured:
                reason += f"; champion v{before['version']} was re-measured under this candidate's protocol"
            export = {
                "path": str(Path(cand.export_dir).absolute()),
                "sha256": weights_sha,
                "config_sha256": sha256_file(config),
            }
            record = {
                "version": version,
                "time": _now(),
                "decision": verdict.decision,
                "reason": reason,
                "run_id": cand.run_id,
                "git_revision": git_revision(),
                "data_hash": cand.data_hash,
                "params": cand.params,
                "primary_metric": rule.metric,
                "mode": rule.mode,
                "margin": rule.margin,
                "value": metric_value(cand.metrics, rule.metric),
                "metrics": cand.metrics,
                "protocol": cand.protocol,
                "checkpoint": ckpt,
                "export": export,
                "model_dir": None,
                "champion_before": before["version"] if before else None,
                "champion_remeasured": remeasured,
            }
            if verdict.promoted:
                record["model_dir"], onnx_files = keep_copy(
                    self.root, version, cand, weights_sha, onnx
                )
                if onnx_files:
                    export["onnx"] = onnx_files
            try:
                self._append(record)
            except BaseException:  # no history line: the copy must not outlive the failure
                if record["model_dir"]:
                    shutil.rmtree(self.root / record["model_dir"], ignore_errors=True)
                raise
            self._write_pointer()
        return {**files.json_safe(record), "duplicate": False}

    def rollback(self, to: int | str = "previous", *, reason: str) -> dict[str, Any]:
        """Point the champion at another promoted version; "previous" is the latest promoted
        version older than the current champion. Appends a rollback record with `reason`."""
        if not reason or not reason.strip():
            raise GanError("a rollback needs a reason (it is kept in the history)")
        with self._locked():
            current = self.champion_version()
            promoted = [r["version"] for r in self.candidates() if r["decision"] == PROMOTED]
            if to == "previous":
                older = [v for v in promoted if current is not None and v < current]
                if not older:
                    raise GanError(
                        f"{self.root}: no promoted version before the champion "
                        f"({'none' if current is None else f'v{current}'}) to roll back to"
                    )
                target = max(older)
            else:
                target = parse_version(to)
                if target not in promoted:
                    raise GanError(
                        f"v{target} was never promoted; roll back only to one of "
                        f"{', '.join(f'v{v}' for v in promoted) or 'none'}"
                    )
                if target == current:
                    raise GanError(f"v{target} is already the champion")
            self.model_dir(target)  # its copy must exist and be intact before we point at it
            record = self.show(target)
            entry = {
                "version": target,
                "time": _now(),
                "decision": ROLLBACK,
                "reason": reason.strip(),
                "from_version": current,
                "run_id": record.get("run_id"),
                "git_revision": git_revision(),
                "primary_metric": record.get("primary_metric"),
                "value": record.get("value"),
            }
            self._append(entry)
            self._write_pointer()
        return entry


# -- functions behind `gan registry list|show|rollback` -----------------------------------
def list_versions(registry: str | os.PathLike = "registry") -> pd.DataFrame:
    return Registry(registry).table()


def show(
    registry: str | os.PathLike = "registry", version: int | str = "champion"
) -> dict[str, Any]:
    """A version's record; "champion" is the current champion's."""
    reg = Registry(registry)
    if version == "champion":
        record = reg.champion()
        if record is None:
            raise GanError(f"{reg.root}: the registry has no champion yet; run `gan promote`")
        return record
    return reg.show(version)


def champion(registry: str | os.PathLike = "registry") -> dict[str, Any] | None:
    return Registry(registry).champion()


def rollback(
    registry: str | os.PathLike = "registry", to: int | str | None = None, *, reason: str
) -> dict[str, Any]:
    """Roll back to version `to`, or (None / "previous") to the last one before the champion."""
    return Registry(registry).rollback("previous" if to is None else to, reason=reason)
