"""The `stages:` of every dvc.yaml, written from the stage table (gan/stages.py).

`python -m gan.dvc_stages` rewrites them after a change to the table; `--check` only says
which differ (tests/test_stages.py fails while one does). Only the `stages:` block is
written: a file's header comments, vars, metrics and plots are its own.

Paths stay templates of the pipeline's params file, so `dvc exp run -S train.run=x` moves
them: a key the file sets is written as ${key}; a key it leaves unset is written as the
path gan/config.py derives for it (gan/paths.py, read as templates: DERIVED), e.g.
evaluate.run_dir as ${train.runs_dir}/${train.run}. tests/test_stages.py checks that each
written path resolves to the path Params gives.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gan.errors import GanError
from gan.paths import derive_paths
from gan.stages import KEY, ROOT, SEARCH, STAGES, DvcStage, Io, Stage


class _Symbols:
    """Stands in for Params in gan/paths.py's derive_paths: each key reads as its own
    template, params.train.run as "{train.run}", so the derivation comes out as templates."""

    def __init__(self, section: str = "") -> None:
        self._section = section

    def __getattr__(self, key: str) -> Any:
        if not self._section:
            return _Symbols(key)
        return "{" + f"{self._section}.{key}" + "}"


def derived_templates() -> dict[str, str]:
    """Each path gan/config.py derives when the params leave it unset, as a template:
    {"evaluate.run_dir": "{train.runs_dir}/{train.run}", ...}, from gan/paths.py itself."""
    found: dict[str, str] = {}

    def fill(section: str, values: dict[str, Any]) -> None:
        found.update({f"{section}.{k}": str(v) for k, v in values.items()})

    derive_paths(_Symbols(), fill)  # type: ignore[arg-type]
    return found


DERIVED = derived_templates()
DEFAULT_PARAMS = "params.yaml"  # what DVC reads unless a stage names another file
HEADER = "stages:  # written from gan/stages.py by `python -m gan.dvc_stages`: edit the table"


@dataclass(frozen=True)
class Pipeline:
    """A dvc.yaml: the stages it runs, on which params file (at the repository root)."""

    file: str  # relative to the repository root
    params: str
    stages: tuple[DvcStage, ...]

    def wdir(self) -> str:
        """The repository root relative to the file: every stage runs there."""
        return Path(os.path.relpath(ROOT, (ROOT / self.file).parent)).as_posix()


def from_stage(name: str, stages: tuple[Stage, ...] = STAGES) -> tuple[Stage, ...]:
    """The stages from `name` on, in pipeline order."""
    return stages[[s.name for s in stages].index(name) :]


def pipelines(stages: tuple[Stage, ...] = STAGES) -> tuple[Pipeline, ...]:
    """The repository's dvc.yaml files. The StyleGAN2, BigGAN and R3GAN presets reuse the
    default pipeline's data and classifier (one protocol, one leaderboard); CycleGAN has its
    own."""
    return (
        Pipeline("dvc.yaml", DEFAULT_PARAMS, stages),
        Pipeline(
            "pipelines/stylegan2/dvc.yaml", "params-stylegan2.yaml", from_stage("train", stages)
        ),
        Pipeline("pipelines/biggan/dvc.yaml", "params-biggan.yaml", from_stage("train", stages)),
        Pipeline("pipelines/r3gan/dvc.yaml", "params-r3gan.yaml", from_stage("train", stages)),
        Pipeline("pipelines/cyclegan/dvc.yaml", "params-cyclegan.yaml", stages),
        Pipeline("pipelines/hpo/dvc.yaml", DEFAULT_PARAMS, (SEARCH,)),
    )


class Unset(GanError):
    """A path names a key the params file does not set and gan/config.py does not derive."""


def set_keys(data: Any, prefix: str = "") -> set[str]:
    """The dotted keys a params mapping sets to something other than null."""
    keys = set()
    for k, v in (data or {}).items():
        if v is None:
            continue
        keys.add(f"{prefix}{k}")
        if isinstance(v, dict):
            keys |= set_keys(v, f"{prefix}{k}.")
    return keys


def template(text: str, keys: set[str], params: str) -> str:
    """`text` ("{train.run_dir}/export") as DVC interpolates it from the params file."""

    def one(match) -> str:
        key = match[1]
        if key in keys:
            return "${" + key + "}"
        if key in DERIVED:
            return template(DERIVED[key], keys, params)
        raise Unset(f"{params} does not set {key}, and gan/config.py does not derive it")

    return KEY.sub(one, text)


def path_entry(io: Io, keys: set[str], params: str) -> tuple[Any, str] | None:
    """A deps/outs entry and its comment: the params key when the path is derived, and why."""
    try:
        path = template(io.template, keys, params)
    except Unset:
        if io.optional:
            return None
        raise
    derived = io.template.replace("{", "").replace("}", "") if set(io.names()) - keys else ""
    flags = io.dvc_flags()
    return ({path: flags} if flags else path), "; ".join(x for x in (derived, io.why) if x)


def stage_entries(stage: DvcStage, pipeline: Pipeline, keys: set[str]) -> dict[str, Any]:
    """The stage as DVC reads it: {field: [(entry, comment), ...] or a string}."""
    own = pipeline.params == DEFAULT_PARAMS

    def paths(ios: tuple[Io, ...]) -> list[tuple[Any, str]]:
        found = (path_entry(io, keys, pipeline.params) for io in ios)
        return [e for e in found if e is not None]

    params: list[tuple[Any, str]] = [(p.key, p.why) for p in stage.dvc_params()]
    if not own:  # a params file other than params.yaml is named
        params = [({pipeline.params: [k for k, _ in params]}, "")]
    fields: dict[str, Any] = {}
    if pipeline.wdir() != ".":
        fields["wdir"] = pipeline.wdir()
    fields["cmd"] = f"gan {stage.gan_command()}" + ("" if own else f" -p {pipeline.params}")
    fields["deps"] = paths(stage.inputs) + [(c, "") for c in stage.code]
    fields["params"] = params
    fields["outs"] = paths(stage.outputs)
    fields["metrics"] = paths(stage.metrics)
    return {k: v for k, v in fields.items() if v != []}


def _lines(entry: Any, comment: str, indent: str, param_whys: dict[str, str]) -> list[str]:
    """`- entry` lines of a YAML list, comments aligned after the value."""
    note = f"  # {comment}" if comment else ""
    if isinstance(entry, str):
        return [f"{indent}- {entry}{note}"]
    ((key, value),) = entry.items()
    out = [f"{indent}- {key}:"]
    if isinstance(value, list):  # params of a named file
        out += [
            f"{indent}    - {k}" + (f"  # {param_whys[k]}" if param_whys.get(k) else "")
            for k in value
        ]
    else:  # output flags
        items = list(value.items())
        out += [
            f"{indent}    {k}: {str(v).lower()}" + (note if i == len(items) - 1 else "")
            for i, (k, v) in enumerate(items)
        ]
    return out


def render_stages(pipeline: Pipeline, params_data: dict[str, Any]) -> str:
    """The `stages:` block of the pipeline's dvc.yaml."""
    keys = set_keys(params_data)
    lines = [HEADER]
    for n, stage in enumerate(pipeline.stages):
        whys = {p.key: p.why for p in stage.dvc_params()}
        lines += [""] if n else []
        lines.append(f"  {stage.name}:")
        for field, value in stage_entries(stage, pipeline, keys).items():
            if isinstance(value, str):
                lines.append(f"    {field}: {value}")
                continue
            lines.append(f"    {field}:")
            for entry, comment in value:
                lines += _lines(entry, comment, "      ", whys)
    return "\n".join(lines) + "\n"


