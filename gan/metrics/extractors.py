"""Which network turns images into features for torch-fidelity, resolved without downloads.

`evaluate.extractor` takes one of:

- ``auto`` (the default): whatever the classifier stage trained into `evaluate.classifier`,
  a classifier for labelled data, an autoencoder for data without labels.
- ``classifier``: our CNN from `gan classifier` (no download). It is registered with
  torch-fidelity as ``ganops-classifier-<first 12 hex of its weights sha256>``: torch-fidelity
  keys its cache by name only, so retrained weights get a new name and never reuse stale
  statistics. Features: ``features`` (penultimate, for FID/KID/PRC), ``logits`` (for IS).
- ``autoencoder``: the encoder of gan.metrics.autoencoder (trained without labels),
  ``ganops-autoencoder-<sha12>``; features only (its code), so IS is not measured.
- ``inception-v3-compat``: the standard extractor, only with a local weights file in
  `evaluate.inception_weights` (torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``).
  torch-fidelity would unpickle that file with weights_only off, so we load it
  weights-only ourselves and register a subclass, ``ganops-inception-v3-compat-<sha12>``,
  that hands torch-fidelity the verified tensors; torch-fidelity never opens the file.
- your own: ``mypkg.mymodule:name`` imports ``mypkg.mymodule`` (which must call
  ``torch_fidelity.register_feature_extractor("name", cls)`` on import) and then uses
  ``name``; a bare name must already be registered. A class attribute ``weights_sha256``
  on your extractor is recorded in the protocol and the cache name; without it, put a
  version or hash into the registered name yourself, or stale statistics may be reused.

torch-fidelity's other built-ins (vgg16, clip-*, dinov2-*) always download, so they are
refused (docs/architecture.md, 'Offline first').

`evaluate.extra_extractors` measures with more extractors at once, each by a label:
``{extractor: <any of the above>, weights: <its folder or weights file>}``; the default
extractor's figures keep their names, the others' carry their label (gan.metrics.registry).
"""

from __future__ import annotations

import hashlib
import importlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gan.errors import GanError
from gan.folders import restore_set_aside
from gan.metrics.autoencoder import CONFIG as AUTOENCODER_CONFIG
from gan.metrics.autoencoder import WEIGHTS as AUTOENCODER_WEIGHTS
from gan.metrics.autoencoder import Autoencoder, load_autoencoder
from gan.metrics.classifier import CONFIG as CLASSIFIER_CONFIG
from gan.metrics.classifier import WEIGHTS as CLASSIFIER_WEIGHTS
from gan.metrics.classifier import Classifier, load_classifier

INCEPTION = "inception-v3-compat"
AUTO = "auto"
CLASSIFIER = "classifier"
AUTOENCODER = "autoencoder"
CLASSIFIER_PREFIX = "ganops-classifier-"
AUTOENCODER_PREFIX = "ganops-autoencoder-"
INCEPTION_PREFIX = "ganops-inception-v3-compat-"
# Registered by torch-fidelity itself; each one downloads its weights when built.
_DOWNLOADING = {
    name
    for name, cls in FEATURE_EXTRACTORS_REGISTRY.items()
    if cls.__module__.startswith("torch_fidelity.") and name != INCEPTION
}

HOW_TO = (
    "Either train the dataset's own extractor (`gan classifier`: a classifier, or an "
    "autoencoder for data without labels; evaluate.extractor: auto, evaluate.classifier: its "
    "output dir), or download torch-fidelity's weights-inception-2015-12-05-6726825d.pth yourself "
    "and set evaluate.extractor: inception-v3-compat with evaluate.inception_weights: <path "
    "to that file>. ganops never downloads weights."
)


class OwnExtractor(FeatureExtractorBase):
    """torch-fidelity adapter for our own networks; subclasses bind one set of weights.

    Input: uint8 [B, 3, H, W] (any H, W); grey networks average the channels back.
    Subclasses set `build` (the network class) and `outputs` (feature name -> function of
    the network and the `features` tensor).
    """

    build: ClassVar[type[torch.nn.Module]]
    arch: ClassVar[dict[str, int]] = {}
    state: ClassVar[dict[str, torch.Tensor]] = {}
    weights_sha256: ClassVar[str] = ""

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.model = self.build(**self.arch)
        self.model.load_state_dict(self.state)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting uint8 images")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {tuple(x.shape)}")
        feats = self.model.features(x)
        out = {"features": feats}
        if "logits" in self.features_list:
            out["logits"] = self.model.head(feats)
        return tuple(out[k].float() for k in self.features_list)

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)


class ClassifierExtractor(OwnExtractor):
    """`Classifier`: ``features`` (penultimate, FID/KID/PRC) and ``logits`` (IS)."""

    build = Classifier

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]


class AutoencoderExtractor(OwnExtractor):
    """`Autoencoder`'s code as ``features`` (FID/KID/PRC); no logits, so no IS (None)."""

    build = Autoencoder

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str | None:
        return {"fid": "features", "kid": "features", "prc": "features"}.get(metric)


