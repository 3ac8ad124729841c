"""StyleGAN2 as a family: parity through the registry, lazy phases, exact resume, sampling."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_state, straight_and_resumed
from test_training import tiny

from gan.cli import main
from gan.errors import GanError
from gan.export import load_export
from gan.io import load_torch
from gan.models import get_family
from gan.models.family import DataInfo
from gan.sample import sample
from gan.train_config import OptimConfig
from gan.training.checkpoint import list_checkpoints
from gan.training.loop import train

MODEL = {
    "family": "stylegan2",
    "z_dim": 16,
    "w_dim": 16,
    "mapping_layers": 2,
    "channel_base": 128,
    "channel_max": 16,
    "r1_every": 2,
    "pl_every": 3,
}


def sg_tiny(data, tmp_path, **overrides):
    return tiny(
        data, tmp_path, batch_size=8, model={**MODEL, **overrides.pop("model", {})}, **overrides
    )


def count(net) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("res", "base", "g_params", "d_params"),
    [(1024, 32768, 30_370_060, 29_012_513), (256, 16384, 24_767_458, 24_001_089)],
)
def test_parity_through_the_family_registry(res, base, g_params, d_params):
    family = get_family("stylegan2")
    cfg = family.config_class.model_validate(
        {"family": "stylegan2", "z_dim": 512, "w_dim": 512, "mapping_layers": 8,
         "channel_base": base, "channel_max": 512}
    )  # fmt: skip
    fam = family(cfg, DataInfo(res, 3), OptimConfig(), torch.device("cpu"), lambda x: x)
    assert count(fam.nets["G"]) == g_params
    assert count(fam.nets["D"]) == d_params


def test_lazy_phases_run_on_their_steps(digits16, tmp_path):
    cfg = sg_tiny(digits16, tmp_path, steps=6, log_every=1)
    train(cfg)
    import pandas as pd

    log = pd.read_csv(cfg.run_dir / "log.csv")
    # a lazy phase's column repeats its latest value until it runs again
    r1 = list(log["D_r1_r1"])
    assert r1[0] == r1[1] != r1[2] and r1[2] == r1[3] != r1[4]  # steps 0, 2, 4
    pl = list(log["G_pl_pl_length"])
    assert pl[0] == pl[1] == pl[2] != pl[3]  # steps 0, 3
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    (d_group,) = state["optimizers"]["D"]["param_groups"]
    (g_group,) = state["optimizers"]["G"]["param_groups"]
    assert d_group["lr"] == pytest.approx(0.002 * 2 / 3)  # official lr, r1 every 2
    assert g_group["lr"] == pytest.approx(0.002 * 3 / 4)  # pl every 3
    assert d_group["betas"] == pytest.approx((0.0, 0.99 ** (2 / 3)))
    assert float(state["family_state"]["pl_mean"]) > 0


@pytest.mark.parametrize("variant", [{}, {"loss": "wgan-gp", "conditional": True}])
def test_interrupted_and_resumed_run_equals_uninterrupted(digits16, tmp_path, variant):
    _, _, a, b = straight_and_resumed(lambda d: sg_tiny(digits16, d, model=variant), tmp_path)
    for key in ("nets", "optimizers", "rng", "family_state"):
        assert_same_state(a[key], b[key], key)


@pytest.fixture(scope="module")
def conditional_export(digits16, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sg2")
    cfg = sg_tiny(digits16, tmp, steps=2, model={"conditional": True})
    train(cfg)
    return cfg.run_dir / "export"


def test_truncation_zero_gives_the_same_image_for_every_seed(conditional_export):
    exported = load_export(conditional_export)
    G, fam = exported.generator, exported.family
    with torch.no_grad():
        a = fam.generate(G, 4, torch.Generator().manual_seed(0), torch.tensor([3] * 4), 0.0)
        b = fam.generate(G, 4, torch.Generator().manual_seed(1), torch.tensor([3] * 4), 0.0)
        free = fam.generate(G, 4, torch.Generator().manual_seed(0), torch.tensor([3] * 4), 1.0)
    assert torch.allclose(a, a[:1].expand_as(a)) and torch.allclose(a, b)
    assert not torch.allclose(free[0], free[1])
    assert float(exported.generator.w_avg.abs().sum()) > 0  # exported with G


def test_cli_sample_labels_reach_the_generator(conditional_export, tmp_path):
    base = ["sample", "--model", str(conditional_export), "-n", "4", "--seed", "7"]
    assert main([*base, "--labels", "3", "--out", str(tmp_path / "three.png")]) == 0
    assert main([*base, "--labels", "5", "--out", str(tmp_path / "five.png")]) == 0
    three, five = (tmp_path / "three.png").read_bytes(), (tmp_path / "five.png").read_bytes()
    assert three != five  # same latents, another class asked for: other images


def test_mixing_grid_and_interpolation(conditional_export, tmp_path):
    out = sample(str(conditional_export), 0, tmp_path / "mix.png", mix=([1, 2], [3, 4, 5]))
    assert out.is_file()
    strip = sample(str(conditional_export), 0, tmp_path / "walk.png", interpolate=[1, 2, 3])
    assert strip.is_file() and strip.with_suffix(".gif").is_file()


def test_unconditional_generator_refuses_labels(digits16, tmp_path):
    cfg = sg_tiny(digits16, tmp_path, steps=1)
    train(cfg)
    with pytest.raises(GanError, match="unconditional"):
        sample(str(cfg.run_dir / "export"), 4, tmp_path / "x.png", labels=[3])


def test_conditional_needs_labels_and_resolution_is_checked(digits16, tmp_path):
    family = get_family("stylegan2")
    cfg = family.config_class.model_validate({"family": "stylegan2", "conditional": True})
    with pytest.raises(ValueError, match="labelled data"):
        family(cfg, DataInfo(16, 1, 0), OptimConfig(), torch.device("cpu"), lambda x: x)
    with pytest.raises(ValueError, match="resolutions 16 to 1024"):
        family.build_generator(cfg, DataInfo(8, 1, 10))


pytest_plugins = ["test_hpo_support"]  # fixtures: params_file (tiny params + classifier)


def test_hpo_evaluate_and_promote_work_on_stylegan2(params_file, tmp_path):
    """The space of params-stylegan2.yaml's comments searched for one trial, the trial's
    export evaluated and promoted by the unchanged stages."""
    import json

    from gan.config import load_params
    from gan.hpo.study import best, run
    from gan.metrics.evaluate import evaluate
    from gan.registry.promote import promote

    space = {
        "model.r1_gamma": {"low": 1e-3, "high": 10.0, "log": True},
        "model.style_mixing": {"low": 0.0, "high": 0.9},
        "model.pl_weight": {"low": 0.0, "high": 4.0},
        "optim.g_lr": {"low": 5e-4, "high": 5e-3, "log": True},
    }
    model = json.dumps({**MODEL, "r1_every": 2, "pl_every": 2})
    params = load_params(
        params_file,
        [f"train.model={model}", "hpo.n_trials=1", "hpo.budget_steps=4", "hpo.report_every=4",
         f"hpo.space={json.dumps(space)}", "hpo.enqueue_current=false", "train.steps=4",
         "promote.allow_weak_extractor=true"],  # the fixture's one-epoch classifier is weak
    )  # fmt: skip
    assert run(params)["ran"] == 1
    record = best(params)
    assert record["value"] > 0 and set(record["params"]) == set(space)
    train(params.train)
    metrics = evaluate(params.evaluate)["metrics"]
    assert metrics["fid"] > 0 and 0 <= metrics["classifier_confident"] <= 1
    decision = promote(params.promote, params.evaluate)
    assert decision["decision"] == "promoted"
