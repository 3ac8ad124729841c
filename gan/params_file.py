"""Reading a params file: YAML with unique keys, `-S key=value` overrides, one-line errors.

The schema (gan/config.py) says what a valid params.yaml holds; this module turns a file
into the mapping it validates and a validation failure into lines that name the file and
the key (``params.yaml: train.batch_size: must be greater than 0``). gan.config binds
them to the schema as load_params and parse_params. yaml is imported only when a file is
read, so that loading an export (which validates its model section) needs none.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gan.errors import GanError

M = TypeVar("M", bound=BaseModel)


def format_error(exc: ValidationError, source: str) -> str:
    """A line per error: `<source>: <dotted key>: <message>`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], data: dict[str, Any] | None, source: str) -> M:
    """`data` (a params mapping) as `model`, or one GanError naming `source` and the keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GanError(f"{source}: must be a mapping of sections")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise GanError(format_error(exc, source)) from None
    except RecursionError:
        raise GanError(f"{source}: nested too deeply to be a params file") from None


@functools.cache
def _unique_key_loader() -> type:
    """YAML's safe loader, except that a key given twice in one mapping is an error (the
    plain loader keeps the last one silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
            return super().construct_mapping(node, deep)

        def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
            try:
                return super().construct_yaml_int(node)
            except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
                raise yaml.constructor.ConstructorError(
                    None, None, f"a number of {len(node.value)} characters is too long",
                    node.start_mark,
                ) from None  # fmt: skip

    UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", UniqueKeyLoader.construct_yaml_int)
    return UniqueKeyLoader


def _yaml(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise GanError(f"{source}: not valid YAML ({_one_line(exc)})") from None
    except RecursionError:
        raise GanError(f"{source}: nested too deeply to be a params file") from None


def _one_line(exc: Exception) -> str:
    """A YAML error as `line L, column C: what`, not PyYAML's lines quoting the text."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = [getattr(exc, k, None) for k in ("context", "problem")]
    what = "; ".join(w for w in what if w) or " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else what


def read_params_file(path: str | Path, overrides: list[str] | None = None) -> Any:
    """The file's YAML (unique keys) with the dotted ``key=value`` overrides applied."""
    path = Path(path)
    if path.is_dir():
        raise GanError(f"{path}: is a folder, not a params file")
    if not path.is_file():
        raise GanError(f"{path}: params file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GanError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise GanError(f"{path}: cannot read ({exc.strerror})") from None
    data = _yaml(text, str(path)) or {}
    for item in overrides or []:
        apply_override(data, item)
    return data


def apply_override(data: Any, item: str) -> None:
    """Set one dotted ``key=value`` (the value read as YAML) in the params mapping."""
    shown = repr(item if len(item) <= 60 else f"{item[:60]}...")
    if "=" not in item:
        raise GanError(f"override {shown}: expected key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise GanError(f"override {shown}: the key needs a name between each '.'")
    if not isinstance(data, dict):
        raise GanError(f"override {shown}: the params file is not a mapping of sections")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise GanError(f"override {shown}: {p} is not a section")
    node[parts[-1]] = _yaml(raw, f"override {shown}")
