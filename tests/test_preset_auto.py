"""`train.model.preset: auto` (issue #26, "A config that fits the resolution"): StyleGAN2's
values are stylegan2-ada's --cfg=auto, BigGAN's the official plan of the resolution; a
key params.yaml sets wins; run.json records what was derived; `gan train --dry-run` shows
it with the parameter counts, the memory and the step time, and writes nothing."""

from __future__ import annotations

import json

import pytest
import torch
from test_training import tiny

from gan.cli import main
from gan.config import dump_section, parse_params
from gan.errors import GanError
from gan.models import get_family
from gan.models.biggan.arch import discriminator_stages, generator_stages
from gan.models.biggan.discriminator import Discriminator
from gan.models.biggan.family import attention_for
from gan.models.family import DataInfo
from gan.training.fingerprint import fingerprint
from gan.training.loop import train
from gan.training.preset import resolve_preset

pytestmark = pytest.mark.usefixtures("one_thread")


def resolved(model: dict, res: int, channels: int = 3, **train):
    cfg = parse_params({"train": {"model": model, **train}}).train
    return resolve_preset(cfg, DataInfo(res, channels, num_classes=10))


# the README's table: stylegan2-ada's --cfg=auto on one device
STYLEGAN2_AUTO = {
    64: {"batch_size": 32, "model.channel_base": 16384, "model.r1_gamma": 0.0256,
         "model.ema_kimg": 10.0, "optim.g_lr": 0.0025},
    256: {"batch_size": 16, "model.channel_base": 16384, "model.r1_gamma": 0.8192,
          "model.ema_kimg": 5.0, "optim.g_lr": 0.0025},
    1024: {"batch_size": 4, "model.channel_base": 32768, "model.r1_gamma": 52.4288,
           "model.ema_kimg": 1.25, "optim.g_lr": 0.002},
}  # fmt: skip


@pytest.mark.parametrize("res", sorted(STYLEGAN2_AUTO))
def test_stylegan2_auto_is_the_official_auto_config(res):
    cfg, record = resolved({"family": "stylegan2", "preset": "auto"}, res)
    want = STYLEGAN2_AUTO[res]
    derived = record["derived"]
    for key, value in want.items():
        assert derived[key] == pytest.approx(value, rel=1e-12), key
    assert derived["model.channel_max"] == 512 and derived["model.mapping_layers"] == 2
    assert derived["model.mbstd_group_size"] == 4 and derived["model.ema_rampup"] == 0.05
    assert derived["optim.d_lr"] == derived["optim.g_lr"]
    assert record["given"] == {} and (record["resolution"], record["gpus"]) == (res, 1)
    m = cfg.model
    assert (cfg.batch_size, m.channel_base, m.channel_max, m.mapping_layers) == (
        want["batch_size"], want["model.channel_base"], 512, 2
    )  # fmt: skip
    assert m.r1_gamma == pytest.approx(want["model.r1_gamma"])
    assert (cfg.optim.g_lr, cfg.optim.d_lr) == (want["optim.g_lr"],) * 2
    assert "g_betas" not in cfg.optim.model_fields_set  # the family's (0, 0.99) still apply


@pytest.mark.parametrize(
    ("res", "world_size", "batch", "group", "gamma"),
    [
        (256, 2, 32, 4, 0.4096),  # max(min(2 * min(16, 32), 64), 2)
        (64, 3, 63, 4, 0.0002 * 64**2 / 63),  # 64 rounded down to a multiple of 3 ranks
        (1024, 8, 32, 4, 6.5536),  # the paper's 1024 px batch on 8 GPUs
        (1024, 32, 64, 2, 3.2768),  # the cap of 64; 2 images per device
    ],
)
def test_the_batch_follows_the_data_parallel_devices(res, world_size, batch, group, gamma):
    model = {"family": "stylegan2", "preset": "auto"}
    cfg, record = resolved(model, res, world_size=world_size, batch_size=world_size)
    # the record says which batch the given one replaced (it once repeated the given one)
    assert record["given"]["batch_size"] == {"value": world_size, "preset": batch}
    cfg, record = resolved(model, res, world_size=world_size)
    assert (cfg.batch_size, cfg.model.mbstd_group_size) == (batch, group)
    assert cfg.model.r1_gamma == pytest.approx(gamma) and record["gpus"] == world_size


