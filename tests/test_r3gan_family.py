"""R3GAN as a family: D's and G's losses are the official trainer's, training end to end,
exact resume, the EMA half-life ramp, class-conditional sampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, straight_and_resumed
from test_training import tiny

from gan.data.shards import load_split
from gan.device import pick_precision
from gan.errors import GanError
from gan.export import load_export
from gan.models.family import StepContext
from gan.sample import sample
from gan.training.loop import train
from gan.training.session import Session

MODEL = {
    "family": "r3gan",
    "z_dim": 8,
    "class_dim": 4,
    "widths": [16, 16, 8],  # 4, 8, 16 px
    "cardinality": [4, 4, 2],
    "blocks": [1, 1, 1],
    "conditional": True,
    "r1_gamma": 1.0,
    "r2_gamma": 0.5,
    "decay_kimg": 0.064,  # 8 steps of 8 images
    "ema_kimg": 0.032,
}


def r3_tiny(data, tmp_path, **overrides):
    model = {**MODEL, **overrides.pop("model", {})}
    return tiny(data, tmp_path, batch_size=8, threads=1, model=model, **overrides)


def _session(cfg) -> Session:
    """A session in fp32 whose D has trained-looking weights: the zero-initialised last
    convolutions of the blocks would make D nearly linear and R1 nearly constant."""
    session = Session(
        cfg, load_split(cfg.data, "train"), pick_precision(torch.device("cpu"), "fp32")
    )
    with torch.no_grad():
        for net in ("G", "D"):
            for p in session.family.nets[net].parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return session


def _grads(loss: torch.Tensor, net: torch.nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(net.parameters())))


def test_d_and_g_losses_are_the_official_trainers(digits16, tmp_path):
    """R3GAN/Trainer.py written out: D on the reals and the detached fakes, softplus of the
    relativistic logits plus (gamma / 2) * (R1 + R2), R1 and R2 the squared gradient norms
    at the real and fake images; G on its own real batch with fresh latents."""
    cfg = r3_tiny(digits16, tmp_path)
    session = _session(cfg)
    fam, model = session.family, cfg.model
    G, D = fam.nets["G"], fam.nets["D"]
    d_phase, g_phase = fam.phases()
    assert (d_phase.name, g_phase.name) == ("D_main", "G_main")
    for phase, net in ((d_phase, D), (g_phase, G)):
        ctx = StepContext(0, batch=session.loader.next())
        noise = fam.noise.get_state()
        ours, logs = phase.loss(ctx)
        fam.noise.set_state(noise)
        real, n = ctx.batch["images"], len(ctx.batch["images"])
        c = F.one_hot(ctx.batch["labels"].long(), 10).float()
        z = torch.randn(n, model.z_dim, generator=fam.noise)
        if net is D:
            real = real.detach().requires_grad_(True)
            fake = G(z, c).detach().requires_grad_(True)
            real_logits, fake_logits = D(real, c), D(fake, c)
            (r1,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            (r2,) = torch.autograd.grad(fake_logits.sum(), fake, create_graph=True)
            r1, r2 = r1.square().sum([1, 2, 3]), r2.square().sum([1, 2, 3])
            official = F.softplus(-(real_logits - fake_logits)) + (
                model.r1_gamma / 2 * r1 + model.r2_gamma / 2 * r2
            )
            assert float(logs["r1"]) == pytest.approx(float(r1.detach().mean()), rel=1e-5)
            assert float(logs["r2"]) == pytest.approx(float(r2.detach().mean()), rel=1e-5)
        else:
            official = F.softplus(-(D(G(z, c), c) - D(real, c).detach()))
        official = official.mean()
        assert float(ours.detach()) == pytest.approx(float(official.detach()), rel=1e-5)
        for a, b in zip(_grads(ours, net), _grads(official, net), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_one_d_pass_serves_the_loss_and_both_penalties(digits16, tmp_path):
    """D judges the reals and the fakes once per D step, in one pass over both (one
    augmentation draw), and R1/R2 differentiate that pass, as the official trainer's
    two passes do: D mixes no samples, so judging the halves apart gives the same logits."""
    session = _session(r3_tiny(digits16, tmp_path))
    D = session.family.nets["D"]
    passes = []
    D.register_forward_hook(lambda *_: passes.append(1))
    d_phase = session.family.phases()[0]
    loss, logs = d_phase.loss(StepContext(0, batch=session.loader.next()))
    assert len(passes) == 1 and float(logs["r1"]) > 0 and float(logs["r2"]) > 0
    x, c = torch.randn(6, 1, 16, 16), F.one_hot(torch.arange(6) % 3, D.c_dim).float()
    with torch.no_grad():
        whole, halves = D(x, c), torch.cat([D(x[:2], c[:2]), D(x[2:], c[2:])])
    assert torch.allclose(whole, halves, atol=1e-5)


def test_trains_with_the_official_adam_and_resumes_exactly(digits16, tmp_path):
    _, _, a, b = straight_and_resumed(lambda d: r3_tiny(digits16, d), tmp_path)
    for key in ("nets", "optimizers", "rng"):
        assert_same_state(a[key], b[key], key)
    g, d = (a["optimizers"][k]["param_groups"][0] for k in ("G", "D"))
    assert g["betas"][0] == d["betas"][0] == 0.0


def test_lazy_r1_r2_over_d_steps_weight_the_due_update(digits16, tmp_path):
    """`d_steps` 2 and `penalty_every` 2: the first of a step's two D updates carries R1/R2
    times 2 and the second is a plain update without them, so the penalty per update is the
    official one on average."""
    cfg = r3_tiny(digits16, tmp_path, model={"d_steps": 2, "penalty_every": 2})
    session = _session(cfg)
    fam, model = session.family, cfg.model
    d_main = fam.phases()[0]
    assert d_main.repeats == 2
    batch = session.loader.next()
    noise = fam.noise.get_state()
    due, logs = d_main.loss(StepContext(3, batch=batch, repeat=0))
    fam.noise.set_state(noise)
    plain, skipped = d_main.loss(StepContext(3, batch=batch, repeat=1))
    assert "r1" not in skipped and "r2" not in skipped
    penalties = model.r1_gamma / 2 * logs["r1"] + model.r2_gamma / 2 * logs["r2"]
    assert float(due) == pytest.approx(float(plain + 2 * penalties), rel=1e-5)


def test_lazy_r1_r2_over_d_steps_resume_exactly(digits16, tmp_path):
    model = {"d_steps": 2, "penalty_every": 3}  # due updates straddle the steps
    _, _, a, b = straight_and_resumed(lambda d: r3_tiny(digits16, d, model=model), tmp_path)
    for key in ("nets", "optimizers", "rng"):
        assert_same_state(a[key], b[key], key)


def test_the_ema_half_life_ramps_up_from_zero(digits16, tmp_path):
    """0 at the start (G_ema copies G), `ema_kimg` once the schedule's images are seen."""
    fam = _session(r3_tiny(digits16, tmp_path)).family
    assert fam.ema_beta(0, 8, None) == 0.0
    assert fam.ema_beta(8, 8, None) == pytest.approx(0.5 ** (8 / 32))
    assert fam.ema_beta(100, 8, None) == fam.ema_beta(8, 8, None)
    middle = 0.5 ** (8 / 16)  # half-way through the cosine: half the final half-life
    assert fam.ema_beta(4, 8, None) == pytest.approx(middle)


