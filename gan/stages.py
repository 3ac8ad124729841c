"""Every stage of the pipeline, declared once: what it calls, reads, writes and retries.

STAGES, in pipeline order, is the one table the runners read:
- `gan <stage>` (gan/cli.py) is a subcommand per entry, calling `Stage.run`;
- the Prefect flows (flows/tasks.py) make a task per entry with its retry policy and, for
  the cached stages, its cache inputs and output check (gan/stage_cache.py);
- the `stages:` of every dvc.yaml are written from it (gan/dvc_stages.py), and
  tests/test_stages.py fails while a committed dvc.yaml differs.
So a new stage is one entry here. `code` lists the gan/ files and folders a stage runs:
its DVC code deps and part of its Prefect cache key; tests/test_imports.py walks the
imports of each stage to check that the list covers them.

This module stays light (no torch): `gan --help` reads it. Functions are named as
"module:function" strings and imported when a stage runs.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan.errors import GanError
from gan.stage_cache import classified, preprocessed, processed_content, tree_content

if TYPE_CHECKING:
    from gan.config import Params

ROOT = Path(__file__).resolve().parent.parent  # where `code` paths start: the repository root
KEY = re.compile(r"\{([\w.]+)\}")  # a params key in a path template: "{train.runs_dir}/x"


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


@dataclass(frozen=True)
class Io:
    """A path a stage reads or writes, as a template of params keys: "{evaluate.output}".

    `optional`: left out of a pipeline whose params file does not set the key.
    """

    template: str
    persist: bool = False  # DVC keeps it before the stage runs (checkpoints to resume from)
    cache: bool = True  # False: DVC tracks it in git, not in its cache
    optional: bool = False
    why: str = ""  # written beside it in dvc.yaml

    def names(self) -> list[str]:
        return KEY.findall(self.template)

    def dvc_flags(self) -> dict[str, bool]:
        """Its flags as dvc.yaml writes them: only those that differ from DVC's defaults."""
        flags = {"persist": self.persist, "cache": self.cache}
        return {k: v for k, v in flags.items() if v != (k == "cache")}

    def resolve(self, params: Params) -> str:
        """The path under these params, e.g. "reports/evaluate/metrics.json"."""
        return KEY.sub(lambda m: str(lookup(params, m[1])), self.template)


@dataclass(frozen=True)
class Param:
    """A params key DVC watches beyond a stage's own sections."""

    key: str
    why: str = ""


@dataclass(frozen=True)
class Flag:
    """A `gan <stage>` option that stands for an override: `--fresh` is `-S train.resume=false`;
    one with a `metavar` takes a value for the key `override` names: `--images DIR` is
    `-S evaluate.images=DIR`."""

    option: str
    override: str  # key=value; with a metavar, the key
    help: str
    metavar: str | None = None

    def given(self, value: str) -> str:
        """The override for the option's value, quoted so that YAML reads it as the string
        it is (a path of digits, or with ': ', stays a path)."""
        return f"{self.override}={json.dumps(value)}"


@dataclass(frozen=True)
class DryRun:
    """`gan <stage> --dry-run`: a function (same sections as the stage) that shows what the
    stage would do and writes nothing; `says` is what the command prints of its result."""

    function: str  # "module:function"
    help: str
    says: Callable[[Any], str]


@dataclass(frozen=True)
class FlowCache:
    """How the flows cache a stage: the content of its inputs, and whether its outputs still
    hold a cached result (deleted or overwritten files are recomputed)."""

    content: Callable[[str], str]  # an input path -> a hash of what it holds
    intact: Callable[[Params, Any], bool]  # (params, cached result) -> outputs still there


@dataclass(frozen=True, kw_only=True)
class DvcStage:
    """A stage as DVC runs it: a `gan` command, its deps, params and outputs."""

    name: str
    command: str = ""  # the `gan` subcommand and its arguments; default: the name
    code: tuple[str, ...]
    inputs: tuple[Io, ...] = ()
    outputs: tuple[Io, ...] = ()
    metrics: tuple[Io, ...] = ()
    watches: tuple[Param, ...] = ()

    def gan_command(self) -> str:
        return self.command or self.name

    def dvc_params(self) -> list[Param]:
        return list(self.watches)


