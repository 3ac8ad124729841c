"""The decision rule and the file-based registry, on plain files (no model is loaded)."""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path

import pytest

from gan.errors import GanError
from gan.export import CONFIG, WEIGHTS
from gan.io import sha256_file
from gan.registry import (
    ROLLBACK,
    Candidate,
    Registry,
    list_versions,
    parse_version,
    rollback,
    show,
)
from gan.registry.decision import PROMOTED, REJECTED, Rule, decide

PROTOCOL = {
    "extractor": "classifier",
    "extractor_sha256": "ab" * 32,
    "num_samples": 1000,
    "reference": {"split": "test", "content_hash": "cd" * 32},
    "seed": 0,
    "kid_subset_size": 100,
    "metrics": ["fid", "kid"],
    "torch": "2.14.1",
    "torch_fidelity": "0.4.0",
}


def champ(value, version=3, protocol=PROTOCOL, metric="fid"):
    return {"version": version, "metrics": {metric: value}, "protocol": protocol}


# -- decision rule -----------------------------------------------------------------------
def test_first_valid_candidate_becomes_champion():
    d = decide({"fid": 50.0}, PROTOCOL, None, Rule("fid", "min", 0.5))
    assert d.promoted and d.decision == PROMOTED
    assert "first" in d.reason and "50" in d.reason


@pytest.mark.parametrize(
    ("cand", "promoted"),
    [
        (38.3, True),  # beats 38.9 by 0.6 > 0.5
        (38.4, False),  # exactly the margin is not enough
        (38.5, False),  # better, but within the margin
        (38.9, False),  # a tie
        (41.2, False),  # worse
    ],
)
def test_min_mode_needs_to_beat_by_more_than_margin(cand, promoted):
    d = decide({"fid": cand}, PROTOCOL, champ(38.9), Rule("fid", "min", 0.5))
    assert d.promoted is promoted
    assert d.decision == (PROMOTED if promoted else REJECTED)


def test_reason_is_human_readable():
    d = decide({"fid": 41.2}, PROTOCOL, champ(38.9), Rule("fid", "min", 0.5))
    assert d.reason.startswith("fid 41.2 does not beat champion v3's 38.9 by margin 0.5")
    d = decide({"fid": 30.0}, PROTOCOL, champ(38.9), Rule("fid", "min", 0.5))
    assert d.reason.startswith("fid 30 beats champion v3's 38.9 by margin 0.5")


@pytest.mark.parametrize(("cand", "promoted"), [(9.3, True), (9.2, False), (8.0, False)])
def test_max_mode(cand, promoted):
    d = decide({"is": cand}, PROTOCOL, champ(9.0, metric="is"), Rule("is", "max", 0.2))
    assert d.promoted is promoted
    assert ("higher is better") in d.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "12.0", True])
@pytest.mark.parametrize("has_champion", [False, True])
def test_invalid_primary_metric_never_promotes(bad, has_champion):
    current = champ(1000.0) if has_champion else None
    d = decide({"fid": bad, "kid": 0.01}, PROTOCOL, current, Rule("fid", "min", 0.0))
    assert not d.promoted
    assert "never promoted" in d.reason


def test_missing_primary_metric_never_promotes():
    d = decide({"kid": 0.01}, PROTOCOL, None, Rule("fid", "min", 0.0))
    assert not d.promoted and "fid is missing" in d.reason


def test_different_protocol_never_promotes_and_names_the_key():
    other = {**PROTOCOL, "num_samples": 500}
    d = decide({"fid": 1.0}, other, champ(38.9), Rule("fid", "min", 0.0))
    assert not d.promoted
    assert "protocol differs" in d.reason and "num_samples: 500 vs 1000" in d.reason
    missing_key = {k: v for k, v in PROTOCOL.items() if k != "extractor_sha256"}
    assert not decide({"fid": 1.0}, missing_key, champ(38.9), Rule()).promoted


def test_library_versions_do_not_break_comparability():
    newer = {**PROTOCOL, "torch": "2.15.0", "torch_fidelity": "0.5.0"}
    assert decide({"fid": 1.0}, newer, champ(38.9), Rule()).promoted


def test_champion_without_the_metric_is_not_replaced():
    d = decide({"kid": 0.001}, PROTOCOL, champ(38.9), Rule("kid", "min", 0.0))
    assert not d.promoted and "champion v3 has no valid kid" in d.reason


def test_parse_version():
    assert parse_version("v12") == parse_version("12") == parse_version(12) == 12
    with pytest.raises(GanError, match="not a registry version"):
        parse_version("latest")