@pytest.fixture(scope="module")
def export(digits16, tmp_path_factory):
    cfg = r3_tiny(digits16, tmp_path_factory.mktemp("r3"), steps=2)
    train(cfg)
    return cfg.run_dir / "export"


def test_labels_choose_the_class(export, tmp_path):
    exported = load_export(export)
    G, fam = exported.generator, exported.family
    assert exported.conditional and exported.meta["family"] == "r3gan"
    with torch.no_grad():
        three = fam.generate(G, 2, torch.Generator().manual_seed(0), torch.tensor([3, 3]))
        five = fam.generate(G, 2, torch.Generator().manual_seed(0), torch.tensor([5, 5]))
    assert three.shape == (2, 1, 16, 16) and not torch.allclose(three, five)
    assert sample(str(export), 20, tmp_path / "grid.png", labels=list(range(10))).is_file()


def test_unconditional_generator_refuses_labels(digits16, tmp_path):
    cfg = r3_tiny(digits16, tmp_path, steps=1, model={"conditional": False})
    train(cfg)
    with pytest.raises(GanError, match="unconditional"):
        sample(str(cfg.run_dir / "export"), 4, tmp_path / "x.png", labels=[3])


def test_the_fingerprint_counts_r3gan_keys_off_their_defaults():
    """The fingerprint rule for a family added after HELD_AT_ANY_VALUE was frozen: a key
    written at its default resumes the same run, any other value starts another; the
    preset's fingerprint is pinned (its checkpoints resume across code changes)."""
    from conftest import REPO

    from gan.config import dump_section, load_params, parse_params
    from gan.training.fingerprint import fingerprint

    def fp(model):
        train = parse_params({"train": {"model": {"family": "r3gan", **model}}}).train
        return fingerprint(dump_section(train), "h")

    assert fp({}) == fp({"gamma_end": 0.1, "widths": [768] * 4}) != fp({"gamma_end": 0.2})
    preset = load_params(REPO / "params-r3gan.yaml").train
    assert fingerprint(dump_section(preset), "h") == "b6e082c681a2c75b"


pytest_plugins = ["test_hpo_support"]  # fixtures: params_file (tiny params + classifier)


def test_hpo_evaluate_and_promote_work_on_r3gan(params_file):
    """params-r3gan.yaml's search space for one trial, the trial's export evaluated and
    promoted by the unchanged stages."""
    import json

    from gan.config import load_params
    from gan.hpo.study import best, run
    from gan.metrics.evaluate import evaluate
    from gan.registry.promote import promote

    space = {
        "optim.g_lr": {"low": 5e-5, "high": 1e-3, "log": True},
        "optim.d_lr": {"low": 5e-5, "high": 1e-3, "log": True},
        "model.r1_gamma": {"low": 1e-3, "high": 1.0, "log": True},
    }
    params = load_params(
        params_file,
        [f"train.model={json.dumps(MODEL)}", "hpo.n_trials=1", "hpo.budget_steps=4",
         "hpo.report_every=4", f"hpo.space={json.dumps(space)}", "hpo.enqueue_current=false",
         "train.steps=4", "promote.allow_weak_extractor=true"],
    )  # fmt: skip
    assert run(params)["ran"] == 1
    assert set(best(params)["params"]) == set(space)
    train(params.train)
    metrics = evaluate(params.evaluate)["metrics"]
    assert metrics["fid"] > 0 and 0 <= metrics["classifier_confident"] <= 1
    assert promote(params.promote, params.evaluate)["decision"] == "promoted"