@dataclass(frozen=True, kw_only=True)
class Stage(DvcStage):
    """A pipeline stage: a DVC stage that is also `gan <name>` and a Prefect task."""

    help: str
    function: str  # "module:function", called with the params sections below
    sections: tuple[str, ...]  # the Params sections it is called with, in order
    retry_delays: tuple[float, ...] = (10, 60)  # seconds before each retry of a transient error
    flow_cache: FlowCache | None = None  # None: the flows run it every time
    says: Callable[[Any], str | None] = json_text  # what `gan <name>` prints of its result
    flags: tuple[Flag, ...] = ()
    dry_run: DryRun | None = None  # `gan <name> --dry-run`; None: the command has no such flag

    def dvc_params(self) -> list[Param]:
        return [Param(s) for s in self.sections] + list(self.watches)

    def run(self, params: Params, dry: bool = False) -> Any:
        """Call the stage's function (`dry`: its dry run's) on its sections of `params`."""
        target = self.dry_run.function if dry and self.dry_run else self.function
        module, _, name = target.partition(":")
        function = getattr(importlib.import_module(module), name)
        return function(*(getattr(params, s) for s in self.sections))


def lookup(params: Any, key: str) -> Any:
    """params.<key> for a dotted key: lookup(p, "train.run_dir") is p.train.run_dir."""
    for part in key.split("."):
        params = getattr(params, part)
    return params


def retryable(exc: BaseException | None) -> bool:
    """A GanError means the input is wrong (bad data, bad params, a NaN loss): a retry
    cannot help. Anything else (I/O, a lost device, a killed thread) may pass."""
    return not isinstance(exc, GanError)


# -- what `gan <stage>` prints ------------------------------------------------------------


def _preprocessed_line(m: dict[str, Any]) -> str:
    counts = {k: v["count"] for k, v in m["splits"].items()}
    return f"preprocessed: {counts}, rejected {len(m['rejected'])}, hash {m['content_hash'][:12]}"


def _trained_line(summary: dict[str, Any]) -> str | None:
    if "run_id" not in summary:  # under torchrun, ranks other than 0 have nothing to report
        return None
    return f"trained {summary['run_id']} in {summary['seconds']} s ({summary['img_per_s']} img/s)"


def _dry_run_lines(report: dict[str, Any]) -> str:
    from gan.training.dry_run import describe

    return describe(report)


# -- the table ----------------------------------------------------------------------------

LOADS_PARAMS = (  # every stage reads and validates its params file
    "gan/config.py",
    "gan/train_config.py",
    "gan/params_file.py",
    "gan/schema.py",
    "gan/paths.py",
    "gan/hpo/grammar.py",
    "gan/errors.py",
    "gan/io.py",
)
LOCKED_WRITES = ("gan/folders.py", "gan/lock.py")  # folders replaced whole, one writer each
RUNS_MODELS = (
    "gan/models",
    "gan/losses.py",
    "gan/objectives.py",
    "gan/data",
    "gan/messages.py",  # gan/data/sources' one-line errors
    *LOCKED_WRITES,  # gan/data/preprocess.py's
    "gan/training/streams.py",  # the loaders and augmentation take their seeds from it
    *LOADS_PARAMS,
    "gan/device.py",
    "gan/export.py",
    "gan/grid.py",
)
CLASSIFIER_PARAMS = Param("evaluate.extractor", "classifier.kind follows it (gan/config.py)")
TRAIN_RUN = Io(
    "{train.runs_dir}/{train.run}",
    persist=True,
    why="checkpoints survive, so an interrupted `dvc repro` resumes",
)

