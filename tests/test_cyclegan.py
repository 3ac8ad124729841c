"""CycleGAN: networks, loss arithmetic, image pool, lr schedule, exact resume, translate."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_state, unpaired_tensors
from PIL import Image

from gan.config import TrainConfig
from gan.data.shards import SplitData
from gan.data.unpaired import UnpairedLoader, load_size, random_crop
from gan.errors import GanError
from gan.export import load_export
from gan.io import load_torch
from gan.models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    PatchDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    cycle_loss,
    discriminator_loss,
    generator_adversarial,
    identity_loss,
    resolve_blocks,
)
from gan.models.family import DataInfo
from gan.models.image_pool import ImagePool
from gan.objectives import build_objective
from gan.train_config import OptimConfig
from gan.training.checkpoint import list_checkpoints
from gan.training.loop import train
from gan.training.session import lr_factor
from gan.training.streams import Streams
from gan.translate import translate

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(data, tmp_path, **overrides) -> TrainConfig:
    cfg = {
        "data": str(data),
        "runs_dir": str(tmp_path / "runs"),
        "run": "cg",
        "steps": 6,
        "batch_size": 4,
        "device": "cpu",
        "model": {
            "family": "cyclegan",
            "ngf": 4,
            "ndf": 4,
            "n_blocks": 1,
            "n_layers_d": 2,
            "pool_size": 6,
        },
        "lr_schedule": {"constant_steps": 2, "decay_steps": 6},
        "augment": {"flip": True},
        "log_every": 3,
        "sample_every": 6,
        "checkpoint_every": 3,
        "keep_checkpoints": 5,
        "grid_size": 16,
        "progress": False,
        **overrides,
    }
    return TrainConfig.model_validate(cfg)


# -- networks -----------------------------------------------------------------------------
@pytest.mark.parametrize("resolution,blocks", [(32, 6), (64, 6), (256, 9)])
def test_generator_and_patch_discriminator_shapes(resolution, blocks):
    n = resolve_blocks("auto", resolution)
    assert n == blocks
    G = ResnetGenerator(3, 4, n)
    assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == blocks
    D = PatchDiscriminator(3, 4, 3)
    x = torch.rand(2, 3, resolution, resolution) * 2 - 1
    with torch.no_grad():
        y = G(x)
        logits = D(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    side = resolution // 8 - 2  # three stride-2 convs, two 4x4 stride-1 convs
    assert logits.shape == (2, 1, side, side)


def test_default_widths_match_the_official_networks():
    """ResNet-9 generator and 70x70 PatchGAN at ngf = ndf = 64, 3 channels."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ResnetGenerator(3, 64, 9)) == 11_378_179
    assert count(PatchDiscriminator(3, 64, 3)) == 2_764_737


def test_family_builds_both_directions_and_rejects_bad_settings():
    cfg = CycleGANConfig(ngf=4, ndf=4, n_blocks=2, n_layers_d=2)
    family = CycleGAN(cfg, DataInfo(16, 1, 10, 2), OptimConfig(), torch.device("cpu"), lambda x: x)
    assert set(family.nets["G"]) == {"AtoB", "BtoA"} and set(family.nets["D"]) == {"A", "B"}
    assert CycleGAN.translate(family.nets["G"], torch.zeros(1, 1, 16, 16), "BtoA").shape[-1] == 16
    with pytest.raises(GanError, match="direction"):
        CycleGAN.translate(family.nets["G"], torch.zeros(1, 1, 16, 16), "AtoA")
    with pytest.raises(ValueError, match="n_layers_d=3"):
        CycleGAN(CycleGANConfig(n_layers_d=3), DataInfo(16, 1, 10, 2), OptimConfig(), "cpu", None)
    with pytest.raises(ValueError, match="domains A and B"):
        CycleGAN(cfg, DataInfo(16, 1, 10, 1), OptimConfig(), "cpu", None)
    with pytest.raises(ValueError):
        CycleGANConfig(n_blocks=0)