# -- the store ---------------------------------------------------------------------------
def make_export(root: Path, content: bytes) -> Path:
    d = root / "export"
    d.mkdir(parents=True, exist_ok=True)
    (d / WEIGHTS).write_bytes(content)
    (d / CONFIG).write_text(json.dumps({"family": "test"}))
    return d


def candidate(tmp_path: Path, name: str, fid, protocol=PROTOCOL) -> Candidate:
    run = tmp_path / "runs" / name
    ckpt = run / "checkpoints" / "ckpt-00000010.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"checkpoint " + name.encode())
    return Candidate(
        run_id=name,
        export_dir=make_export(run, b"weights of " + name.encode()),
        metrics={"fid": fid, "kid": 0.01},
        protocol=protocol,
        checkpoint=ckpt,
        data_hash="d" * 64,
        params={"seed": 0},
    )


RULE = Rule("fid", "min", 0.5)


def strict_lines(path: Path) -> list[dict]:
    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token} in {path}")

    return [json.loads(line, parse_constant=no_nan) for line in path.read_text().splitlines()]


def test_register_promotes_copies_and_points(tmp_path):
    reg = Registry(tmp_path / "registry")
    assert reg.champion() is None and reg.history() == []
    cand = candidate(tmp_path, "a", 40.0)
    rec = reg.register(cand, RULE)
    assert rec["version"] == 1 and rec["decision"] == PROMOTED
    assert rec["checkpoint"]["sha256"] == sha256_file(cand.checkpoint)
    assert rec["export"]["sha256"] == sha256_file(cand.export_dir / WEIGHTS)
    assert rec["data_hash"] == "d" * 64 and rec["run_id"] == "a" and rec["params"] == {"seed": 0}
    assert rec["git_revision"] is None or len(rec["git_revision"]) == 40
    copy = reg.root / "models" / "v1"
    assert (copy / WEIGHTS).read_bytes() == b"weights of a"
    assert json.loads((copy / "metrics.json").read_text())["fid"] == 40.0
    assert json.loads((copy / "protocol.json").read_text()) == PROTOCOL
    pointer = json.loads((reg.root / "champion.json").read_text())
    assert pointer["version"] == 1 and pointer["model_dir"] == "models/v1"
    assert reg.champion()["version"] == 1


def test_rejected_candidates_are_recorded_but_not_copied(tmp_path):
    reg = Registry(tmp_path / "registry")
    reg.register(candidate(tmp_path, "a", 40.0), RULE)
    rec = reg.register(candidate(tmp_path, "b", 39.8), RULE)
    assert rec["version"] == 2 and rec["decision"] == REJECTED
    assert "does not beat champion v1's 40" in rec["reason"]
    assert rec["model_dir"] is None and not (reg.root / "models" / "v2").exists()
    assert rec["champion_before"] == 1
    assert reg.champion()["version"] == 1
    assert json.loads((reg.root / "champion.json").read_text())["via"] == PROMOTED


def test_history_is_append_only_strict_json(tmp_path):
    reg = Registry(tmp_path / "registry")
    snapshots = []
    for name, fid in [("a", 40.0), ("b", math.nan), ("c", 30.0), ("d", 35.0)]:
        reg.register(candidate(tmp_path, name, fid), RULE)
        snapshots.append(reg.history_path.read_bytes())
    reg.rollback("previous", reason="c looks broken")
    snapshots.append(reg.history_path.read_bytes())
    for earlier, later in zip(snapshots, snapshots[1:], strict=False):
        assert later.startswith(earlier) and len(later) > len(earlier)
    lines = strict_lines(reg.history_path)
    assert [r["version"] for r in lines] == [1, 2, 3, 4, 1]
    assert [r["decision"] for r in lines] == [PROMOTED, REJECTED, PROMOTED, REJECTED, ROLLBACK]
    assert lines[1]["metrics"]["fid"] is None  # NaN stored as null


def test_no_temp_files_left(tmp_path):
    reg = Registry(tmp_path / "registry")
    for name, fid in [("a", 40.0), ("b", 30.0), ("c", 50.0)]:
        reg.register(candidate(tmp_path, name, fid), RULE)
    leftovers = [p for p in reg.root.rglob("*") if "tmp" in p.name]
    assert leftovers == []
    assert sorted(p.name for p in (reg.root / "models").iterdir()) == ["v1", "v2"]


