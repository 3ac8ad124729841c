"""Shared fixtures: small real datasets built from scikit-learn's digits, no download."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GIT_AUTHOR_NAME", "ganops-tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@ganops.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "ganops-tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@ganops.invalid")

REPO = Path(__file__).resolve().parents[1]


def digits_tensors(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=resolution, mode="bilinear", align_corners=False)
    return (x * 255).round().clamp(0, 255).to(torch.uint8), torch.tensor(d.target)


def write_dataset(
    out: Path, images: torch.Tensor, labels: torch.Tensor, test_every: int = 5
) -> Path:
    """A processed dataset dir in the format preprocess writes (shards + manifest.json)."""
    from gan.data.shards import write_split
    from gan.io import sha256_tree, write_json

    test = torch.arange(len(images)) % test_every == 0
    splits = {}
    for name, keep in (("train", ~test), ("test", test)):
        n = int(keep.sum())
        shards = write_split(
            out, name, images[keep], labels[keep], torch.zeros(n, dtype=torch.long), 4096
        )
        splits[name] = {"count": n, "shards": shards}
    write_json(
        out / "manifest.json",
        {
            "resolution": int(images.shape[-1]),
            "channels": int(images.shape[1]),
            "classes": [str(i) for i in range(int(labels.max()) + 1)],
            "domains": [],
            "content_hash": sha256_tree(out, "*.pt"),
            "splits": splits,
        },
    )
    return out


@pytest.fixture(scope="session")
def digits16(tmp_path_factory) -> Path:
    images, labels = digits_tensors(16)
    return write_dataset(tmp_path_factory.mktemp("digits16"), images, labels)


def assert_same_state(a, b, path="state"):
    """Bit-for-bit equality of nested checkpoint state (tensors, dicts, lists, scalars)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def unpaired_tensors(resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Even digits as they are (A), odd digits inverted (B): no source image in both."""
    images, labels = digits_tensors(resolution)
    images, labels = images[:400], labels[:400]
    domains = torch.arange(len(images)) % 2
    images = torch.where(domains[:, None, None, None] == 1, 255 - images, images)
    return images, labels, domains


@pytest.fixture(scope="session")
def unpaired16(tmp_path_factory) -> Path:
    """A two-domain processed dataset (CycleGAN layout after preprocess)."""
    from gan.data.shards import write_split
    from gan.io import sha256_tree, write_json

    out = tmp_path_factory.mktemp("unpaired16")
    images, labels, domains = unpaired_tensors(16)
    test = torch.arange(len(images)) % 5 < 2
    splits = {}
    for name, keep in (("train", ~test), ("test", test)):
        shards = write_split(out, name, images[keep], labels[keep], domains[keep], 4096)
        splits[name] = {"count": int(keep.sum()), "shards": shards}
    manifest = {
        "resolution": 16,
        "channels": 1,
        "classes": [str(i) for i in range(10)],
        "domains": ["A", "B"],
        "content_hash": sha256_tree(out, "*.pt"),
        "splits": splits,
    }
    write_json(out / "manifest.json", manifest)
    return out


@pytest.fixture(scope="session")
def dcgan_export(tmp_path_factory) -> Path:
    """An untrained, tiny DCGAN export (16x16 grey): enough for loading and sampling."""
    from gan.config import dump_section
    from gan.export import save_export
    from gan.models import get_family
    from gan.models.family import DataInfo

    family = get_family("dcgan")
    cfg = family.config_class.model_validate({"family": "dcgan", "z_dim": 8, "width": 8})
    data = DataInfo(resolution=16, channels=1)
    out = tmp_path_factory.mktemp("export")
    return save_export(out, "dcgan", dump_section(cfg), data, family.build_generator(cfg, data))


@pytest.fixture
def one_thread():
    """Tiny networks: a second thread only adds synchronisation, badly so on a shared CPU.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def straight_and_resumed(make_cfg, tmp_path: Path, interrupt_at: int = 8):
    """Train make_cfg(dir) once straight and once stopped after `interrupt_at` steps and
    resumed; returns both configs and both final checkpoints, for exact-resume tests."""
    from gan.io import load_torch
    from gan.training.checkpoint import list_checkpoints
    from gan.training.loop import train

    straight = make_cfg(tmp_path / "a")
    train(straight)
    train(make_cfg(tmp_path / "b").model_copy(update={"steps": interrupt_at}))
    resumed = make_cfg(tmp_path / "b")
    assert train(resumed)["resumed_from_step"] == interrupt_at
    a = load_torch(list_checkpoints(straight.run_dir)[-1])
    b = load_torch(list_checkpoints(resumed.run_dir)[-1])
    return straight, resumed, a, b


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory) -> tuple[Path, str]:
    """The tiny pipeline (test_pipeline_dvc.TINY) after one `dvc repro`, committed, and
    that repro's output. Tests change copies of it (`copy_repo`), never the original: its
    registry's records hold absolute paths into it. A repro costs ~50 s."""
    from test_pipeline_dvc import run, tiny_repo

    root = tiny_repo(tmp_path_factory.mktemp("reproduced"), ".gitignore", ".dvcignore")
    out = run(["dvc", "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first run"], root)
    return root, out


def copy_repo(src: Path, dst: Path) -> Path:
    """A git + DVC repository copied whole (.git, .dvc cache, workspace outputs)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
