"""No import cycles inside gan/: the modules' top-level imports form a DAG.

Function-level (lazy) imports are left out: they run after every module has loaded, and
the one that crosses layers (gan.config validating train.model through gan.models) is
deliberate (see tests/test_imports.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

GAN = REPO / "gan"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.parse(path.read_text()).body:  # module level only
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` needs the submodule (its package is initialising anyway)
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in modules]
            if len(names) < len(subs):  # some names are objects of the module itself
                names.append(node.module)
        found |= {n for n in names if n in modules}
    return found


def test_gan_modules_import_each_other_without_cycles():
    files = {module_name(p): p for p in GAN.rglob("*.py")}
    modules = set(files)
    graph = {m: top_level_imports(p, modules) - {m} for m, p in files.items()}
    done: set[str] = set()

    def visit(m: str, stack: list[str]) -> None:
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m) :] + [m]))
        if m in done:
            return
        for dep in sorted(graph[m]):
            visit(dep, [*stack, m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    assert len(done) == len(graph) > 50
