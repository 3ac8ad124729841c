"""`gan evaluate --images DIR`: a folder of images made elsewhere, scored under the protocol
of a trained run, converted as preprocess converts, or refused with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gan.cli import main
from gan.config import PreprocessConfig
from gan.data.preprocess import preprocess
from gan.data.shards import load_split, read_manifest
from gan.errors import GanError
from gan.metrics.classifier import load_classifier
from gan.metrics.image_folder import read_image_folder
from gan.pngs import export_split, write_pngs

pytest_plugins = ["test_hpo_support"]  # params_file (digits16 + classifier16), one thread

CLASSIFIER_FIGURES = {
    "classifier_is", "class_coverage", "class_entropy", "classifier_confident",
    "classifier_confident_real", "classifier_test_accuracy", "extractor_skill",
}  # fmt: skip
FIGURES = {
    "fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage",
    "kid_subset_size", "fid_real_floor", "kid_real_floor", "kid_real_floor_std",
    "real_floor_samples", *CLASSIFIER_FIGURES,
}  # fmt: skip


def _evaluate(params: Path, images: Path, out: Path, *extra: str) -> tuple[dict, dict]:
    assert (
        main(["evaluate", "-p", str(params), "--images", str(images), "--out", str(out), *extra])
        == 0
    )
    read = lambda name: json.loads((out / name).read_text())  # noqa: E731
    assert (out / "samples.png").stat().st_size > 0
    return read("metrics.json"), read("protocol.json")


def _noise(n: int, shape=(1, 16, 16)) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


def test_the_test_split_scores_as_its_own_reference_and_noise_far_worse(
    params_file, digits16, tmp_path
):
    real_dir, noise_dir = tmp_path / "real", tmp_path / "noise"
    n = export_split(digits16, "test", real_dir)
    write_pngs([_noise(n)], noise_dir)
    usual = read_manifest(digits16)["splits"]["train"]["count"]  # what a run is measured with
    with pytest.warns(UserWarning, match=f"{n} images, fewer than the {usual} samples"):
        real, protocol = _evaluate(params_file, real_dir, tmp_path / "r1")
    assert set(real) == FIGURES  # unlabelled: no conditional figures
    # the same images as the reference: every figure at its best, known by construction
    assert abs(real["fid"]) < 1e-3 * real["fid_real_floor"]
    assert real["precision"] == real["recall"] == real["coverage"] == 1.0
    assert real["density"] == pytest.approx(1.0)
    assert real["classifier_confident"] == real["classifier_confident_real"]
    assert protocol["num_samples"] == protocol["reference_count"] == n
    assert protocol["dc_neighborhood"] == 5 and protocol["metrics"] == sorted(real)
    assert protocol["images"] == {
        "folder": str(real_dir), "count": n, "labels": "none", "source_sizes": {"16x16": n},
        "source_modes": {"L": n}, "resolution": 16, "channels": 1, "converted": 0,
    }  # fmt: skip

    noise, _ = _evaluate(params_file, noise_dir, tmp_path / "r2", "-S", f"evaluate.num_samples={n}")
    print({k: (real[k], noise[k]) for k in ("fid", "precision", "recall", "density", "coverage")})
    assert noise["fid"] > 20 * real["fid_real_floor"]
    assert noise["coverage"] < 0.2 and noise["density"] < 0.2


def test_another_size_and_mode_is_converted_and_recorded(params_file, digits16, tmp_path):
    test = load_split(digits16, "test").images
    bigger = F.interpolate(test.float(), scale_factor=2, mode="nearest").round().to(torch.uint8)
    folder = tmp_path / "rgb32"
    write_pngs([bigger.expand(-1, 3, -1, -1)], folder)  # RGB PNGs at twice the resolution
    metrics, protocol = _evaluate(
        params_file, folder, tmp_path / "out", "-S", f"evaluate.num_samples={len(test)}"
    )
    n = len(test)
    assert protocol["images"]["source_sizes"] == {"32x32": n}
    assert protocol["images"]["source_modes"] == {"RGB": n}
    assert protocol["images"]["converted"] == n
    assert (protocol["images"]["resolution"], protocol["images"]["channels"]) == (16, 1)
    assert metrics["fid"] < metrics["fid_real_floor"]  # back at 16 px, near the originals
    assert metrics["coverage"] > 0.9


def _save(path: Path, mode: str, size: tuple[int, int], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = torch.randint(0, 256, (size[1], size[0], bands), generator=g, dtype=torch.uint8)
    img = Image.fromarray(pixels.numpy().squeeze(-1) if bands == 1 else pixels.numpy())
    if mode == "P":
        img = img.convert("RGB").quantize(16)
    elif img.mode != mode:
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_conversion_is_preprocess_own(tmp_path, digits16):
    """Mixed sizes and modes give exactly the pixels `gan preprocess` makes of them."""
    folder = tmp_path / "mixed"
    kinds = [
        ("RGB", (32, 32)),
        ("RGBA", (20, 24)),
        ("L", (16, 16)),
        ("P", (40, 30)),
        ("LA", (17, 16)),
    ]
    for i, (mode, size) in enumerate(kinds * 2):
        _save(folder / f"{i:02d}.png", mode, size, i)
    found = read_image_folder(folder, read_manifest(digits16))
    out = tmp_path / "processed"
    preprocess(
        PreprocessConfig(input=str(folder), output=str(out), resolution=16, test_fraction=0.0)
    )
    assert torch.equal(found.images, load_split(out, "train").images)
    assert found.labels is None
    assert found.record["source_modes"] == {"L": 2, "LA": 2, "P": 2, "RGB": 2, "RGBA": 2}
    assert found.record["source_sizes"] == {
        "16x16": 2,
        "17x16": 2,
        "20x24": 2,
        "32x32": 2,
        "40x30": 2,
    }
    assert found.record["converted"] == 8  # all but the 16 px greys


def _class_folders(digits16: Path, out: Path) -> int:
    test = load_split(digits16, "test")
    for k, name in enumerate(read_manifest(digits16)["classes"]):
        write_pngs([test.images[test.labels == k]], out / name)
    return len(test)


def test_class_folders_give_labels_and_conditional_figures(
    params_file, digits16, classifier16, tmp_path
):
    folder = tmp_path / "by-class"
    n = _class_folders(digits16, folder)
    metrics, protocol = _evaluate(
        params_file, folder, tmp_path / "out", "-S", f"evaluate.num_samples={n}"
    )
    # test images asked for their own class: the classifier's own test accuracy
    accuracy = load_classifier(classifier16).meta["test_accuracy"]
    assert metrics["conditional_accuracy"] == pytest.approx(accuracy)
    per_class = [metrics[f"fid_class_{k}"] for k in range(10)]
    assert metrics["fid_class_mean"] == pytest.approx(sum(per_class) / 10)
    assert max(map(abs, per_class)) < 1e-2 * metrics["fid_real_floor"]  # each class vs itself
    assert protocol["images"]["labels"] == "class folders"


def test_labels_only_from_folders_named_as_classes(tmp_path, digits16):
    manifest = read_manifest(digits16)
    other = tmp_path / "seeds"
    for seed in ("seed0", "seed1"):  # folders, but not classes: unlabelled
        _save(other / seed / "a.png", "L", (16, 16), 0)
    assert read_image_folder(other, manifest).labels is None
    labelled = tmp_path / "classes"
    for name in ("3", "7", "7"):
        _save(labelled / name / f"{len(list(labelled.rglob('*.png')))}.png", "L", (16, 16), 1)
    assert read_image_folder(labelled, manifest).labels.tolist() == [3, 7, 7]
    _save(labelled / "stray.png", "L", (16, 16), 2)
    with pytest.raises(GanError, match=r"stray\.png: not in a class folder"):
        read_image_folder(labelled, manifest)


def _holding(name: str | None, content: bytes | None):
    """A maker of a folder holding one file `name` (None: an empty folder); it returns the
    path the error should name."""

    def make(folder: Path) -> Path:
        folder.mkdir()
        if name is None:
            return folder
        (folder / name).write_bytes(content)
        return folder / name if name.endswith((".png", ".gif")) else folder

    return make


def _truncated(folder: Path) -> Path:
    _save(folder / "a.png", "L", (16, 16), 0)
    whole = (folder / "a.png").read_bytes()
    (folder / "b.png").write_bytes(whole[: len(whole) // 2])  # a download cut short
    return folder / "b.png"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda folder: folder, "evaluate.images folder not found"),
        (_holding(None, None), "no image files found"),
        (_holding("notes.txt", b"not data"), "no image files found"),
        (_truncated, "corrupt or truncated"),
        (_holding("x.gif", b"GIF89a"), "unsupported image format"),
        (_holding("x.png", b"not a png"), "not an image Pillow can read"),
    ],
    ids=["missing", "empty", "no-images", "truncated", "gif", "not-png"],
)
def test_an_unusable_folder_is_one_clear_error(params_file, tmp_path, capsys, make, says):
    folder, out = tmp_path / "samples", tmp_path / "out"
    named = make(folder)
    code = main(["evaluate", "-p", str(params_file), "--images", str(folder), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: {named}:") and says in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_generators_evaluation_is_never_replaced_by_a_folders(
    params_file, digits16, tmp_path, capsys
):
    images, out = tmp_path / "real", tmp_path / "reports" / "evaluate"
    export_split(digits16, "test", images)
    out.mkdir(parents=True)
    kept = {"metrics.json": '{"fid": 4.3}', "protocol.json": '{"extractor": "classifier"}'}
    for name, text in kept.items():
        (out / name).write_text(text)
    code = main(["evaluate", "-p", str(params_file), "--images", str(images), "-S",
                 f"evaluate.output={out}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and err.count("error:") == 1 and "--out" in err and str(out) in err
    assert {p.name: p.read_text() for p in out.iterdir()} == kept
