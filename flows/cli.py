"""`gan` subcommands that live in flows/, plugged into gan/cli.py by entry point.

gan/ never imports flows/ (imports point down: docs/architecture.md, 'Layout'):
pyproject.toml lists these functions under the `gan.commands` entry point group and
gan/cli.py calls each with its subparsers, so `gan serve` works without gan/ knowing that
flows/ exists.
"""

from __future__ import annotations

import argparse


def serve(sub: argparse._SubParsersAction) -> None:
    """`gan serve`: every prefect.yaml deployment with its schedule (flows/serve.py)."""
    from flows.serve import add_arguments, run

    about = "serve every prefect.yaml deployment with its schedule"
    parser = sub.add_parser("serve", help=about, description=about)
    add_arguments(parser).set_defaults(fn=run)