class InceptionFromState(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 built from tensors we loaded weights-only.

    Its constructor only accepts a path (or file object) it unpickles with
    weights_only off, so it is given an in-memory copy of the verified state dict:
    bytes this process serialised from plain tensors, never a file from disk.
    """

    state: ClassVar[dict[str, torch.Tensor]] = {}
    weights_sha256: ClassVar[str] = ""

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        kwargs.pop("feature_extractor_weights_path", None)
        buffer = io.BytesIO()
        torch.save(self.state, buffer)
        buffer.seek(0)
        super().__init__(name, features_list, feature_extractor_weights_path=buffer, **kwargs)


@dataclass(frozen=True)
class Extractor:
    """A resolved extractor: its name (as recorded in protocols), weights hash, extra kwargs
    and, when it differs from `name`, the torch-fidelity registry name that builds it."""

    name: str
    weights_sha256: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    registered: str = ""
    # our own extractors: how good they are (gan.metrics.extractor_quality) and their file
    quality: dict[str, Any] | None = None
    source: str = ""

    @property
    def fidelity_name(self) -> str:
        return self.registered or self.name


def _register_own(prefix: str, base: type[OwnExtractor], trained, source: Path) -> Extractor:
    """Register a trained network under `prefix` + its weights hash: the name always
    matches the weights, which the class holds."""
    sha = trained.weights_sha256
    name = prefix + sha[:12]
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        attrs = {
            "arch": trained.model.architecture(),
            "state": trained.model.state_dict(),
            "weights_sha256": sha,
        }
        torch_fidelity.register_feature_extractor(
            name, type(f"{base.__name__}_{sha[:12]}", (base,), attrs)
        )
    return Extractor(name, sha, quality=trained.meta.get("quality"), source=str(source))


def register_classifier(classifier_dir: str | Path) -> Extractor:
    """Register the classifier in `classifier_dir` under a name carrying its weights hash."""
    trained = load_classifier(classifier_dir)
    return _register_own(
        CLASSIFIER_PREFIX, ClassifierExtractor, trained, Path(classifier_dir) / CLASSIFIER_CONFIG
    )


def register_autoencoder(autoencoder_dir: str | Path) -> Extractor:
    """Register the autoencoder in `autoencoder_dir` under a name carrying its weights hash."""
    trained = load_autoencoder(autoencoder_dir)
    return _register_own(
        AUTOENCODER_PREFIX,
        AutoencoderExtractor,
        trained,
        Path(autoencoder_dir) / AUTOENCODER_CONFIG,
    )


def _inception(weights: str | None) -> Extractor:
    if weights is None:
        raise GanError(
            f"evaluate.inception_weights is not set, and {INCEPTION} would download. {HOW_TO}"
        )
    path = Path(weights)
    if not path.is_file():
        raise GanError(f"{path}: evaluate.inception_weights file not found. {HOW_TO}")
    data = path.read_bytes()  # hash and load the same bytes: no swap between the two
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanError(
            f"{path}: evaluate.inception_weights is not a plain weights file ({exc})"
        ) from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise GanError(f"{path}: evaluate.inception_weights must hold a state dict of tensors")
    sha = hashlib.sha256(data).hexdigest()
    name = INCEPTION_PREFIX + sha[:12]
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        attrs = {"state": state, "weights_sha256": sha}
        cls = type(f"InceptionFromState_{sha[:12]}", (InceptionFromState,), attrs)
        torch_fidelity.register_feature_extractor(name, cls)
    return Extractor(INCEPTION, sha, registered=name)


def _plugged(spec: str) -> Extractor:
    name = spec
    if ":" in spec:
        module, name = spec.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise GanError(f"evaluate.extractor: cannot import {module!r} ({exc})") from None
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise GanError(
            f"evaluate.extractor: {name!r} is not a registered feature extractor; use 'auto', "
            f"'classifier', 'autoencoder', '{INCEPTION}' or 'module:name' where importing "
            "module registers name"
        )
    if name in _DOWNLOADING or name == INCEPTION:  # INCEPTION: only through _inception
        raise GanError(f"evaluate.extractor: {name!r} downloads its weights at run time. {HOW_TO}")
    return Extractor(name, getattr(FEATURE_EXTRACTORS_REGISTRY[name], "weights_sha256", None))


OWN = {  # evaluate.extractor -> (the file the classifier stage writes, how to register it)
    CLASSIFIER: (CLASSIFIER_WEIGHTS, register_classifier),
    AUTOENCODER: (AUTOENCODER_WEIGHTS, register_autoencoder),
}


def own_kind(directory: str | Path) -> str | None:
    """Which of our extractors the classifier stage wrote into `directory`, if any (put back
    first where a killed rewrite left it aside)."""
    restore_set_aside(directory)
    return next((kind for kind, (f, _) in OWN.items() if (Path(directory) / f).is_file()), None)


def resolve_extractor(
    extractor: str, classifier: str | Path, inception_weights: str | None
) -> Extractor:
    """Turn the evaluate section's extractor settings into a registered torch-fidelity name."""
    kind = own_kind(classifier) if extractor == AUTO else extractor
    if extractor == AUTO and kind is None:
        raise GanError(
            f"{Path(classifier)}: evaluate.extractor is auto, but no trained extractor is "
            f"there ({CLASSIFIER_WEIGHTS} or {AUTOENCODER_WEIGHTS}). {HOW_TO}"
        )
    if kind in OWN:
        weights, register = OWN[kind]
        if not (Path(classifier) / weights).is_file():
            raise GanError(f"{Path(classifier) / weights}: evaluate.classifier not found. {HOW_TO}")
        return register(classifier)
    if extractor == INCEPTION:
        return _inception(inception_weights)
    return _plugged(extractor)
