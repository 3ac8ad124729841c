"""Metrics by name: what each one needs, the figures it writes and which way they are better.

A metric is one registration (``register_metric``), as stylegan2-ada's metric_main has
it: evaluate computes what the selected metrics need once per extractor and calls each;
params validation (evaluate.metrics, promote.primary_metric, hpo.objective and
hpo.report_metric), HPO's study direction and promote's range checks read this table.

What a metric may need (``NEEDS``):

- ``features``: the extractor's features of the samples (the layer torch-fidelity reads
  for FID); ``logits``: its logits (the layer for IS). An extractor without that layer
  (the autoencoder has no logits) skips the metric, as it skips IS today.
- ``reference``: the same layers of the reference split too (FID, KID, precision/recall).
- ``classifier``: the dataset classifier's logits of the samples and of the reference
  split. Such metrics are measured once, not per extractor, whenever that classifier exists.
- ``labels``: the class each sample was asked for; only conditional families have them.

Figures (the keys of metrics.json) are named after what they measure: ``fid``; ``kid``
and ``kid_std``; ``is``, ``precision``, ``density``, ... Several extractors may measure at once
(``evaluate.extra_extractors``): the default extractor's figures keep these plain names,
so existing registries and studies keep working, and another extractor's carry its label
after an ``@``: ``fid@autoencoder``, ``fid_real_floor@autoencoder``. A translation
family's figures per direction end in ``_AtoB`` / ``_BtoA`` before any label
(``fid_AtoB@inception``).

The built-in metrics are declared below and computed where their code lives, named by a
``module:function`` string: validating params imports neither torch nor torch-fidelity.
A user's metric registers with a function, from a module that a ``ganops.metrics`` entry
point names (loaded with the table) or that their own code imports first.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from gan.errors import GanError

if TYPE_CHECKING:
    from gan.metrics.settings import MeasureSettings

NEEDS = ("features", "logits", "reference", "classifier", "labels")
EXTRACTOR_NEEDS = frozenset({"features", "logits"})  # measured once per extractor
HPO_NEEDS = frozenset(NEEDS) - {"labels"}  # a trial's samples carry no labels
LABEL_SEP = "@"
DIRECTIONS = ("_AtoB", "_BtoA")  # a translation family's figures per direction
ENTRY_POINTS = "ganops.metrics"


@dataclass(frozen=True)
class Figure:
    """One key of metrics.json: which way is better (None: it describes, never ranks, as
    kid_std does), and the values it can take (outside them: a bug or a hand edit)."""

    name: str
    higher_is_better: bool | None = None
    low: float = -math.inf
    high: float = math.inf

    @property
    def ranks(self) -> bool:
        return self.higher_is_better is not None


@dataclass(frozen=True)
class MetricInputs:
    """What a metric's function is given: tensors by need (``features``, ``logits``,
    ``classifier``) of the samples and, with ``reference``, of the reference split."""

    fake: Mapping[str, Any]
    real: Mapping[str, Any]
    settings: MeasureSettings
    labels: Any = None  # the class each sample was asked for, with ``labels``


Compute = Callable[[MetricInputs], Mapping[str, float]]


@dataclass(frozen=True)
class Metric:
    """A registered metric; `settings`: the MeasureSettings fields its figures depend on
    beyond those every figure does (extractor, samples, seed), e.g. KID's subset size."""

    name: str
    needs: frozenset[str]
    figures: tuple[Figure, ...]
    compute: Compute | str  # "module:function" for the built-ins (imported when called)
    settings: tuple[str, ...] = ()

    @property
    def per_extractor(self) -> bool:
        return bool(self.needs & EXTRACTOR_NEEDS)

    def __call__(self, inputs: MetricInputs) -> dict[str, float]:
        fn = self.compute
        if isinstance(fn, str):
            module, name = fn.split(":")
            fn = getattr(importlib.import_module(module), name)
        found = dict(fn(inputs))
        undeclared = set(found) - {f.name for f in self.figures}
        if undeclared:
            raise GanError(f"metric {self.name!r} wrote undeclared figures {sorted(undeclared)}")
        return {k: float(v) for k, v in found.items()}


@dataclass
class _Table:
    metrics: dict[str, Metric] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)  # every figure, by name
    plugins_loaded: bool = False


