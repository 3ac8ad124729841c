"""ONNX export (gan/onnx_export.py): onnxruntime draws what PyTorch draws, for every family.

Each family's tiny generator, with trained-looking weights and batch-norm statistics, is
exported the way `gan export` does and run by onnxruntime on fixed latents; the images
must equal the PyTorch export's within 1e-4 at several batch sizes (the batch is dynamic),
and `generate` for a seed must equal OnnxGenerator's for the same seed (the latents
`gan sample --model x.onnx` draws are the family's own).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort  # an optional extra of ganops that `make setup` installs
import pytest
import torch
from PIL import Image
from test_promote import config, make_eval, make_run

from gan.cli import main
from gan.config import dump_section
from gan.export import load_export, save_export
from gan.models import FAMILIES, get_family
from gan.models.family import DataInfo
from gan.onnx_export import ONNX, OnnxGenerator, export_onnx
from gan.registry import Registry
from gan.registry.promote import promote
from gan.training.inference import inference_copy, labels_for

pytestmark = pytest.mark.usefixtures("one_thread")

TOLERANCE = 1e-4
# the tiny configs of each family's own tests, conditional where the family can be
TINY = {
    "dcgan": (  # class-conditional batch norm
        {"family": "dcgan", "z_dim": 8, "width": 8, "conditional": True, "conditioning": "norm"},
        DataInfo(16, 3, num_classes=4),
    ),
    "stylegan2": (  # modulated convolutions, FIR up-sampling, w_avg, const noise
        {"family": "stylegan2", "z_dim": 16, "w_dim": 16, "mapping_layers": 2,
         "channel_base": 128, "channel_max": 16, "conditional": True},
        DataInfo(16, 1, num_classes=10),
    ),
    "biggan": (  # spectral norm, conditional batch norm with standing stats, attention
        {"family": "biggan", "ch": 8, "z_dim": 20, "shared_dim": 8, "attention": 16},
        DataInfo(32, 3, num_classes=10),
    ),
    "r3gan": (
        {"family": "r3gan", "z_dim": 8, "class_dim": 4, "widths": [16, 16, 8],
         "cardinality": [4, 4, 2], "blocks": [1, 1, 1], "conditional": True},
        DataInfo(16, 1, num_classes=10),
    ),
    "cyclegan": (  # reflection padding, instance norm
        {"family": "cyclegan", "ngf": 4, "n_blocks": 1},
        DataInfo(16, 3, domains=2),
    ),
}  # fmt: skip


def tiny_export(folder: Path, name: str) -> Path:
    """An export as training leaves it: weights moved off their initialisation and the
    batch-norm statistics of an inference copy (BigGAN's standing stats) over 2 batches."""
    cfg, data = TINY[name]
    family = get_family(name)
    model = family.config_class.model_validate(cfg)
    torch.manual_seed(0)
    G = family.build_generator(model, data)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for b in G.buffers():
            if b.dtype.is_floating_point and b.ndim == 1 and b.numel() > 1:  # w_avg, SN's u
                b.add_(torch.randn_like(b) * 0.1)
    if family.task == "sample":
        stats = SimpleNamespace(standing_batches=2, generate=family.generate)
        G = inference_copy(G, stats, labels_for(data.num_classes))
    return save_export(folder, name, dump_section(model), data, G)


def run_onnx(path: Path, **feeds: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    return torch.from_numpy(out)


def test_every_family_has_a_parity_test():
    assert set(TINY) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnxruntime_draws_what_pytorch_draws(name, tmp_path):
    folder = tiny_export(tmp_path, name)
    written = export_onnx(folder)
    e = load_export(folder)
    family, G = e.family, e.generator
    assert not G.training
    if family.task == "translate":
        assert sorted(p.name for p in written) == ["generator-AtoB.onnx", "generator-BtoA.onnx"]
        for n in (1, 5):
            x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(n)) * 2 - 1
            for path in written:
                direction = path.stem.split("-")[1]
                want = family.translate(G, x, direction)
                assert (run_onnx(path, images=x) - want).abs().max() < TOLERANCE
        return
    assert [p.name for p in written] == [ONNX]
    z_dim, classes = family.latent_size(G)
    for n, t in ((1, 1.0), (5, 1.0), (5, 0.5)):
        # plain N(0, 1) latents: BigGAN's graph resamples their tails beyond t itself
        z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(n))
        labels = torch.arange(n) % classes
        feeds = {"z": z, "labels": labels, "truncation": torch.tensor(t)}
        with torch.no_grad():
            want = family.export_forward(G, z, labels, torch.tensor(t))
        assert (run_onnx(written[0], **feeds) - want).abs().max() < TOLERANCE, (n, t)
    onnx_G = OnnxGenerator(written[0])
    for labels, t in ((None, 1.0), (torch.tensor([3, 1, 0, 2, 1, 1]), 0.7)):
        with torch.no_grad():
            want = family.generate(G, 6, torch.Generator().manual_seed(7), labels, t)
        got = onnx_G.generate(6, torch.Generator().manual_seed(7), labels, t)
        assert (got - want).abs().max() < TOLERANCE, (labels, t)