def test_an_explicit_key_wins_and_the_rest_follow_the_given_batch():
    model = {"family": "stylegan2", "preset": "auto", "r1_gamma": 1.0, "mapping_layers": 8}
    cfg, record = resolved(model, 64, batch_size=8, optim={"g_lr": 0.001})
    assert (cfg.batch_size, cfg.model.r1_gamma, cfg.model.mapping_layers) == (8, 1.0, 8)
    assert (cfg.optim.g_lr, cfg.optim.d_lr) == (0.001, 0.0025)
    assert cfg.model.ema_kimg == 2.5  # 8 * 10 / 32: the given batch, not the derived 32
    given = record["given"]
    assert given["model.r1_gamma"] == {"value": 1.0, "preset": pytest.approx(0.1024)}
    assert given["model.mapping_layers"] == {"value": 8, "preset": 2}  # the default, yet set
    assert given["optim.g_lr"]["value"] == 0.001 and given["batch_size"]["value"] == 8
    assert not set(given) & set(record["derived"])


def test_without_a_preset_nothing_is_derived_and_fingerprints_keep():
    cfg = parse_params({"train": {"model": {"family": "stylegan2"}}}).train
    assert resolve_preset(cfg, DataInfo(64, 3)) == (cfg, None)
    assert fingerprint(dump_section(cfg), "h") == "4da9cbc68dedf18e"  # tests/test_fingerprint.py
    auto = parse_params({"train": {"model": {"family": "stylegan2", "preset": "auto"}}}).train
    assert fingerprint(dump_section(auto), "h") != "4da9cbc68dedf18e"
    first, again = (dump_section(resolve_preset(auto, DataInfo(64, 3))[0]) for _ in range(2))
    assert first == again  # a resumed run derives the same params, hence the same fingerprint


BIGGAN_PLANS = {  # ajbrock/BigGAN-PyTorch G_arch / D_arch, ch 64; z_dim 128 split evenly
    32: ([4, 4, 4, 4], None, 0, 128),
    64: ([16, 16, 8, 4, 2], [1, 2, 4, 8, 16], 32, 125),
    128: ([16, 16, 8, 4, 2, 1], [1, 2, 4, 8, 16, 16], 64, 126),
    256: ([16, 16, 8, 8, 4, 2, 1], [1, 2, 4, 8, 8, 16, 16], 64, 126),
    512: ([16, 16, 8, 8, 4, 2, 1, 1], [1, 1, 2, 4, 8, 8, 16, 16], 64, 128),
}


@pytest.mark.parametrize("res", sorted(BIGGAN_PLANS))
def test_biggan_auto_is_the_official_plan_of_the_resolution(res):
    g_widths, d_widths, attention, z_dim = BIGGAN_PLANS[res]
    cfg, record = resolved({"family": "biggan", "preset": "auto"}, res)
    assert record["derived"] == {
        "model.z_dim": z_dim, "model.ch": 64, "model.d_ch": 64, "model.g_widths": g_widths,
        "model.d_widths": d_widths, "model.attention": attention, "model.d_attention": attention,
    }  # fmt: skip
    m = cfg.model
    assert generator_stages(res, m.ch, m.g_widths) == generator_stages(res, 64)
    assert discriminator_stages(res, m.d_ch, 3, m.d_widths) == discriminator_stages(res, 64, 3)
    assert cfg.batch_size == 64  # BigGAN's plan has no batch: the train default stays
    family, data = get_family("biggan"), DataInfo(res, 3, num_classes=10)
    with torch.device("meta"):  # shapes only: the networks build with the derived keys
        G = family.build_generator(m, data)
        D = Discriminator(
            resolution=res, ch=m.d_ch, attention=attention_for(res, m.d_attention),
            n_classes=10, img_channels=3, widths=m.d_widths,
        )  # fmt: skip
    assert G.z_dim == z_dim and sum(p.numel() for p in D.parameters()) > 0
    unsplit, _ = resolved({"family": "biggan", "preset": "auto", "hier": False}, res)
    assert unsplit.model.z_dim == 128


def test_biggan_widths_given_win_over_the_plan():
    model = {"family": "biggan", "preset": "auto", "ch": 8, "g_widths": [8, 4, 2, 1]}
    cfg, record = resolved(model, 32)
    assert (cfg.model.ch, cfg.model.d_ch, cfg.model.g_widths) == (8, 64, (8, 4, 2, 1))
    assert record["given"]["model.g_widths"] == {"value": [8, 4, 2, 1], "preset": [4, 4, 4, 4]}