# -- losses -------------------------------------------------------------------------------
def test_cycle_and_identity_losses_are_weighted_l1():
    real = torch.tensor([[[[0.0, 1.0], [-1.0, 0.5]]]])
    rec = torch.tensor([[[[0.5, 1.0], [0.0, 0.5]]]])  # |diff| = 0.5, 0, 1, 0 -> mean 0.375
    assert cycle_loss(real, rec, 10.0).item() == pytest.approx(3.75)
    assert identity_loss(real, rec, 10.0 * 0.5).item() == pytest.approx(1.875)
    assert cycle_loss(real, real, 10.0).item() == 0.0


def test_adversarial_terms_follow_the_paper():
    real, fake = torch.full((2, 1, 2, 2), 0.5), torch.full((2, 1, 2, 2), -1.0)
    # lsgan: D = 0.5 * (mean (real - 1)^2 + mean fake^2); G = mean (fake - 1)^2
    lsgan, hinge = build_objective("lsgan"), build_objective("hinge")
    assert discriminator_loss(lsgan, real, fake).item() == pytest.approx(0.5 * (0.25 + 1.0))
    assert generator_adversarial(lsgan, fake).item() == pytest.approx(4.0)
    assert generator_adversarial(hinge, fake).item() == pytest.approx(1.0)
    sp = torch.nn.functional.softplus
    expected = 0.5 * (sp(torch.tensor(-0.5)) + sp(torch.tensor(-1.0))).item()
    nonsaturating = build_objective("nonsaturating")
    assert discriminator_loss(nonsaturating, real, fake).item() == pytest.approx(expected)


# -- image pool ---------------------------------------------------------------------------
def test_image_pool_fills_then_swaps_with_probability_half():
    pool = ImagePool(4, seed=1)
    first = torch.arange(4.0)[:, None]
    assert torch.equal(pool.query(first), first) and len(pool) == 4
    returned_old = 0
    for k in range(200):
        new = torch.full((1, 1), 100.0 + k)
        before = torch.stack(pool.images).clone()
        out = pool.query(new)
        if out.item() == new.item():  # returned as is, pool unchanged
            assert torch.equal(torch.stack(pool.images), before)
        else:  # a stored image came out and the new one took its place
            returned_old += 1
            assert out.item() in before.flatten().tolist()
            slot = (before.flatten() == out.item()).nonzero().item()
            assert pool.images[slot].item() == new.item()
        assert len(pool) == 4
    assert 70 < returned_old < 130  # Binomial(200, 0.5): 100 +- 30 is > 99.9%


def test_image_pool_is_deterministic_and_resumes_exactly():
    stream = [torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    a, b = ImagePool(5, seed=7), ImagePool(5, seed=7)
    assert all(torch.equal(a.query(x), b.query(x)) for x in stream)
    c = ImagePool(5, seed=0)
    c.load_state_dict(load_roundtrip(a.state_dict()))
    more = [
        torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(50 + i)) for i in range(8)
    ]
    assert all(torch.equal(a.query(x), c.query(x)) for x in more)
    assert torch.equal(torch.stack(a.images), torch.stack(c.images))
    assert torch.equal(ImagePool(0).query(stream[0]), stream[0])


