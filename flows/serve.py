"""Serve every deployment of prefect.yaml, with its schedule, in this one process.

For users without a work pool and workers: `python -m flows.serve` (or `gan serve`) reads
prefect.yaml, so deployments, parameters and schedules are defined in one place, and
starts a Prefect runner that executes scheduled and manually triggered runs (each in a
subprocess) until interrupted. It needs a Prefect server (PREFECT_API_URL).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from gan.errors import GanError

PROJECT_FILE = "prefect.yaml"
SCHEDULE_KINDS = ("cron", "interval", "rrule")
CRON_ENV = "GAN_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # weekly, Monday 03:00; prefect.yaml's build step agrees


def retrain_cron() -> str:
    """The retrain schedule: $GAN_RETRAIN_CRON, else weekly."""
    return os.environ.get(CRON_ENV) or DEFAULT_RETRAIN_CRON


def build_outputs() -> dict[str, Any]:
    """What prefect.yaml's build steps give `prefect deploy`, for its placeholders."""
    return {"retrain-cron": {"stdout": retrain_cron()}}


def read_deployments(project: str | Path = ".") -> list[dict[str, Any]]:
    """The `deployments` entries of the project's prefect.yaml."""
    path = Path(project) / PROJECT_FILE
    if not path.is_file():
        raise GanError(f"{path}: not found (run from the repository root or pass --project)")
    entries = (yaml.safe_load(path.read_text()) or {}).get("deployments") or []
    if not entries:
        raise GanError(f"{path}: no deployments")
    return entries


def schedules_of(entry: dict[str, Any], cron: str | None = None) -> list[Any]:
    """Prefect schedules from a prefect.yaml entry; `cron` replaces its cron schedules."""
    from prefect.schedules import Cron, Interval, RRule
    from prefect.utilities.templating import apply_values

    makers = {"cron": Cron, "interval": Interval, "rrule": RRule}
    out = []
    for item in apply_values(entry.get("schedules") or [], build_outputs()):
        kind = next((k for k in SCHEDULE_KINDS if k in item), None)
        if kind is None:
            raise GanError(
                f"deployment {entry['name']}: schedule {item} has no cron/interval/rrule"
            )
        value = cron if kind == "cron" and cron else item[kind]
        opts = {k: item[k] for k in ("timezone", "active", "slug") if k in item}
        out.append(makers[kind](value, **opts))
    return out


def runner_deployments(
    project: str | Path = ".", only: list[str] | None = None, retrain_cron: str | None = None
) -> list[Any]:
    """RunnerDeployments for prefect.yaml's entries (all, or those named in `only`).

    Entrypoints are relative to `project`, which must be the working directory.
    """
    from prefect.flows import load_flow_from_entrypoint

    entries = read_deployments(project)
    names = [e["name"] for e in entries]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise GanError(f"no deployment named {', '.join(unknown)} (have {', '.join(names)})")
    out = []
    for e in entries:
        if only and e["name"] not in only:
            continue
        flow = load_flow_from_entrypoint(e["entrypoint"], use_placeholder_flow=False)
        out.append(
            flow.to_deployment(
                name=e["name"],
                description=e.get("description"),
                tags=e.get("tags"),
                parameters=e.get("parameters") or {},
                schedules=schedules_of(e, retrain_cron if e["name"] == "retrain" else None),
                concurrency_limit=e.get("concurrency_limit"),
            )
        )
    return out


def serve(
    project: str | Path = ".",
    only: list[str] | None = None,
    retrain_cron: str | None = None,
    limit: int | None = 1,
) -> None:
    """Serve the deployments until interrupted; `limit` runs at a time (they share files)."""
    from prefect import serve as prefect_serve

    os.chdir(project)
    prefect_serve(*runner_deployments(".", only, retrain_cron), limit=limit)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--project", default=".", help="directory holding prefect.yaml (default .)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="serve only these deployments")
    p.add_argument(
        "--retrain-cron",
        help=f'cron of the retrain schedule, e.g. "0 3 * * *" (default ${CRON_ENV})',
    )
    p.add_argument("--limit", type=int, default=1, help="concurrent runs (default 1)")
    return p


def run(args: argparse.Namespace) -> None:
    """Entry point of `python -m flows.serve` and of `gan serve`."""
    serve(args.project, args.only, args.retrain_cron, args.limit)


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="flows.serve", description=__doc__))
    try:
        run(parser.parse_args(argv))
    except GanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