_TABLE = _Table()


def _declare(figure: Figure) -> None:
    if figure.name in _TABLE.figures and _TABLE.figures[figure.name] != figure:
        raise GanError(f"figure {figure.name!r} is already declared otherwise")
    if LABEL_SEP in figure.name:
        raise GanError(f"figure {figure.name!r}: {LABEL_SEP!r} is kept for extractor labels")
    _TABLE.figures[figure.name] = figure


def register_metric(
    name: str,
    *,
    needs: Iterable[str],
    higher_is_better: bool | None = None,
    figures: Iterable[Figure] | None = None,
    settings: Iterable[str] = (),
    compute: Compute | str | None = None,
) -> Any:
    """Register a metric; without `compute`, a decorator for its function.

    `figures`: what it writes; without them, one figure named `name`, ranked by
    `higher_is_better`. The function takes MetricInputs and returns {figure: value}.
    """
    needs = frozenset(needs)
    if needs - set(NEEDS) or not needs & (EXTRACTOR_NEEDS | {"classifier"}):
        raise GanError(
            f"metric {name!r}: needs must be some of {', '.join(NEEDS)}, with features, "
            "logits or classifier"
        )
    if "classifier" in needs and needs & EXTRACTOR_NEEDS:
        raise GanError(f"metric {name!r}: the classifier's logits or an extractor's, not both")
    if name in _TABLE.metrics:
        raise GanError(f"metric {name!r} is already registered")
    declared = tuple(figures) if figures is not None else (Figure(name, higher_is_better),)

    def add(fn: Compute | str) -> Compute | str:
        for figure in declared:
            _declare(figure)
        _TABLE.metrics[name] = Metric(name, needs, declared, fn, tuple(settings))
        return fn

    return add if compute is None else add(compute)


def unregister_metric(name: str) -> None:
    """Remove a metric and the figures only it wrote (tests register toys and clean up)."""
    gone = _TABLE.metrics.pop(name)
    kept = {f.name for m in _TABLE.metrics.values() for f in m.figures}
    for figure in gone.figures:
        if figure.name not in kept:
            _TABLE.figures.pop(figure.name, None)


def _loaded() -> _Table:
    """The table, with the metrics that `ganops.metrics` entry points register."""
    if not _TABLE.plugins_loaded:
        _TABLE.plugins_loaded = True
        for point in entry_points(group=ENTRY_POINTS):
            point.load()
    return _TABLE


def registered() -> dict[str, Metric]:
    return dict(_loaded().metrics)


def get_metric(name: str) -> Metric:
    found = _loaded().metrics.get(name)
    if found is None:
        raise GanError(f"{name!r} is not a registered metric ({', '.join(_loaded().metrics)})")
    return found


def extractor_metric_names() -> list[str]:
    """The metrics evaluate.metrics selects: those measured with an extractor."""
    return [m.name for m in _loaded().metrics.values() if m.per_extractor]


def keyed(name: str, label: str) -> str:
    """A figure's key in metrics.json: plain for the default extractor ("" label)."""
    return f"{name}{LABEL_SEP}{label}" if label else name


def split_key(key: str) -> tuple[str, str]:
    """("fid", "autoencoder") for "fid@autoencoder"; ("fid", "") for "fid"."""
    name, _, label = key.partition(LABEL_SEP)
    return name, label


def figure(key: str) -> Figure | None:
    """The declared figure behind a metrics.json key (a label or a direction set aside)."""
    name = split_key(key)[0]
    figures = _loaded().figures
    for suffix in ("", *DIRECTIONS):
        found = figures.get(name.removesuffix(suffix)) if name.endswith(suffix) else None
        if found is not None:
            return found
    return None


def metric_of(name: str) -> Metric | None:
    """The registered metric that writes figure `name` (plain, no label or direction)."""
    return next(
        (m for m in _loaded().metrics.values() if name in {f.name for f in m.figures}), None
    )


def ranked_figures() -> dict[str, bool]:
    """Every figure a model can be ranked by, and whether higher is better."""
    return {f.name: bool(f.higher_is_better) for f in _loaded().figures.values() if f.ranks}


