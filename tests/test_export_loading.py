"""An export loads with torch, safetensors and its family's module alone, and says how to call it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from test_stylegan2_family import sg_tiny

from gan.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

# load, then call the network the way generator.json's signature says, in a clean process
CALL = """
import json, sys, torch
from gan.export import load_export
e = load_export(sys.argv[1])
sig = e.meta["signature"]
labels = torch.tensor([3, 1]) if sig["labels"]["conditional"] else None
x = e.family.generate(e.generator, 2, torch.Generator().manual_seed(0), labels=labels)
heavy = ("prefect", "dvc", "dvclive", "optuna", "pandas", "sklearn", "yaml", "torch_fidelity")
print(json.dumps({"shape": list(x.shape), "low": float(x.min()), "high": float(x.max()),
                  "loaded": [m for m in heavy if m in sys.modules]}))
"""


def call(export) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CALL, str(export)], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_an_export_loads_without_the_pipeline_libraries(dcgan_export):
    got = call(dcgan_export)
    assert got["loaded"] == []
    sig = json.loads((dcgan_export / "generator.json").read_text())["signature"]
    assert got["shape"] == [2, *sig["output"]["shape"][1:]] == [2, 1, 16, 16]
    lo, hi = sig["output"]["range"]
    assert lo <= got["low"] and got["high"] <= hi
    assert sig["task"] == "sample" and sig["input"]["z_dim"] == 8
    assert sig["labels"] == {"conditional": False, "num_classes": 0}
    assert sig["output"]["channels"] == "grayscale"


@pytest.fixture(scope="module")
def conditional_export(digits16, tmp_path_factory):
    cfg = sg_tiny(digits16, tmp_path_factory.mktemp("sg2"), steps=1, model={"conditional": True})
    train(cfg)
    return cfg.run_dir / "export"


def test_a_trained_conditional_export_names_its_classes(conditional_export):
    sig = json.loads((conditional_export / "generator.json").read_text())["signature"]
    labels = sig["labels"]
    assert labels["conditional"] is True and labels["num_classes"] == 10
    assert labels["classes"] == [str(k) for k in range(10)]  # the training data's folders
    assert "labels=labels" in sig["call"]
    got = call(conditional_export)
    assert got["loaded"] == [] and got["shape"] == [2, *sig["output"]["shape"][1:]]