def params_data(pipeline: Pipeline, root: Path = ROOT) -> dict[str, Any]:
    return yaml.safe_load((root / pipeline.params).read_text()) or {}


def rewritten(text: str, block: str, name: str) -> str:
    """`text` with its top-level `stages:` block (up to the next top-level line) replaced."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("stages:")), None)
    if start is None:
        raise GanError(f"{name}: no top-level `stages:` to write")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()),
        len(lines),
    )
    tail = lines[end:]
    return "".join(lines[:start]) + block + ("\n" if tail else "") + "".join(tail)


def expected(pipeline: Pipeline, root: Path = ROOT) -> str:
    """The pipeline's dvc.yaml as it should be: its own text, the stages from the table."""
    data = params_data(pipeline, root)
    block = render_stages(pipeline, data)
    check_parses(block, pipeline, set_keys(data), pipeline.file)
    return rewritten((root / pipeline.file).read_text(), block, pipeline.file)


def check_parses(block: str, pipeline: Pipeline, keys: set[str], name: str) -> None:
    """The written block reads back as the stages it was written from (no stray `#`, `: `)."""
    meant = {
        stage.name: {
            field: value if isinstance(value, str) else [entry for entry, _ in value]
            for field, value in stage_entries(stage, pipeline, keys).items()
        }
        for stage in pipeline.stages
    }
    if yaml.safe_load(block)["stages"] != meant:
        raise GanError(f"{name}: the written stages do not read back as written")


def stale(root: Path = ROOT, write: bool = False) -> list[str]:
    """The dvc.yaml files whose stages differ from the table (rewritten when `write`)."""
    changed = []
    for pipeline in pipelines():
        new = expected(pipeline, root)
        path = root / pipeline.file
        if path.read_text() != new:
            changed.append(pipeline.file)
            if write:
                path.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gan.dvc_stages", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only list the files that differ")
    args = p.parse_args(argv)
    try:
        changed = stale(write=not args.check)
    except GanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "differs from gan/stages.py" if args.check else "rewritten"
    for name in changed:
        print(f"{name}: {verb}")
    return 1 if changed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