@pytest.mark.parametrize("family", ["stylegan2", "biggan", "dcgan"])
def test_an_unknown_preset_is_one_error_naming_the_key(family):
    with pytest.raises(GanError) as err:
        parse_params({"train": {"model": {"family": family, "preset": "large"}}})
    assert str(err.value).startswith("params.yaml: train.model.preset: unknown preset 'large'")
    assert len(str(err.value).splitlines()) == 1
    if family == "dcgan":
        with pytest.raises(GanError, match="dcgan has none"):
            parse_params({"train": {"model": {"family": "dcgan", "preset": "auto"}}})


def test_a_resolution_the_preset_cannot_serve_names_the_key():
    with pytest.raises(GanError, match=r"train\.model\.preset auto: .*not 16"):
        resolved({"family": "biggan", "preset": "auto"}, 16)
    with pytest.raises(GanError, match=r"train\.model\.preset auto: .*not 8"):
        resolved({"family": "stylegan2", "preset": "auto"}, 8)
    # BigGAN's plan keeps the batch: the default 64 does not split over 3 ranks
    with pytest.raises(GanError, match=r"preset auto: train\.batch_size 64 must be a multiple"):
        resolved({"family": "biggan", "preset": "auto"}, 32, world_size=3)


TINY_SG2 = {
    "family": "stylegan2", "preset": "auto", "z_dim": 16, "w_dim": 16, "channel_base": 128,
    "channel_max": 16, "r1_every": 2, "pl_every": 3,
}  # fmt: skip


def test_run_json_records_the_derived_values(digits16, tmp_path):
    cfg = tiny(digits16, tmp_path, steps=2, batch_size=8, model=TINY_SG2, threads=1)
    summary = train(cfg)
    run = json.loads((cfg.run_dir / "run.json").read_text())
    assert run["preset"] == summary["preset"]
    derived = run["preset"]["derived"]
    assert derived["model.r1_gamma"] == pytest.approx(0.0002 * 16**2 / 8)
    assert derived["model.mapping_layers"] == 2 and "batch_size" not in derived
    assert run["preset"]["given"]["model.channel_base"] == {"value": 128, "preset": 16384}
    params = run["params"]
    assert params["model"]["mapping_layers"] == 2 and params["optim"]["g_lr"] == 0.0025
    assert params["model"]["r1_gamma"] == derived["model.r1_gamma"]


def manifest_only(path, res: int, channels: int = 1, classes: int = 3):
    """A processed dataset as far as the dry run reads it: manifest.json alone."""
    path.mkdir()
    manifest = {
        "resolution": res, "channels": channels, "classes": [str(i) for i in range(classes)],
        "domains": [], "content_hash": "h", "splits": {"train": {"count": 0, "shards": []}},
    }  # fmt: skip
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    ("res", "model"),
    [
        (16, TINY_SG2),
        (32, {"family": "biggan", "preset": "auto", "ch": 4, "d_ch": 4, "z_dim": 8,
              "shared_dim": 8}),
    ],
)  # fmt: skip
def test_dry_run_prints_counts_memory_and_step_time_and_writes_nothing(
    res, model, tmp_path, capsys, monkeypatch
):
    data = manifest_only(tmp_path / "data", res)
    params = tmp_path / "params.yaml"
    train_section = {"data": str(data), "runs_dir": str(tmp_path / "runs"), "run": "r",
                     "batch_size": 4, "device": "cpu", "threads": 1, "model": model}  # fmt: skip
    params.write_text(json.dumps({"train": train_section}))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["train", "-p", str(params), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"preset auto ({res} px, 1 data-parallel device):" in out
    assert "parameters: G " in out and ", D " in out and "G_ema " in out
    assert "memory, estimated per device: " in out and "activations " in out
    assert "Adam state " in out and "step time: " in out and " img/s" in out
    if model["family"] == "stylegan2":
        assert "model.mapping_layers     2" in out and "model.r1_gamma           0.0128" in out
        assert "batch_size               4  (given; the preset: 32)" in out  # not "4"
    else:
        assert "model.g_widths           [4, 4, 4, 4]" in out
        assert "model.ch                 4  (given; the preset: 64)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no run.json
    assert sorted(p.name for p in data.iterdir()) == ["manifest.json"]
