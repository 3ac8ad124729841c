"""BigGAN as a family: parity through the registry, training phases, exact resume with the
spectral-norm vectors, truncation, class-conditional sampling, labels required."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_state, digits_tensors, straight_and_resumed, write_dataset
from test_training import tiny

from gan.data.shards import load_split
from gan.device import pick_precision
from gan.errors import GanError
from gan.export import load_export
from gan.losses import r1_penalty
from gan.models import get_family
from gan.models.family import DataInfo, StepContext
from gan.sample import sample
from gan.train_config import OptimConfig
from gan.training.loop import train
from gan.training.session import Session

MODEL = {
    "family": "biggan",
    "ch": 8,
    "z_dim": 20,
    "shared_dim": 8,
    "attention": 16,
    "standing_stats": 2,
}


def bg_tiny(data, tmp_path, **overrides):
    model = {**MODEL, **overrides.pop("model", {})}
    return tiny(data, tmp_path, batch_size=8, threads=1, model=model, **overrides)


@pytest.fixture(scope="module")
def digits32(tmp_path_factory):
    images, labels = digits_tensors(32)  # BigGAN's plans start at 32 px
    return write_dataset(tmp_path_factory.mktemp("digits32"), images[:400], labels[:400])


def count(net) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("res", "model", "classes", "g_params", "d_params"),
    [
        (128, {"ch": 96, "z_dim": 120, "attention": 64}, 1000, 70_433_988, 87_982_370),
        (32, {"ch": 64, "z_dim": 128, "attention": 0}, 10, 4_373_251, 4_207_361),
    ],
)
def test_parity_through_the_family_registry(monkeypatch, res, model, classes, g_params, d_params):
    monkeypatch.setattr(torch.nn.init, "orthogonal_", lambda w, *a, **k: w)  # counts only
    family = get_family("biggan")
    cfg = family.config_class.model_validate(
        {"family": "biggan", "shared_dim": 128, "hier": True, **model}
    )
    fam = family(cfg, DataInfo(res, 3, classes), OptimConfig(), torch.device("cpu"), lambda x: x)
    assert count(fam.nets["G"]) == g_params
    assert count(fam.nets["D"]) == d_params


def test_trains_with_official_optimiser_defaults_and_resumes_exactly(digits32, tmp_path):
    _, _, a, b = straight_and_resumed(lambda d: bg_tiny(digits32, d), tmp_path)
    for key in ("nets", "optimizers", "rng"):
        assert_same_state(a[key], b[key], key)
    assert any(k.endswith("weight_u") for k in a["nets"]["G"])  # power-iteration vectors
    g, d = (a["optimizers"][k]["param_groups"][0] for k in ("G", "D"))
    assert (g["lr"], d["lr"]) == (1e-4, 4e-4) and g["betas"] == (0.0, 0.999)
    assert g["eps"] == d["eps"] == 1e-6


@pytest.fixture(scope="module")
def export(digits32, tmp_path_factory):
    cfg = bg_tiny(digits32, tmp_path_factory.mktemp("bg"), steps=2)
    train(cfg)
    return cfg.run_dir / "export"


def test_truncation_bounds_every_latent(export):
    G = load_export(export).generator
    fam = get_family("biggan")
    z = fam.latents(G, 256, torch.Generator().manual_seed(0), truncation=0.5)
    assert float(z.abs().max()) <= 0.5 and z.shape == (256, G.z_dim)
    assert float(fam.latents(G, 256, torch.Generator().manual_seed(0)).abs().max()) > 1.0


def test_labels_choose_the_class_and_interpolation_walks_between_classes(export, tmp_path):
    exported = load_export(export)
    G, fam = exported.generator, exported.family
    with torch.no_grad():
        three = fam.generate(G, 2, torch.Generator().manual_seed(0), torch.tensor([3, 3]))
        five = fam.generate(G, 2, torch.Generator().manual_seed(0), torch.tensor([5, 5]))
    assert not torch.allclose(three, five)  # conditional BN: the class changes the output
    out = sample(str(export), 0, tmp_path / "walk.png", interpolate=[1], labels=[3, 8], frames=4)
    assert out.is_file() and out.with_suffix(".gif").is_file()
    assert sample(str(export), 20, tmp_path / "grid.png", labels=list(range(10))).is_file()


def test_unlabelled_data_is_refused_naming_the_data(tmp_path):
    images, labels = digits_tensors(32)
    data = write_dataset(tmp_path / "flat", images[:100], torch.zeros(100, dtype=torch.long))
    with pytest.raises(GanError, match=r"labelled data.*flat"):
        train(bg_tiny(data, tmp_path, steps=1))


def test_rpgan_gammas_add_r1_and_r2_in_biggan(digits32, tmp_path):
    from test_objectives import rpgan_with_gammas_logs_both_penalties

    model = {"loss": "rpgan", "r1_gamma": 1.0, "r2_gamma": 0.5, "d_steps": 1}
    cfg = bg_tiny(digits32, tmp_path, steps=2, log_every=1, model=model)
    rpgan_with_gammas_logs_both_penalties(cfg)


def test_lazy_r1_r2_reuse_the_losss_two_d_passes(digits32, tmp_path):
    """With `penalty_every` 2 and one D step per G step, D's updates of even steps carry
    R1/R2 (weighted by 2) and the others none, and a penalised update judges the images no
    more often than a plain one: the penalties differentiate the loss's logits, and equal
    R1/R2 from judging again (D in eval mode: no power iteration between the two)."""
    model = {"loss": "rpgan", "r1_gamma": 1.0, "r2_gamma": 0.5, "d_steps": 1,
             "penalty_every": 2}  # fmt: skip
    cfg = bg_tiny(digits32, tmp_path, steps=1, model=model)
    session = Session(cfg, load_split(cfg.data, "train"), pick_precision(torch.device("cpu")))
    fam, D = session.family, session.family.nets["D"]
    D.eval()
    passes = []
    D.register_forward_hook(lambda *_: passes.append(1))
    d_main = fam.phases()[0]
    batch = session.loader.next()
    _, due = d_main.loss(StepContext(0, batch=batch))
    assert len(passes) == 2 and float(due["r1"]) > 0 and float(due["r2"]) > 0
    _, skipped = d_main.loss(StepContext(1, batch=batch))
    assert len(passes) == 4 and "r1" not in skipped
    again = r1_penalty(lambda x: D(x, batch["labels"]), batch["images"])
    assert float(due["r1"]) == pytest.approx(float(again), rel=1e-4)
