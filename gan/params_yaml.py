"""YAML for params files and `-S key=value` overrides: safe, and a key given twice is an error.

Apart from gan/config.py so that loading an export (gan.export), which validates a family's
model section through gan.config, does not import yaml.
"""

from __future__ import annotations

from typing import Any

import yaml

from gan.errors import GanError


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (the
    plain loader keeps the last one silently)."""

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


def read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise GanError(f"{source}: not valid YAML ({exc})") from None
    except RecursionError:
        raise GanError(f"{source}: nested too deeply to be a params file") from None
