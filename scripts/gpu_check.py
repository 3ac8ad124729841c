"""What scripts/gpu-check.sh does in Python: the package lists, the torch preflight, and
the CPU fallback's stand-in for the GPU machine's environment.

preflight [--cpu]: one clear line for each thing the project needs that this torch lacks:
  CUDA, bf16, NCCL and Triton (torch.compile's GPU backend) on the GPU machine, and on
  both the CPU and the GPU: every torch name the project's code uses (`torch.x.y`,
  `F.z` through its import aliases) and every keyword it passes to a torch callable
  (torch.load's weights_only, say), read from the source, so a torch older than
  requirements.lock's (the GPU machine's 2.11) is checked against all of gan/ at once.
  Exit status 1 when anything is missing.
isolate SITE: link into SITE (an empty venv's site-packages) the installed distributions
  of the `machine` and `ship` lists of scripts/gpu-packages.txt and what the machine's
  ones require, from this interpreter's environment, so that a run there sees only what
  the GPU machine will: an import the lists miss fails here as it would there.
list KIND: a list of scripts/gpu-packages.txt, one a line (for the shell scripts): the
  `machine` or `ship` names, the GPU machine's `python` version, its wheel `platform`s.
pip-target: pip's options that pick the GPU machine's wheels (its Python, its platforms).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = REPO / "scripts" / "gpu-packages.txt"
# The code the GPU check runs: `gan train` (all of gan/, any family), `pytest -m gpu` and
# the benchmark, with the test and benchmark modules they import.
GPU_PATH = (
    "gan",
    "tests/test_gpu.py",
    "tests/conftest.py",
    "tests/test_training.py",
    "tests/test_stylegan2_family.py",
    "benchmarks/gpu.py",
    "benchmarks/harness.py",
    "benchmarks/families.py",
)

# torch names the project reaches through an instance, which the source scan cannot resolve
THROUGH_INSTANCES = {"torch.nn.Module.compile": "gan/training/session.py (train.compile)"}


def listed(kind: str) -> list[str]:
    """One list of scripts/gpu-packages.txt: the second word of each line `kind` starts."""
    names = []
    for line in PACKAGES.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == kind:
            names.append(words[1])
    return names


def pip_target() -> list[str]:
    """pip's options for the GPU machine's wheels: gpu-wheels.sh downloads with them and
    gpu-check.sh --cpu tries the offline install with them."""
    options = ["--python-version", *listed("python"), "--implementation", "cp"]
    for platform in [*listed("platform"), "any"]:
        options += ["--platform", platform]
    return options


def gpu_path_files() -> list[Path]:
    files = []
    for entry in GPU_PATH:
        path = REPO / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


# -- preflight -------------------------------------------------------------------------------
def torch_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the torch name it stands for, from the file's imports."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torch":
                    aliases[a.asname or "torch"] = a.name if a.asname else "torch"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def dotted(node: ast.AST) -> list[str] | None:
    """["F", "relu"] for `F.relu`; None for anything but a name and its attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def torch_uses(path: Path) -> dict[str, tuple[str, set[str]]]:
    """Each torch name the file uses -> (where first, the keywords it is called with)."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = torch_aliases(tree)
    uses: dict[str, tuple[str, set[str]]] = {}
    for node in ast.walk(tree):
        keywords: set[str] = set()
        if isinstance(node, ast.Import):
            chains = [[a.name] for a in node.names if a.name.split(".")[0] == "torch"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            chains = [[node.module, a.name] for a in node.names]
        elif isinstance(node, ast.Attribute | ast.Call):
            parts = dotted(node.func if isinstance(node, ast.Call) else node)
            if not parts or parts[0] not in aliases:
                continue
            chains = [[aliases[parts[0]], *parts[1:]]]
            if isinstance(node, ast.Call):
                keywords = {k.arg for k in node.keywords if k.arg}
        else:
            continue
        for chain in chains:
            name = ".".join(chain)
            where, seen = uses.get(name, (f"{path.relative_to(REPO)}:{node.lineno}", set()))
            uses[name] = (where, seen | keywords)
    return uses


def resolve(name: str):
    """The object a dotted torch name stands for; LookupError if this torch has none."""
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:
                raise LookupError(name) from None
    return obj


def accepts(fn, keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return True
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def api_gaps(version: str) -> list[str]:
    """A line per torch name or keyword the project's code uses and this torch lacks."""
    uses = {name: (where, set()) for name, where in THROUGH_INSTANCES.items()}
    for path in gpu_path_files():
        for name, (where, keywords) in torch_uses(path).items():
            first, seen = uses.get(name, (where, set()))
            uses[name] = (first, seen | keywords)
    gaps = []
    for name in sorted(uses):
        where, keywords = uses[name]
        try:
            obj = resolve(name)
        except LookupError:
            gaps.append(f"torch {version} lacks {name} (used at {where})")
            continue
        gaps += [
            f"torch {version}'s {name} takes no keyword {k!r} (used at {where})"
            for k in sorted(keywords)
            if callable(obj) and not accepts(obj, k)
        ]
    return gaps