def test_list_and_show(tmp_path):
    reg = Registry(tmp_path / "registry")
    for name, fid in [("a", 40.0), ("b", 30.0), ("c", 50.0)]:
        reg.register(candidate(tmp_path, name, fid), RULE)
    df = list_versions(reg.root)
    assert list(df.columns[:7]) == [
        "version",
        "time",
        "decision",
        "metric",
        "value",
        "run_id",
        "champion",
    ]
    assert df["version"].tolist() == [1, 2, 3]
    assert df["champion"].tolist() == [False, True, False]
    assert df["value"].tolist() == [40.0, 30.0, 50.0]
    assert show(reg.root, "v2")["champion"] is True
    assert show(reg.root)["version"] == 2  # "champion" by default
    assert show(reg.root, 3)["decision"] == REJECTED
    with pytest.raises(GanError, match="no version v9"):
        show(reg.root, "v9")
    assert list_versions(tmp_path / "empty").empty


def test_rollback_previous_and_explicit(tmp_path):
    reg = Registry(tmp_path / "registry")
    for name, fid in [("a", 40.0), ("b", 30.0), ("c", 31.0), ("d", 20.0)]:
        reg.register(candidate(tmp_path, name, fid), RULE)
    assert reg.champion()["version"] == 4
    entry = rollback(reg.root, reason="v4 makes blank images")
    assert entry["decision"] == ROLLBACK and entry["version"] == 2 and entry["from_version"] == 4
    assert entry["reason"] == "v4 makes blank images"
    assert reg.champion()["version"] == 2
    assert json.loads((reg.root / "champion.json").read_text())["via"] == ROLLBACK
    rollback(reg.root, "previous", reason="v2 too")
    assert reg.champion()["version"] == 1
    with pytest.raises(GanError, match="no promoted version before"):
        reg.rollback(reason="nothing older")
    rollback(reg.root, "v4", reason="it was fine after all")
    assert reg.champion()["version"] == 4
    df = reg.table()
    assert df["champion"].sum() == 1 and df.loc[df["champion"], "version"].item() == 4
    # the next candidate is judged against the champion the rollback chose
    reg.rollback("v1", reason="back to basics")
    rec = reg.register(candidate(tmp_path, "e", 35.0), RULE)
    assert rec["decision"] == PROMOTED and "champion v1's 40" in rec["reason"]


def test_rollback_refusals(tmp_path):
    reg = Registry(tmp_path / "registry")
    with pytest.raises(GanError, match="no promoted version"):
        reg.rollback(reason="empty")
    reg.register(candidate(tmp_path, "a", 40.0), RULE)
    reg.register(candidate(tmp_path, "b", 45.0), RULE)
    with pytest.raises(GanError, match="v2 was never promoted"):
        reg.rollback("v2", reason="x")
    with pytest.raises(GanError, match="already the champion"):
        reg.rollback("v1", reason="x")
    with pytest.raises(GanError, match="needs a reason"):
        reg.rollback("v1", reason="  ")
    assert len(reg.history()) == 2


def test_model_dir_survives_run_deletion_and_detects_tampering(tmp_path):
    reg = Registry(tmp_path / "registry")
    reg.register(candidate(tmp_path, "a", 40.0), RULE)
    reg.register(candidate(tmp_path, "b", 45.0), RULE)
    assert reg.model_dir("v2") == tmp_path / "runs" / "b" / "export"  # rejected: its run's export
    shutil.rmtree(tmp_path / "runs")
    assert (reg.model_dir("champion") / WEIGHTS).read_bytes() == b"weights of a"
    with pytest.raises(GanError, match="kept no copy"):
        reg.model_dir("v2")
    (reg.root / "models" / "v1" / WEIGHTS).write_bytes(b"tampered")
    with pytest.raises(GanError, match="does not match the sha256"):
        reg.model_dir("v1")
    with pytest.raises(GanError, match="no champion yet"):
        Registry(tmp_path / "other").model_dir("champion")
    with pytest.raises(GanError, match="no champion yet"):
        show(tmp_path / "other")


def test_missing_export_file_is_named(tmp_path):
    cand = candidate(tmp_path, "a", 40.0)
    (cand.export_dir / WEIGHTS).unlink()
    with pytest.raises(GanError, match=WEIGHTS):
        Registry(tmp_path / "registry").register(cand, RULE)


def test_concurrent_registrations_get_distinct_versions(tmp_path):
    reg_root = tmp_path / "registry"
    cands = [candidate(tmp_path, f"r{i}", 50.0 - i) for i in range(6)]
    errors = []

    def work(c):
        try:
            Registry(reg_root).register(c, Rule("fid", "min", 0.0))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in cands]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = strict_lines(reg_root / "history.jsonl")
    assert sorted(r["version"] for r in lines) == [1, 2, 3, 4, 5, 6]
