"""The trainer on a real (tiny) digits dataset: outputs, exact resume, failure handling."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import assert_same_state

from gan.config import TrainConfig
from gan.errors import GanError
from gan.export import load_export
from gan.io import load_torch
from gan.models import FAMILIES
from gan.training.checkpoint import list_checkpoints
from gan.training.loop import train


def tiny(data, tmp_path, **overrides) -> TrainConfig:
    cfg = {
        "data": str(data),
        "runs_dir": str(tmp_path / "runs"),
        "run": "t",
        "steps": 12,
        "batch_size": 16,
        "device": "cpu",
        "model": {"family": "dcgan", "z_dim": 8, "width": 8},
        "ema": {"decay": 0.9, "warmup_steps": 3},
        "log_every": 4,
        "sample_every": 6,
        "checkpoint_every": 4,
        "keep_checkpoints": 5,
        "grid_size": 16,
        "progress": False,
    }
    for k, v in overrides.items():
        cfg[k] = v
    return TrainConfig.model_validate(cfg)


def test_run_writes_checkpoints_log_samples_and_export(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path)
    summary = train(cfg)
    run = cfg.run_dir
    assert [p.name for p in list_checkpoints(run)] == [f"ckpt-{s:08d}.pt" for s in (4, 8, 12)]
    log = pd.read_csv(run / "log.csv")
    assert list(log["step"]) == [4, 8, 12]
    for col in (
        "loss_D_main",
        "loss_G_main",
        "gradnorm_D_main",
        "gradnorm_G_main",
        "lr_G",
        "img_per_s",
    ):
        assert log[col].notna().all(), col
    assert (run / "samples" / "step-00000006.png").is_file() and (run / "samples.png").is_file()
    exported = load_export(run / "export")
    assert exported.meta["family"] == "dcgan" and exported.data.resolution == 16
    assert summary["data_hash"] and (run / "run.json").is_file()
    assert not list(run.rglob("*.tmp"))


def _weights(cfg: TrainConfig) -> dict:
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    return state


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {
            "model": {"family": "dcgan", "z_dim": 8, "width": 8, "loss": "wgan-gp", "n_critic": 2},
            "augment": {"flip": True, "translate": 0.125},
            "lr_schedule": {"constant_steps": 4, "decay_steps": 8},
        },
    ],
    ids=["plain", "wgan-gp-augment-schedule"],
)
def test_interrupted_and_resumed_run_equals_uninterrupted(digits16, tmp_path, variant):
    straight = tiny(digits16, tmp_path / "a", **variant)
    train(straight)
    interrupted = tiny(digits16, tmp_path / "b", **variant).model_copy(update={"steps": 8})
    train(interrupted)  # stops after step 8 as if killed after its checkpoint
    resumed = tiny(digits16, tmp_path / "b", **variant)
    summary = train(resumed)
    assert summary["resumed_from_step"] == 8
    a, b = _weights(straight), _weights(resumed)
    assert a["step"] == b["step"] == 12
    assert_same_state(a["nets"], b["nets"], "nets")
    assert_same_state(a["optimizers"], b["optimizers"], "optimizers")
    assert_same_state(a["rng"], b["rng"], "rng")
    log_a = pd.read_csv(straight.run_dir / "log.csv")
    log_b = pd.read_csv(resumed.run_dir / "log.csv")
    assert list(log_b["step"]) == [4, 8, 12]
    pd.testing.assert_series_equal(log_a["loss_G_main"], log_b["loss_G_main"])


def test_changed_params_start_fresh_and_keep_old_checkpoints(digits16, tmp_path):
    train(tiny(digits16, tmp_path))
    summary = train(tiny(digits16, tmp_path, seed=1))
    assert summary["resumed_from_step"] == 0
    assert (
        len(list((tmp_path / "runs" / "t" / "checkpoints" / "previous-1").glob("ckpt-*.pt"))) == 3
    )


def test_corrupt_checkpoint_names_the_file(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path)
    train(cfg)
    for path in list_checkpoints(cfg.run_dir):  # no intact one to fall back to
        path.write_bytes(b"not a checkpoint")
    latest = list_checkpoints(cfg.run_dir)[-1]
    with pytest.raises(GanError, match=latest.name):
        train(cfg.model_copy(update={"steps": 16}))


def test_missing_dataset_is_one_clear_error(tmp_path):
    cfg = tiny(tmp_path / "nowhere", tmp_path)
    with pytest.raises(GanError, match="nowhere"):
        train(cfg)


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(
    digits16, tmp_path, monkeypatch
):
    from gan.models.dcgan import DCGAN

    class Exploding(DCGAN):
        name = "dcgan"

        def _g_main(self, ctx):
            loss, logs = super()._g_main(ctx)
            return (loss * float("nan") if ctx.step >= 9 else loss), logs

    import sys
    import types

    module = types.ModuleType("exploding_family")
    module.Exploding = Exploding
    monkeypatch.setitem(sys.modules, "exploding_family", module)
    monkeypatch.setitem(FAMILIES, "dcgan", "exploding_family:Exploding")
    cfg = tiny(digits16, tmp_path)
    with pytest.raises(
        GanError, match=r"loss of phase G_main is nan at step 10.*ckpt-00000008\.pt"
    ):
        train(cfg)
    ckpts = list_checkpoints(cfg.run_dir)
    assert [p.name for p in ckpts] == ["ckpt-00000004.pt", "ckpt-00000008.pt"]
    assert load_torch(ckpts[-1])["step"] == 8


def test_bf16_autocast_runs_on_cpu(digits16, tmp_path):
    summary = train(tiny(digits16, tmp_path, steps=4, precision="bf16", channels_last=True))
    assert summary["bf16"] is True


def test_explicit_unavailable_device_is_refused(digits16, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(GanError, match="cuda"):
        train(tiny(digits16, tmp_path, device="cuda"))


def test_threads_apply_during_training_only_and_keep_the_checkpoints(digits16, tmp_path):
    before = torch.get_num_threads()
    seen: list[int] = []
    first = train(tiny(digits16, tmp_path, steps=4))
    resumed = train(
        tiny(digits16, tmp_path, steps=8, threads=1),
        hooks=[lambda done, s: seen.append(torch.get_num_threads())],
    )
    assert seen == [1] * 4 and torch.get_num_threads() == before
    assert resumed["resumed_from_step"] == 4  # threads do not change what a run is
    assert resumed["fingerprint"] == first["fingerprint"]


def _session(cfg: TrainConfig):
    from gan.data.shards import load_split
    from gan.device import pick_precision
    from gan.training.session import Session

    return Session(cfg, load_split(cfg.data, "train"), pick_precision(torch.device("cpu")))


def test_adam_is_fused_and_resumes_a_checkpoint_of_the_per_tensor_loop(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, steps=4)
    train(cfg)
    state = load_torch(list_checkpoints(cfg.run_dir)[-1])
    assert all(g["fused"] for o in state["optimizers"].values() for g in o["param_groups"])
    for o in state["optimizers"].values():  # as written before fused Adam
        for g in o["param_groups"]:
            g["fused"], g["foreach"] = None, None
    session = _session(cfg)
    session.load_state_dict(state, "ckpt")
    for name, opt in session.optimizers.items():
        assert all(g["fused"] for g in opt.param_groups), name  # the kernel stays fused
        assert_same_state(opt.state_dict()["state"], state["optimizers"][name]["state"], name)


def test_compile_compiles_the_trained_nets_in_place(digits16, tmp_path):
    plain = _session(tiny(digits16, tmp_path))
    compiled = _session(tiny(digits16, tmp_path, compile=True))
    nets = compiled.family.nets
    assert nets["G"]._compiled_call_impl is not None and nets["D"]._compiled_call_impl is not None
    assert nets["G_ema"]._compiled_call_impl is None  # EMA copies only feed exports
    for name, net in nets.items():  # checkpoints and exports keep their keys
        assert net.state_dict().keys() == plain.family.nets[name].state_dict().keys()