def device_gaps(torch) -> list[str]:
    """What the GPU rows and tests need of the machine's CUDA build."""
    if not torch.cuda.is_available():
        return [f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"]
    gaps = []
    if not torch.cuda.is_bf16_supported():
        gaps.append(f"{torch.cuda.get_device_name()} has no bf16 (train.precision: bf16)")
    else:
        x = torch.ones(8, 8, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if (x @ x).dtype != torch.bfloat16:
                gaps.append("torch.autocast on cuda does not give bf16 matmuls")
    if not (torch.distributed.is_available() and torch.distributed.is_nccl_available()):
        gaps.append(f"torch {torch.__version__} has no NCCL (train.world_size > 1)")
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        has_triton = None
    if has_triton is not None and not has_triton():
        gaps.append("no Triton for torch.compile's CUDA backend (train.compile)")
    return gaps


def preflight(cpu: bool) -> int:
    try:
        import torch
    except ImportError as exc:
        print(f"gpu-check: torch does not import: {exc}")
        return 1
    gaps = ([] if cpu else device_gaps(torch)) + api_gaps(torch.__version__)
    for line in gaps:
        print(f"gpu-check: {line}")
    device = "the CPU (--cpu)" if cpu else torch.cuda.get_device_name()
    state = f"{len(gaps)} missing" if gaps else "everything the project uses is there"
    print(f"gpu-check: torch {torch.__version__} (CUDA {torch.version.cuda}) on {device}: {state}")
    return 1 if gaps else 0


# -- the CPU fallback's environment ----------------------------------------------------------
def required(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions `names` and everything they require, extras included."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo = [(n, frozenset()) for n in names]
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, extras) in done:
            continue
        done.add((key, extras))
        dist = seen.setdefault(key, metadata.distribution(name))
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in (extras or {""})
            ):
                todo.append((req.name, frozenset(req.extras)))
    return list(seen.values())


def isolate(site: Path) -> list[str]:
    """Link the distributions the GPU machine has or gets into `site`; their names."""
    dists = required(listed("machine")) + [metadata.distribution(n) for n in listed("ship")]
    for dist in dists:
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            link = site / top
            if not link.exists():  # a namespace folder (nvidia/) several of them share
                link.symlink_to(Path(dist.locate_file(top)).resolve())
    return sorted({d.metadata["Name"] for d in dists})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("preflight").add_argument("--cpu", action="store_true")
    sub.add_parser("isolate").add_argument("site", type=Path)
    sub.add_parser("pip-target")
    sub.add_parser("list").add_argument("kind", choices=["machine", "ship", "python", "platform"])
    args = ap.parse_args()
    if args.command == "preflight":
        return preflight(args.cpu)
    if args.command == "isolate":
        names = isolate(args.site)
        print(f"gpu-check: --cpu: {len(names)} distributions of this environment linked")
    else:
        print("\n".join(pip_target() if args.command == "pip-target" else listed(args.kind)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