def load_roundtrip(state, tmp=None):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# -- unpaired loader ----------------------------------------------------------------------
def test_unpaired_loader_crops_flips_and_resumes():
    images, labels, domains = unpaired_tensors(16)
    split = SplitData(images, labels, domains, {})
    loader = UnpairedLoader(
        split, 8, torch.device("cpu"), Streams(3), flip=True, load_scale=286 / 256
    )
    assert load_size(256, 286 / 256) == 286 and loader.images["A"].shape[-1] == 18
    batch = loader.next()
    assert batch["A"].shape == batch["B"].shape == (8, 1, 16, 16)
    assert batch["A"].min() >= -1 and batch["B"].max() <= 1
    assert set(batch["labels_A"].tolist()) <= set(range(10))
    state = load_roundtrip(loader.state_dict())
    expected = [loader.next() for _ in range(60)]  # wraps around both domains
    other = UnpairedLoader(
        split, 8, torch.device("cpu"), Streams(99), flip=True, load_scale=286 / 256
    )
    other.load_state_dict(state)
    for want in expected:
        got = other.next()
        assert all(torch.equal(got[k], want[k]) for k in want)
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(5, 1, 1, 1)
    crops = random_crop(x, 2, torch.Generator().manual_seed(0))
    for c in crops:  # each crop is a contiguous 2x2 window of the 4x4 grid
        top_left = int(c[0, 0, 0])
        r, col = divmod(top_left, 4)
        assert torch.equal(c[0], x[0, 0, r : r + 2, col : col + 2])
    with pytest.raises(GanError, match="domain B"):
        UnpairedLoader(split.domain(0), 8, torch.device("cpu"), Streams(0))


# -- training -----------------------------------------------------------------------------
def test_lr_is_constant_then_decays_linearly_to_zero(unpaired16, tmp_path):
    assert [lr_factor(s, 2, 4) for s in range(7)] == [1, 1, 1, 0.75, 0.5, 0.25, 0]
    seen = []
    cfg = tiny(unpaired16, tmp_path, steps=6, checkpoint_every=100, sample_every=100)
    cfg.lr_schedule.constant_steps, cfg.lr_schedule.decay_steps = 2, 4
    train(
        cfg,
        hooks=[
            lambda done, s: seen.append([o.param_groups[0]["lr"] for o in s.optimizers.values()])
        ],
    )
    base = cfg.optim.g_lr
    for done, lrs in enumerate(seen, start=1):
        assert lrs == pytest.approx([base * lr_factor(done, 2, 4)] * 2), done
    assert seen[-1] == [0.0, 0.0]


def test_single_domain_data_is_refused_naming_the_key(digits16, tmp_path):
    with pytest.raises(GanError, match="train.model: cyclegan needs unpaired data"):
        train(tiny(digits16, tmp_path))


def test_interrupted_and_resumed_run_equals_uninterrupted(unpaired16, tmp_path):
    full = tiny(unpaired16, tmp_path / "full")
    train(full)
    part = tiny(unpaired16, tmp_path / "part", steps=3)
    train(part)
    resumed = tiny(unpaired16, tmp_path / "part")
    summary = train(resumed)
    assert summary["resumed_from_step"] == 3
    a = load_torch(list_checkpoints(full.run_dir)[-1])
    b = load_torch(list_checkpoints(resumed.run_dir)[-1])
    pools = a["rng"]["family"]
    assert len(pools["pool_A"]["images"]) == 6  # the pool filled and is compared too
    for key in ("step", "nets", "optimizers", "schedulers", "rng"):
        assert_same_state(a[key], b[key], key)
    exported = load_export(full.run_dir / "export")
    assert exported.meta["family"] == "cyclegan" and set(exported.generator) == {"AtoB", "BtoA"}


@pytest.fixture(scope="module")
def trained(unpaired16, tmp_path_factory):
    """A one-step run: enough for an export that translates."""
    cfg = tiny(unpaired16, tmp_path_factory.mktemp("trained"), steps=1, sample_every=100)
    train(cfg)
    return cfg.run_dir


def test_translate_writes_one_png_per_input(trained, tmp_path):
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    Image.new("L", (20, 30), 128).save(src / "a.png")
    Image.new("RGB", (16, 16), (10, 200, 30)).save(src / "a.jpg")  # same stem as a.png
    Image.new("L", (64, 64), 0).save(src / "nested" / "b.bmp")
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    count = translate(str(trained / "export"), "AtoB", src, out, batch_size=2)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert count == 3 and written == ["a.jpg.png", "a.png.png", "nested/b.png"]
    for name in written:
        with Image.open(out / name) as img:
            assert img.size == (16, 16) and img.mode == "L"
    with pytest.raises(GanError, match="direction"):
        translate(str(trained / "export"), "sideways", src, out)


