"""promote() and sample() end to end on a real (tiny) DCGAN export in a temp dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan.config import PromoteConfig
from gan.errors import GanError
from gan.export import WEIGHTS, save_export
from gan.grid import save_grid
from gan.models import get_family
from gan.models.family import DataInfo
from gan.registry import Registry
from gan.registry.promote import promote
from gan.sample import sample

PROTOCOL = {
    "extractor": "classifier",
    "extractor_sha256": "ab" * 32,
    "num_samples": 256,
    "reference": {"split": "test", "content_hash": "cd" * 32},
    "seed": 0,
    "kid_subset_size": 50,
    "metrics": ["fid", "kid", "isc", "prc"],
    "torch": torch.__version__,
    "torch_fidelity": "0.4.0",
}
DATA = DataInfo(resolution=16, channels=1)


def make_run(tmp_path: Path, name: str, seed: int) -> Path:
    """A run dir as the trainer leaves it: run.json, a checkpoint and export/."""
    family = get_family("dcgan")
    model_cfg = family.config_class.model_validate({"family": "dcgan", "z_dim": 8, "width": 8})
    torch.manual_seed(seed)
    G = family.build_generator(model_cfg, DATA)
    run = tmp_path / "runs" / name
    save_export(run / "export", "dcgan", model_cfg.model_dump(mode="json"), DATA, G)
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"step": 10}, run / "checkpoints" / "ckpt-00000010.pt")
    (run / "run.json").write_text(
        json.dumps(
            {
                "run_id": f"{name}-id",
                "family": "dcgan",
                "params": {"seed": seed},
                "data_hash": "e" * 64,
                "steps": 10,
            }
        )  # fmt: skip
    )
    return run


def make_eval(tmp_path: Path, metrics: dict, protocol: dict = PROTOCOL) -> Path:
    out = tmp_path / "reports" / "evaluate"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "protocol.json").write_text(json.dumps(protocol))
    save_grid(torch.zeros(4, 1, 16, 16), out / "samples.png")
    return out / "metrics.json"


def config(tmp_path: Path, run: Path, metrics: Path, **kw) -> PromoteConfig:
    return PromoteConfig(
        registry=str(tmp_path / "registry"),
        metrics=str(metrics),
        run_dir=str(run),
        report=str(tmp_path / "reports" / "promote"),
        **kw,
    )


def test_promote_end_to_end(tmp_path):
    run = make_run(tmp_path, "first", seed=1)
    cfg = config(tmp_path, run, make_eval(tmp_path, {"fid": 41.2, "kid": 0.02, "is": float("nan")}))
    first = promote(cfg)
    assert first["decision"] == "promoted" and first["version"] == 1 and first["champion"] == 1
    report = Path(cfg.report)
    assert json.loads((report / "decision.json").read_text()) == first
    md = (report / "report.md").read_text()
    assert "![Samples of candidate v1](samples.png)" in md
    assert (report / "samples.png").read_bytes().startswith(b"\x89PNG")
    assert "first valid candidate" in md and "| **fid** (primary)" in md and "41.2" in md
    assert [p.name for p in report.iterdir() if p.name.startswith(".")] == []

    # a worse run is rejected, and the report shows the champion beside it
    run2 = make_run(tmp_path, "second", seed=2)
    cfg2 = config(tmp_path, run2, make_eval(tmp_path, {"fid": 45.0, "kid": 0.03}), margin=0.5)
    second = promote(cfg2)
    assert second["decision"] == "rejected" and second["version"] == 2
    assert second["previous_champion"] == 1 and second["champion"] == 1
    assert second["previous_champion_value"] == 41.2
    assert second["reason"].startswith("fid 45 does not beat champion v1's 41.2 by margin 0.5")
    md = (report / "report.md").read_text()
    assert "candidate v2" in md and "champion v1" in md and "v2 rejected" in md
    history = Registry(cfg.registry).history()
    assert history[0]["run_id"] == "first-id" and history[0]["data_hash"] == "e" * 64
    assert history[0]["checkpoint"]["path"].endswith("ckpt-00000010.pt")


def test_promote_refuses_a_different_protocol(tmp_path):
    run = make_run(tmp_path, "first", seed=1)
    promote(config(tmp_path, run, make_eval(tmp_path, {"fid": 41.2})))
    other = {**PROTOCOL, "extractor": "inception-v3-compat"}
    run2 = make_run(tmp_path, "second", seed=2)  # the same export again would be a no-op
    result = promote(config(tmp_path, run2, make_eval(tmp_path, {"fid": 1.0}, other)))
    assert result["decision"] == "rejected" and "protocol differs" in result["reason"]
    md = (tmp_path / "reports" / "promote" / "report.md").read_text()
    assert "**no**" in md and "inception-v3-compat" in md


def test_promote_names_missing_files(tmp_path):
    run = make_run(tmp_path, "first", seed=1)
    metrics = make_eval(tmp_path, {"fid": 41.2})
    missing = tmp_path / "nowhere" / "metrics.json"
    with pytest.raises(GanError, match=str(missing)):
        promote(config(tmp_path, run, missing))
    (metrics.parent / "protocol.json").unlink()
    with pytest.raises(GanError, match="protocol.json"):
        promote(config(tmp_path, run, metrics))
    make_eval(tmp_path, {"fid": 41.2})
    (run / "export" / WEIGHTS).unlink()
    with pytest.raises(GanError, match=WEIGHTS):
        promote(config(tmp_path, run, metrics))
    assert not (tmp_path / "registry" / "history.jsonl").exists()


def grid_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_sample_from_champion_after_run_is_deleted(tmp_path):
    run = make_run(tmp_path, "first", seed=1)
    cfg = config(tmp_path, run, make_eval(tmp_path, {"fid": 41.2}))
    promote(cfg)
    direct = sample(str(run / "export"), 5, tmp_path / "direct.png", seed=3)
    rejected_run = make_run(tmp_path, "second", seed=2)
    promote(config(tmp_path, rejected_run, make_eval(tmp_path, {"fid": 99.0})))
    shutil.rmtree(tmp_path / "runs")

    out = sample("champion", 5, tmp_path / "grid.png", seed=3, registry=cfg.registry)
    assert grid_size(out) == (3 * 18 + 2, 2 * 18 + 2)  # nrow=ceil(sqrt(5)); 16 px + 2 padding
    assert out.read_bytes() == direct.read_bytes()  # the copy is the run's generator
    again = sample("v1", 5, tmp_path / "again.png", seed=3, registry=cfg.registry)
    other = sample("v1", 5, tmp_path / "other.png", seed=4, registry=cfg.registry)
    assert again.read_bytes() == out.read_bytes() and other.read_bytes() != out.read_bytes()
    with pytest.raises(GanError, match="kept no copy"):
        sample("v2", 4, tmp_path / "v2.png", registry=cfg.registry)
    with pytest.raises(GanError, match="unconditional"):
        sample("champion", 4, tmp_path / "l.png", registry=cfg.registry, labels=[0, 1])
    with pytest.raises(GanError, match="not 'champion'"):
        sample(str(tmp_path / "missing"), 4, tmp_path / "m.png", registry=cfg.registry)