def test_biggan_truncation_in_the_graph_is_the_resampling_trick(tmp_path):
    """z within +-t passes unchanged (what draw_z drew), beyond it comes back within t."""
    from gan.models.biggan.sampling import resample_tails, truncated_normal

    t = torch.tensor(0.8)
    drawn = truncated_normal((4096,), 0.8, torch.Generator().manual_seed(0))
    assert torch.equal(resample_tails(drawn, t), drawn)
    plain = torch.randn(200_000, generator=torch.Generator().manual_seed(1))
    out = resample_tails(plain, t)
    assert out.abs().max() <= 0.8 and torch.equal(resample_tails(plain, torch.tensor(1.0)), plain)
    assert abs(out.std() - drawn.std()) < 0.02  # the truncated normal's spread


def test_export_and_sample_an_onnx_file_from_a_run_folder(digits16, tmp_path, capsys):
    from test_training import tiny

    from gan.training.loop import train

    cfg = tiny(digits16, tmp_path, steps=2, model={"family": "dcgan", "z_dim": 8, "width": 8})
    train(cfg)
    capsys.readouterr()
    assert main(["export", "--format", "onnx", "--model", str(cfg.run_dir)]) == 0
    onnx_file = cfg.run_dir / "export" / ONNX
    assert capsys.readouterr().out.split() == [str(onnx_file)]
    meta = json.loads(
        ort.InferenceSession(str(onnx_file)).get_modelmeta().custom_metadata_map["ganops"]
    )
    assert meta["family"] == "dcgan" and meta["z_dim"] == 8 and meta["conditional"] is False
    grids = []
    for model, out in ((onnx_file, "onnx.png"), (cfg.run_dir / "export", "torch.png")):
        args = ["sample", "--model", str(model), "-n", "9", "--seed", "3", "--truncation", "0.8"]
        assert main([*args, "--out", str(tmp_path / out)]) == 0
        grids.append(np.asarray(Image.open(tmp_path / out), dtype=np.int16))
    assert np.abs(grids[0] - grids[1]).max() <= 1  # the same images, up to rounding to uint8
    assert (
        main(["sample", "--model", str(onnx_file), "-n", "3", "--out-dir", str(tmp_path / "p")])
        == 0
    )
    assert len(list((tmp_path / "p").glob("*.png"))) == 3