def hpo_figures() -> dict[str, bool]:
    """The ranked figures a trial can measure: its metric needs no labels; default extractor."""
    return {
        f.name: bool(f.higher_is_better)
        for m in _loaded().metrics.values()
        if m.needs <= HPO_NEEDS
        for f in m.figures
        if f.ranks
    }


def _should_be(choices: Iterable[str]) -> str:
    names = [repr(c) for c in choices]
    return f"Input should be {', '.join(names[:-1])} or {names[-1]}" if names else "no choices"


def check_metric_name(name: str) -> str:
    """params validation of one evaluate.metrics entry (ValueError, as pydantic wants)."""
    if name not in extractor_metric_names():
        raise ValueError(_should_be(extractor_metric_names()))
    return name


def check_ranked(key: str) -> str:
    """params validation of promote.primary_metric: a ranked figure, maybe with a
    direction and an extractor label (fid, fid_AtoB, fid@autoencoder)."""
    found = figure(key)
    if found is None or not found.ranks:
        raise ValueError(
            f"{_should_be(ranked_figures())} (with _AtoB/_BtoA for a translation's "
            f"direction, {LABEL_SEP}<label> for one of evaluate.extra_extractors)"
        )
    return key


def check_hpo_figure(name: str) -> str:
    """params validation of hpo.objective and hpo.report_metric."""
    if name not in hpo_figures():
        raise ValueError(_should_be(hpo_figures()))
    return name


# -- the built-in metrics and the figures evaluate writes itself ---------------------------
_FIDELITY = "gan.metrics.fidelity"
_CLASSES = "gan.metrics.classes"
_UNIT = {"low": 0.0, "high": 1.0}
_HIGHER = {"higher_is_better": True}

register_metric(
    "fid",
    needs={"features", "reference"},
    figures=[Figure("fid", False, 0.0)],
    compute=f"{_FIDELITY}:fid_metric",
)
register_metric(
    "kid",
    needs={"features", "reference"},
    # an unbiased estimate: slightly negative near a perfect match
    figures=[Figure("kid", False, -1.0, 1e6), Figure("kid_std")],
    settings=("kid_subset_size",),
    compute=f"{_FIDELITY}:kid_metric",
)
register_metric(
    "isc",
    needs={"logits"},
    figures=[Figure("is", True, 1.0, 1e4), Figure("is_std")],  # a class count at most
    compute=f"{_FIDELITY}:isc_metric",
)
register_metric(
    "prc",
    needs={"features", "reference"},
    figures=[Figure("precision", True, **_UNIT), Figure("recall", True, **_UNIT)],
    compute=f"{_FIDELITY}:prc_metric",
)
register_metric(  # Naeem et al. 2020: from the real neighbourhoods only, robust to outliers
    "dc",
    needs={"features", "reference"},
    figures=[Figure("density", True, 0.0), Figure("coverage", True, **_UNIT)],
    compute="gan.metrics.density_coverage:dc_metric",
)
register_metric(
    "classes",
    needs={"classifier", "reference"},
    figures=[
        Figure("classifier_is", **_HIGHER),
        Figure("class_coverage", **_HIGHER),
        Figure("class_entropy", **_HIGHER),
        Figure("classifier_confident", True, **_UNIT),
        Figure("classifier_confident_real", None, **_UNIT),  # the ceiling, on real images
    ],
    settings=("confident_threshold",),
    compute=f"{_CLASSES}:classes_metric",
)
register_metric(
    "conditional",
    needs={"classifier", "labels"},
    figures=[Figure("conditional_accuracy", **_HIGHER)],
    compute=f"{_CLASSES}:conditional_metric",
)
for _figure in (
    Figure("extractor_skill", None, -math.inf, 1.0),  # below 0: worse than the trivial answer
    Figure("classifier_test_accuracy"),
    Figure("kid_subset_size"),
    Figure("fid_real_floor"),
    Figure("kid_real_floor"),
    Figure("kid_real_floor_std"),
    Figure("real_floor_samples"),
    Figure("fid_class_mean", higher_is_better=False),  # conditional families
    Figure("cycle_l1_A", higher_is_better=False),  # translation families
    Figure("cycle_l1_B", higher_is_better=False),
    Figure("class_preserved", **_HIGHER),
    Figure("truth_l1_AtoB", higher_is_better=False),
    Figure("truth_l1_BtoA", higher_is_better=False),
):
    _declare(_figure)