STAGES: tuple[Stage, ...] = (
    Stage(
        name="prepare",
        help="materialise a built-in dataset into data/raw",
        function="gan.data.builtin:prepare",
        sections=("prepare",),
        code=("gan/data/builtin.py", *LOADS_PARAMS),
        outputs=(Io("{prepare.out}"), Io("{prepare.truth}", optional=True)),
        says=str,
    ),
    Stage(
        name="preprocess",
        help="validate, resize and shard a dataset",
        function="gan.data.preprocess:preprocess",
        sections=("preprocess",),
        code=(
            "gan/data/images.py",
            "gan/data/preprocess.py",
            "gan/data/shards.py",
            "gan/data/sources",
            "gan/messages.py",  # the readers' one-line errors
            *LOCKED_WRITES,
            *LOADS_PARAMS,
        ),
        inputs=(Io("{preprocess.input}"),),
        outputs=(Io("{preprocess.output}"),),
        flow_cache=FlowCache(content=tree_content, intact=preprocessed),
        says=_preprocessed_line,
    ),
    Stage(
        name="classifier",
        help="train the offline feature extractor for evaluation",
        function="gan.metrics.classifier:train_classifier",
        sections=("classifier",),
        watches=(CLASSIFIER_PARAMS,),
        code=(
            "gan/metrics/classifier.py",
            "gan/metrics/autoencoder.py",
            "gan/metrics/convnet.py",
            "gan/metrics/extractor_quality.py",
            "gan/folders.py",
            "gan/data/augment.py",
            "gan/data/shards.py",
            *LOADS_PARAMS,
        ),
        inputs=(Io("{classifier.data}"),),
        outputs=(Io("{classifier.output}"),),
        flow_cache=FlowCache(content=processed_content, intact=classified),
    ),
    Stage(
        name="train",
        help="train (resumes the run's latest checkpoint by default)",
        function="gan.training.loop:train",
        # evaluate: what train.metrics_every's snapshots are measured under and with
        sections=("train", "evaluate"),
        code=("gan/training", "gan/metrics", *RUNS_MODELS, "gan/progress.py"),
        inputs=(
            Io("{train.data}"),
            Io("{evaluate.classifier}", why="the extractor of train.metrics_every's snapshots"),
        ),
        outputs=(TRAIN_RUN,),
        says=_trained_line,
        flags=(Flag("--fresh", "train.resume=false", "ignore existing checkpoints of the run"),),
        dry_run=DryRun(
            "gan.training.dry_run:dry_run",
            "show the derived params (train.model.preset), the parameter counts, the memory "
            "estimate and the step time of a few steps on random data; write nothing",
            says=_dry_run_lines,
        ),
    ),
    Stage(
        name="evaluate",
        help="FID, KID, IS, precision/recall, density/coverage of a run's generator or a folder",
        function="gan.metrics.evaluate:evaluate",
        sections=("evaluate",),
        code=("gan/metrics", "gan/training/ema.py", *RUNS_MODELS),
        inputs=(
            Io("{evaluate.data}"),
            Io("{evaluate.run_dir}/export"),
            Io("{evaluate.classifier}"),
            Io("{evaluate.truth}", optional=True),
            Io("{evaluate.images}", optional=True),
        ),
        outputs=(Io("{evaluate.output}"),),
        flags=(
            Flag(
                "--images",
                "evaluate.images",
                "score this folder of images (class subfolders: labelled) in place of the "
                "run's generator",
                metavar="DIR",
            ),
            Flag("--out", "evaluate.output", "write the reports here", metavar="DIR"),
        ),
    ),
    Stage(
        name="promote",
        help="record the run in the registry; promote it if it beats the champion",
        function="gan.registry.promote:promote",
        # evaluate too: a champion measured under another protocol is re-measured
        sections=("promote", "evaluate"),
        code=(
            "gan/registry",
            "gan/metrics",
            "gan/training/checkpoint.py",
            "gan/training/ema.py",
            "gan/onnx_export.py",  # promote.onnx
            *RUNS_MODELS,
        ),
        inputs=(Io("{promote.metrics}"), Io("{promote.run_dir}/export")),
        outputs=(
            Io(
                "{promote.report}",
                why="not the registry: shared state that DVC must never check out or revert",
            ),
        ),
        retry_delays=(),  # never retried: it appends to the registry, a retry would register twice
        says=lambda decision: f"{decision['decision']}: {decision['reason']}",
    ),
)

# The Optuna search as DVC runs it (pipelines/hpo/dvc.yaml): not a pipeline stage, so not in
# STAGES; `gan hpo` (its actions) and flows/hpo.py are its own.
SEARCH = DvcStage(
    name="hpo",
    command="hpo run",
    code=("gan/hpo", "gan/training", "gan/metrics", *RUNS_MODELS, "gan/progress.py"),
    inputs=(Io("{train.data}"), Io("{evaluate.classifier}")),
    watches=(
        Param("hpo"),
        Param("train"),
        CLASSIFIER_PARAMS,
        Param("preprocess.dataset", "names the data and the classifier"),
        Param("evaluate.seed"),
    ),
    outputs=(
        Io("{hpo.runs_dir}", persist=True, why="the study's journal: a rerun continues it"),
        Io("{hpo.output}/trials.csv", cache=False),
        Io("{hpo.output}/trials.md", cache=False),
        Io("{hpo.output}/history.png", cache=False),
    ),
    metrics=(Io("{hpo.output}/best.json", cache=False),),
)


def stage(name: str, stages: tuple[Stage, ...] = STAGES) -> Stage:
    for s in stages:
        if s.name == name:
            return s
    raise GanError(f"no stage {name!r} (have {', '.join(s.name for s in stages)})")


def code_paths(s: DvcStage) -> list[Path]:
    """The stage's code deps as paths (files and folders) of this checkout."""
    return [ROOT / p for p in s.code]