def test_promote_onnx_keeps_it_with_the_version_and_export_adds_it_later(tmp_path, capsys):
    run = make_run(tmp_path, "a", seed=0)
    metrics = make_eval(tmp_path, {"fid": 30.0})
    decision = promote(config(tmp_path, run, metrics, onnx=True))
    registry = Registry(tmp_path / "registry")
    kept = registry.model_dir("champion")
    assert decision["decision"] == "promoted" and (kept / ONNX).is_file()
    record = registry.show(decision["version"])
    assert list(record["export"]["onnx"]) == [ONNX]
    assert not (run / "export" / ONNX).exists()  # the registry's copy, not the run's

    run_b = make_run(tmp_path, "b", seed=1)
    decision = promote(config(tmp_path, run_b, make_eval(tmp_path, {"fid": 20.0})))
    kept = registry.model_dir("champion")
    assert not (kept / ONNX).exists() and "onnx" not in registry.show(2)["export"]
    reg = ["--registry", str(tmp_path / "registry")]
    assert main(["export", "--model", "champion", *reg]) == 0
    assert capsys.readouterr().out.strip() == str(kept / ONNX)
    out = tmp_path / "g.png"
    assert main(["sample", "--model", str(kept / ONNX), "-n", "4", "--out", str(out)]) == 0


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_edges_are_one_error_line_naming_the_file_or_key(dcgan_export, tmp_path, capsys):
    assert main(["export", "--format", "tflite", "--model", str(dcgan_export)]) == 2
    assert "--format tflite" in one_error(capsys)
    missing = tmp_path / "nope"
    assert main(["export", "--model", str(missing)]) == 2
    assert str(missing) in one_error(capsys)
    foreign = tmp_path / "foreign.onnx"  # a valid model, but not one `gan export` wrote
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation note
        torch.onnx.export(torch.nn.Tanh(), (torch.zeros(1),), foreign, dynamo=False)
    for name, content in (("gone.onnx", None), ("bad.onnx", b"not a model"), ("x.onnx", b"")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        assert main(["sample", "--model", str(path), "--out", str(tmp_path / "g.png")]) == 2
        assert str(path) in one_error(capsys)
    assert main(["sample", "--model", str(foreign), "--out", str(tmp_path / "g.png")]) == 2
    assert "not an ONNX model `gan export` wrote" in one_error(capsys)


def test_other_onnx_files_and_grids_it_cannot_make_are_refused(tmp_path, capsys):
    cyclegan = export_onnx(tiny_export(tmp_path / "cg", "cyclegan"))[0]
    assert main(["sample", "--model", str(cyclegan), "--out", str(tmp_path / "g.png")]) == 2
    assert "gan translate" in one_error(capsys)
    dcgan = export_onnx(tiny_export(tmp_path / "dc", "dcgan"))[0]
    assert main(["sample", "--model", str(dcgan), "--mix", "--out", str(tmp_path / "m.png")]) == 2
    assert "--mix" in one_error(capsys)


@pytest.mark.parametrize(
    ("package", "argv"),
    [("onnx", ["export"]), ("onnxruntime", ["export"]), ("onnxruntime", ["sample"])],
)
def test_without_the_packages_one_line_says_what_to_install(
    package, argv, dcgan_export, tmp_path, capsys, monkeypatch
):
    model = dcgan_export if argv == ["export"] else tmp_path / "x.onnx"
    (tmp_path / "x.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError
    assert main([*argv, "--model", str(model)]) == 2
    err = one_error(capsys)
    assert f"needs the {package} package" in err and "pip install 'ganops[onnx]'" in err
    assert not (dcgan_export / ONNX).exists()


@pytest.mark.parametrize("name", ["dcgan", "cyclegan"])
def test_a_new_export_of_the_weights_removes_the_onnx_of_the_old(name, tmp_path):
    """A run that trains on (more steps, a resume) exports again into the same folder: the
    ONNX files of the older weights go, so none is sampled or shipped as the new model."""
    folder = tiny_export(tmp_path / "export", name)
    written = export_onnx(folder)
    assert written and all(f.is_file() for f in written)
    old = load_export(folder)
    with torch.no_grad():
        for p in old.generator.parameters():
            p.add_(1.0)
    model_cfg = old.meta["model"]
    save_export(folder, name, model_cfg, old.data, old.generator)
    assert not list(folder.glob("*.onnx")), "the graph of the older weights is still there"
    assert export_onnx(folder) == written  # and `gan export` writes the new ones
