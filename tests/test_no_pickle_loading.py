"""No file that evaluation, training or the registry reads can run code (issue #14).

A "planted" file is a pickle whose object's __reduce__ writes a marker file when it is
unpickled without weights_only. It is put wherever the project or its libraries read from
disk; each read must give one clear GanError or ignore the file, and the marker must
never appear.
"""

from __future__ import annotations

import json
import pickle
import pickletools
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from test_metrics import _cfg

from gan.config import TrainConfig
from gan.data.shards import load_split
from gan.errors import GanError
from gan.export import WEIGHTS, load_export
from gan.metrics.classifier import load_classifier
from gan.metrics.evaluate import evaluate
from gan.metrics.extractors import register_classifier, resolve_extractor
from gan.metrics.fidelity import reference_cache_name
from gan.registry import Candidate, Registry, Rule
from gan.training.loop import train

pytest_plugins = ["test_hpo_support", "test_metrics"]  # fixtures: classifier16, untrained_run


class Plant:
    """Unpickling this without weights_only would write `marker` (nothing here does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture
def plant(tmp_path):
    """plant(path, torch_format=True): write an armed pickle at path; checks it is armed."""
    marker = tmp_path / "MARKER"

    def write(path: Path, torch_format: bool = True) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if torch_format:
            torch.save({"w": Plant(marker)}, path)
        else:
            path.write_bytes(pickle.dumps(Plant(marker)))
        return path

    armed = write(tmp_path / "armed.pt")
    # armed without running it: the pickle inside calls builtins.exec on load (read by
    # pickletools, which parses opcodes and executes nothing)
    with zipfile.ZipFile(armed) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert ("REDUCE", None) in ops and ("GLOBAL", "__builtin__ exec") in ops
    yield write
    assert not marker.exists(), "a planted file ran code"


def test_planted_cache_files_are_never_unpickled(
    plant, tmp_path, digits16, classifier16, untrained_run, monkeypatch
):
    """Every name torch-fidelity's cache would read for our reference (in evaluate.cache_dir
    and in its default root under TORCH_HOME), and our own cache file: ignored."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    cfg = _cfg(tmp_path, digits16, untrained_run, classifier16, num_samples=100, kid_subset_size=50)
    first = evaluate(cfg)["metrics"]
    ours = sorted((tmp_path / "cache").iterdir())
    assert ours and all(p.suffix == ".safetensors" for p in ours)

    ext = register_classifier(classifier16)
    content_hash = json.loads((digits16 / "manifest.json").read_text())["content_hash"]
    prefix = reference_cache_name("test", content_hash, ext)
    roots = [tmp_path / "cache", tmp_path / "torch-home" / "fidelity_cache"]
    for root in roots:
        for input_name in (prefix, "input1", "input2"):
            for layer in ("features", "logits"):
                plant(root / f"{input_name}-{ext.name}-features-{layer}.pt")
                plant(root / f"{input_name}-{ext.name}-stat-fid-{layer}.pt")
    for p in ours:  # our own file replaced by a pickle: not safetensors, so recomputed
        plant(p)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = evaluate(cfg.model_copy(update={"output": str(tmp_path / "again")}))["metrics"]
    assert again == first
    assert any("ignoring the cached reference features" in str(w.message) for w in caught)
    assert sorted((tmp_path / "cache").glob("*.safetensors")) == ours  # rewritten, safe


def test_planted_classifier_export_and_inception_weights_give_one_clear_error(
    plant, tmp_path, classifier16, untrained_run
):
    clf = tmp_path / "classifier"
    shutil.copytree(classifier16, clf)
    plant(clf / "classifier.safetensors", torch_format=False)
    with pytest.raises(GanError, match="cannot load the classifier"):
        load_classifier(clf)
    with pytest.raises(GanError, match="cannot load the classifier"):
        resolve_extractor("classifier", clf, None)

    export = tmp_path / "run" / "export"
    shutil.copytree(untrained_run / "export", export)
    plant(export / WEIGHTS)
    with pytest.raises(GanError, match="cannot load generator weights"):
        load_export(export)

    with pytest.raises(GanError, match="not a plain weights file"):
        resolve_extractor("inception-v3-compat", clf, str(plant(tmp_path / "inception.pth")))


def test_planted_shard_checkpoint_and_init_from_give_one_clear_error(plant, tmp_path, digits16):
    data = tmp_path / "data"
    shutil.copytree(digits16, data)
    shard = json.loads((data / "manifest.json").read_text())["splits"]["train"]["shards"][0]
    plant(data / shard)
    with pytest.raises(GanError, match=f"{shard}: refused: loading it would call .*exec") as info:
        load_split(data, "train")
    assert "\n" not in str(info.value) and "weights_only" not in str(info.value)

    base = {
        "data": str(digits16),
        "runs_dir": str(tmp_path / "runs"),
        "steps": 2,
        "batch_size": 16,
        "device": "cpu",
        "progress": False,
        "model": {"family": "dcgan", "z_dim": 8, "width": 8},
    }
    init = plant(tmp_path / "init.pt")
    with pytest.raises(GanError, match="init.pt: refused: loading it would call"):
        train(TrainConfig(**base, run="warm", init_from=str(init)))
    plant(tmp_path / "runs" / "resumed" / "checkpoints" / "ckpt-00000001.pt")
    with pytest.raises(GanError, match="ckpt-00000001.pt: refused: loading it would call"):
        train(TrainConfig(**base, run="resumed"))


def test_planted_registry_copy_gives_one_clear_error(plant, tmp_path, untrained_run):
    registry = Registry(tmp_path / "registry")
    cand = Candidate("run-1", untrained_run / "export", {"fid": 1.0}, {"extractor": "x"})
    record = registry.register(cand, Rule())
    copy = registry.model_dir(record["version"])
    plant(copy / WEIGHTS)
    with pytest.raises(GanError, match="does not match the sha256"):
        registry.model_dir(record["version"])
    with pytest.raises(GanError, match="cannot load generator weights"):
        load_export(copy)