def test_evaluate_measures_both_directions_cycle_error_and_classes(unpaired16, trained, tmp_path):
    from gan.config import ClassifierConfig, EvaluateConfig
    from gan.metrics.classifier import train_classifier
    from gan.metrics.evaluate import evaluate

    clf = tmp_path / "classifier"
    train_classifier(ClassifierConfig(data=str(unpaired16), output=str(clf), epochs=1))
    cfg = EvaluateConfig(
        data=str(unpaired16),
        run_dir=str(trained.parent / trained.name),
        output=str(tmp_path / "eval"),
        classifier=str(clf),
        metrics=["fid", "kid"],
        kid_subset_size=20,
        cache_dir=str(tmp_path / "cache"),
    )
    result = evaluate(cfg)
    m = result["metrics"]
    for key in ("fid_AtoB", "fid_BtoA", "kid_AtoB", "kid_BtoA", "fid", "kid"):
        assert key in m and m[key] == m[key], key  # present and not NaN
    assert m["fid"] == pytest.approx((m["fid_AtoB"] + m["fid_BtoA"]) / 2)
    assert 0 <= m["cycle_l1_A"] <= 1 and 0 <= m["cycle_l1_B"] <= 1
    assert 0 <= m["class_preserved_AtoB"] <= 1 and "class_preserved" in m
    assert result["protocol"]["task"] == "translation"
    assert (tmp_path / "eval" / "samples.png").is_file()


def test_evaluate_measures_the_distance_to_the_ground_truth(trained, tmp_path):
    """The built-in pair's truth folder, matched to test images through the manifest's
    source paths; the figure is checked against an independent decode of the PNGs."""
    import numpy as np

    from gan.config import ClassifierConfig, EvaluateConfig, PrepareConfig, PreprocessConfig
    from gan.data.builtin import prepare
    from gan.data.preprocess import preprocess
    from gan.data.shards import load_split
    from gan.metrics.classifier import train_classifier
    from gan.metrics.evaluate import evaluate
    from gan.metrics.translation import translate_images

    raw, truth, data = tmp_path / "raw", tmp_path / "truth", tmp_path / "data"
    prepare(PrepareConfig(dataset="digits-restyled", out=str(raw), truth=str(truth)))
    preprocess(PreprocessConfig(input=str(raw), output=str(data), resolution=16, channels=1))
    clf = tmp_path / "classifier"
    train_classifier(ClassifierConfig(data=str(data), output=str(clf), epochs=1))
    cfg = EvaluateConfig(
        data=str(data),
        run_dir=str(trained),
        output=str(tmp_path / "eval"),
        classifier=str(clf),
        metrics=["kid"],
        kid_subset_size=20,
        cache_dir=str(tmp_path / "cache"),
        truth=str(truth),
    )
    m = evaluate(cfg)["metrics"]

    test_a = load_split(data, "test").domain(0)
    assert len(test_a.files) == len(test_a) and all(f.startswith("testA/") for f in test_a.files)
    assert [int(f.split("/")[1]) for f in test_a.files] == test_a.labels.tolist()  # in order
    exported = load_export(trained / "export")
    fake_b = translate_images(exported.family, exported.generator, test_a.images, "AtoB", 64)
    expected = []
    for rel in test_a.files:
        with Image.open(truth / rel) as img:
            expected.append(np.asarray(img.resize((16, 16), Image.Resampling.LANCZOS)))
    want = (fake_b[:, 0].float() - torch.from_numpy(np.stack(expected)).float()).abs().mean()
    assert m["truth_l1_AtoB"] == pytest.approx(float(want) / 255, rel=1e-6)
    assert 0 < m["truth_l1_BtoA"] < 1

    (truth / test_a.files[3]).unlink()
    with pytest.raises(GanError, match=f"{test_a.files[3]}"):
        evaluate(cfg)
