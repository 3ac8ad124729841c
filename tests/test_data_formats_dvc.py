"""A dataset file under real DVC (#26: "`dvc add` of the source works as for a folder").

The preprocess stage alone, in a temporary git + DVC repository (tests/test_pipeline_dvc.py's
tiny_repo), on the README's two ways to bring a file in: a stylegan2-ada zip named by
`preprocess.input` and `dvc add`ed as a file, and CIFAR-10's archive in `data/raw/<name>/`,
tracked as that folder. `dvc repro preprocess` reads it; the same content again leaves the
stage cached, and a changed file (`dvc add` again) reruns it. Fixtures: tests/dataset_files.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import dataset_files as df
import pytest
import yaml
from test_pipeline_dvc import ran_stages, run, tiny_repo

from gan.dvc_stages import expected, pipelines
from gan.io import sha256_file

pytestmark = pytest.mark.slow


def set_preprocess(repo: Path, **keys) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["preprocess"].update(keys)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def repro_preprocess(repo: Path) -> set[str]:
    """The stages `dvc repro preprocess` ran."""
    return ran_stages(run(["dvc", "repro", "preprocess"], repo))


def preprocessed(repo: Path, name: str) -> tuple[dict, dict[str, int]]:
    """The manifest of data/processed/<name> and its split counts."""
    manifest = json.loads((repo / f"data/processed/{name}/manifest.json").read_text())
    return manifest, {s: v["count"] for s, v in manifest["splits"].items()}


def dep(repo: Path, path: str) -> dict:
    """The preprocess stage's dep `path` as dvc.lock records it."""
    (found,) = [
        d
        for d in yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["preprocess"]["deps"]
        if d["path"] == path
    ]
    return found


def test_a_zip_named_by_preprocess_input_is_the_dep_dvc_add_tracks(tmp_path):
    """README: name the file in preprocess.input, `dvc add` it, `make dvc-yaml` (the
    committed dvc.yaml depends on data/raw/<dataset>, a folder this user does not have)."""
    repo = tiny_repo(tmp_path, ".gitignore")
    (repo / "data/raw").mkdir(parents=True)
    src = df.stylegan_zip(repo / "data/raw/faces.zip", n=20)
    run(["dvc", "add", "data/raw/faces.zip"], repo)
    set_preprocess(repo, dataset="faces", input="data/raw/faces.zip")
    (repo / "dvc.yaml").write_text(expected(pipelines()[0], repo))  # what `make dvc-yaml` does
    assert repro_preprocess(repo) == {"preprocess"}
    manifest, counts = preprocessed(repo, "faces")
    assert manifest["format"] == "stylegan2-zip" and counts == {"train": 16, "test": 4}
    assert manifest["source_sha256"] == sha256_file(src)
    tracked = yaml.safe_load((repo / "data/raw/faces.zip.dvc").read_text())["outs"][0]
    assert dep(repo, "data/raw/faces.zip")["md5"] == tracked["md5"]  # the file `dvc add` tracks

    src.write_bytes(src.read_bytes())  # the same file again (a fresh copy, a new mtime)
    run(["dvc", "add", "data/raw/faces.zip"], repo)
    assert repro_preprocess(repo) == set()  # cached
    df.stylegan_zip(src, n=25)  # five more images
    run(["dvc", "add", "data/raw/faces.zip"], repo)
    assert repro_preprocess(repo) == {"preprocess"}
    manifest, counts = preprocessed(repo, "faces")
    assert counts == {"train": 20, "test": 5} and manifest["source_sha256"] == sha256_file(src)
    assert "up to date" in run(["dvc", "status", "preprocess"], repo)


def test_a_cifar_archive_in_its_folder_runs_with_the_committed_dvc_yaml(tmp_path):
    """README: put the file in data/raw/<name>/ and `dvc add data/raw/<name>`: only
    preprocess.dataset (and channels) change, dvc.yaml as committed."""
    repo = tiny_repo(tmp_path, ".gitignore")
    src = df.cifar_tar(repo / "data/raw/cifar/cifar-10-binary.tar.gz", per_batch=2)
    run(["dvc", "add", "data/raw/cifar"], repo)
    set_preprocess(repo, dataset="cifar", channels=3)
    assert repro_preprocess(repo) == {"preprocess"}
    manifest, counts = preprocessed(repo, "cifar")
    assert manifest["format"] == "cifar10-binary" and counts == {"train": 10, "test": 2}
    assert manifest["source_sha256"] == sha256_file(src)
    assert dep(repo, "data/raw/cifar")["md5"].endswith(".dir")

    df.cifar_tar(src, per_batch=3)  # another archive in its place
    run(["dvc", "add", "data/raw/cifar"], repo)
    assert repro_preprocess(repo) == {"preprocess"}
    manifest, counts = preprocessed(repo, "cifar")
    assert counts == {"train": 15, "test": 3} and manifest["source_sha256"] == sha256_file(src)
