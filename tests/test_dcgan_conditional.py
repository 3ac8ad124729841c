"""Class-conditional DCGAN (train.model.conditional): the class into G's batch norms or
beside z, projection in D, an optional AC-GAN head and minibatch stddev; labels required,
exact resume, an export that honours the labels asked for."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_same_state, digits_tensors, straight_and_resumed, write_dataset
from test_training import tiny

from gan.config import TrainConfig, dump_section
from gan.errors import GanError
from gan.export import load_export
from gan.models.dcgan import DCGAN, DCGANConfig
from gan.models.family import DataInfo, StepContext
from gan.train_config import OptimConfig
from gan.training.fingerprint import fingerprinted
from gan.training.loop import train

CONDITIONAL = {
    "family": "dcgan",
    "z_dim": 8,
    "width": 8,
    "conditional": True,
    "aux_weight": 0.5,
    "d_mbstd": 4,
}


def _family(conditional: bool, num_classes: int = 10, **model) -> DCGAN:
    cfg = DCGANConfig(z_dim=8, width=8, conditional=conditional, d_spectral=True, **model)
    data = DataInfo(16, 1, num_classes)
    return DCGAN(cfg, data, OptimConfig(), torch.device("cpu"), lambda x: x)


@pytest.mark.parametrize("conditioning", ["norm", "concat"])
def test_the_class_changes_both_networks_and_off_keeps_the_old_ones(conditioning):
    torch.manual_seed(0)
    fam = _family(True, conditioning=conditioning)
    G, D = fam.nets["G"].eval(), fam.nets["D"].eval()
    assert (G.embed is None) == (conditioning == "norm") == G.class_norm
    z = torch.randn(2, 8)
    three, five = torch.tensor([3, 3]), torch.tensor([5, 5])
    assert not torch.allclose(G(z, three), G(z, five))
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.nn.init.normal_(D.embed.weight)  # init is N(0, 0.02): make the term visible
    assert not torch.allclose(D(x, three), D(x, five))
    with pytest.raises(ValueError, match="needs the labels"):
        G(z)
    plain = _family(False)
    assert plain.nets["G"].embed is None and plain.nets["D"].embed is None
    assert "embed.weight" not in plain.nets["G"].state_dict()
    dump = fingerprinted(dump_section(TrainConfig()))["model"]  # old fingerprints hold
    assert not {"conditional", "conditioning", "class_dim", "d_mbstd", "aux_weight"} & set(dump)
    assert plain.nets["D"].mbstd is None and plain.nets["D"].aux is None


def test_aux_head_and_mbstd_change_d_and_need_their_inputs():
    torch.manual_seed(0)
    fam = _family(True, aux_weight=1.0, d_mbstd=2)
    D = fam.nets["D"].eval()
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    logit, classes = D.logits(x, y)
    assert logit.shape == (4,) and classes.shape == (4, 10)
    # the batch's spread reaches the logit: the same image beside others scores differently
    alone = D.logits(x[:1].expand(2, -1, -1, -1), y[:2])[0][0]
    assert not torch.allclose(alone, logit[0])
    batch = {"images": x, "labels": y}
    _, d_logs = fam._d_main(StepContext(0, batch))
    _, g_logs = fam._g_main(StepContext(0, batch))
    assert d_logs["D_class"] > 0 and g_logs["G_class"] > 0
    with pytest.raises(ValueError, match="needs conditional"):
        DCGANConfig(aux_weight=1.0)


def test_conditional_needs_labelled_data_and_auto_follows_the_data():
    with pytest.raises(ValueError, match="labelled data"):
        _family(True, num_classes=0)
    unlabelled, labelled = _family("auto", num_classes=0), _family("auto", num_classes=10)
    assert unlabelled.n_classes == 0 and unlabelled.nets["G"].embed is None
    assert labelled.n_classes == 10 and labelled.nets["G"].embed.weight.shape == (10, 8)
    assert DCGAN.is_conditional(labelled.cfg, labelled.data)
    assert not DCGAN.is_conditional(unlabelled.cfg, unlabelled.data)


def test_conditional_training_resumes_exactly_and_exports_labels(digits16, tmp_path):
    def make(d):
        return tiny(digits16, d, model=CONDITIONAL, threads=1)

    straight, _, a, b = straight_and_resumed(make, tmp_path)
    for key in ("nets", "optimizers", "rng"):
        assert_same_state(a[key], b[key], key)
    exported = load_export(straight.run_dir / "export")
    assert exported.conditional
    G = exported.generator
    fixed = torch.Generator().manual_seed(0)
    sevens = exported.family.generate(G, 4, fixed, labels=torch.full((4,), 7))
    assert sevens.shape == (4, 1, 16, 16)


def test_conditional_on_unlabelled_data_stops_naming_the_data(tmp_path):
    images, _ = digits_tensors(16)
    flat = write_dataset(tmp_path / "flat", images[:64], torch.full((64,), -1))
    with pytest.raises(GanError, match=r"labelled data.*flat"):
        train(tiny(flat, tmp_path, model=CONDITIONAL, steps=1, threads=1))
