"""Each input format reaches a trained, promoted model with the README's commands (#26).

For a stylegan2-ada dataset zip, CIFAR-10's binary archive, MNIST's IDX files and a folder
of images in class subfolders (fixtures: tests/dataset_files.py), the file goes where the
README puts it (`data/raw/<name>/`, what `dvc add data/raw/<name>` tracks), params.yaml
names the dataset, and the stages run one by one through the `gan` command:
`gan preprocess`, `gan classifier`, `gan train`, `gan evaluate`, `gan promote`. The
registry then holds v1 of a run trained on that dataset, whose manifest records the
format it came in. The champion of one of them goes out as ONNX (`gan export`) and
`gan sample --model x.onnx` draws what the PyTorch champion draws.

Tiny on purpose: 16 px, a width-8 DCGAN for 4 steps, a one-epoch classifier (so promote
is told to accept a weak judge), a few dozen images: seconds a format on one thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from dataset_files import COLOURS, cifar_tar, make_folder, mnist, stylegan_zip
from PIL import Image

from gan.cli import main
from gan.io import sha256_file
from gan.onnx_export import ONNX

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    # a one-epoch classifier on a few dozen images: evaluate says it is weak, as it should
    pytest.mark.filterwarnings("ignore::gan.metrics.extractor_quality.WeakExtractorWarning"),
]

STAGES = ("preprocess", "classifier", "train", "evaluate", "promote")


def params(name: str, channels: int) -> dict:
    """params.yaml as the README's "Your own data" has the user write it: the dataset's
    name (and the images' channels), plus a tiny model and budget for the test."""
    return {
        "preprocess": {"dataset": name, "resolution": 16, "channels": channels},
        "classifier": {"epochs": 1, "batch_size": 16},
        "train": {
            "run": f"{name}-dcgan", "steps": 4, "batch_size": 8, "log_every": 2,
            "sample_every": 4, "checkpoint_every": 4, "device": "cpu", "threads": 1,
            "progress": False,
            "model": {"family": "dcgan", "width": 8, "z_dim": 8, "conditional": "auto"},
        },
        "evaluate": {"num_samples": 24, "device": "cpu"},
        "promote": {"allow_weak_extractor": True},  # a one-epoch classifier is a weak judge
    }  # fmt: skip


def zip_source(raw: Path) -> Path:
    return stylegan_zip(raw / "faces.zip", n=60)


def cifar_source(raw: Path) -> Path:
    return cifar_tar(raw / "cifar-10-binary.tar.gz", per_batch=8)


def idx_source(raw: Path) -> Path:
    return mnist(raw, train=40, test=10)


def folder_source(raw: Path) -> Path:
    return make_folder(raw, per_class=10)


# format -> (the fixture's builder, channels, manifest's format, train/test, classes)
FORMATS: dict[str, tuple[Callable[[Path], Path], int, str, tuple[int, int], int]] = {
    "zip": (zip_source, 1, "stylegan2-zip", (48, 12), 10),
    "cifar": (cifar_source, 3, "cifar10-binary", (40, 8), 8),
    "idx": (idx_source, 1, "idx", (40, 10), 10),
    "folder": (folder_source, 3, "folder", (24, 6), len(COLOURS)),
}


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory) -> Iterator[Callable[[str], Path]]:
    """format -> a folder where the README's stages ran on it (each format once a module)."""
    done: dict[str, Path] = {}
    mp = pytest.MonkeyPatch()

    def run(fmt: str) -> Path:
        if fmt not in done:
            root = tmp_path_factory.mktemp(fmt)
            mp.chdir(root)
            build, channels, *_ = FORMATS[fmt]
            raw = root / "data/raw" / fmt
            raw.mkdir(parents=True)
            build(raw)
            Path("params.yaml").write_text(yaml.safe_dump(params(fmt, channels)))
            for stage in STAGES:
                assert main([stage]) == 0, f"gan {stage} failed on the {fmt} dataset"
            done[fmt] = root
        mp.chdir(done[fmt])
        return done[fmt]

    mp.delenv("DVC_ROOT", raising=False)
    yield run
    mp.undo()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_reaches_a_promoted_model(fmt, pipelines):
    root = pipelines(fmt)
    _, channels, format_name, (train, test), classes = FORMATS[fmt]
    manifest = json.loads((root / f"data/processed/{fmt}/manifest.json").read_text())
    assert manifest["format"] == format_name and manifest["channels"] == channels
    counts = {s: v["count"] for s, v in manifest["splits"].items()}
    assert counts == {"train": train, "test": test} and len(manifest["classes"]) == classes
    if fmt in ("zip", "cifar"):  # one file: the one `dvc add` tracks, by its hash
        (source,) = (root / "data/raw" / fmt).iterdir()
        assert manifest["source_sha256"] == sha256_file(source)

    decision = json.loads((root / "reports/promote/decision.json").read_text())
    assert decision["decision"] == "promoted" and decision["version"] == 1
    assert Path(decision["registry"]) == Path(f"registry/{fmt}")  # per dataset
    (record,) = [
        json.loads(line) for line in (root / decision["registry"] / "history.jsonl").open()
    ]
    assert record["version"] == 1 and record["run_id"].startswith(f"{fmt}-dcgan-")
    assert record["data_hash"] == manifest["content_hash"]  # trained on that manifest's data
    assert record["params"]["data"] == f"data/processed/{fmt}"
    kept = root / decision["registry"] / record["model_dir"]
    assert sha256_file(kept / "generator.safetensors") == record["export"]["sha256"]
    exported = json.loads((kept / "generator.json").read_text())
    assert exported["signature"]["labels"]["classes"] == manifest["classes"]  # conditional


def test_the_champion_goes_out_as_onnx_and_samples_as_in_pytorch(pipelines, capsys):
    """README, "Export": `gan export --format onnx --model champion`, then `gan sample`
    with the ONNX file draws the PyTorch champion's images for the same seed and labels."""
    root = pipelines("zip")
    capsys.readouterr()
    assert main(["export", "--format", "onnx", "--model", "champion"]) == 0
    onnx_file = root / "registry/zip/models/v1" / ONNX
    assert capsys.readouterr().out.split() == [str(Path("registry/zip/models/v1") / ONNX)]
    grids = []
    for model, out in ((str(onnx_file), "onnx.png"), ("champion", "torch.png")):
        args = ["sample", "--model", model, "-n", "8", "--labels", "3", "7", "--seed", "5"]
        assert main([*args, "--out", out]) == 0
        grids.append(np.asarray(Image.open(root / out), dtype=np.int16))
    assert np.abs(grids[0] - grids[1]).max() <= 1  # the same images, up to rounding to uint8
