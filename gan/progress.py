"""Progress bars that stay readable in a terminal and in logs (DVC, Prefect, CI)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(
    total: int, desc: str, initial: int = 0, unit: str = "it", disable: bool = False
) -> tqdm:
    """A bar with rate and ETA; outside a terminal it refreshes every 10 s, not per step."""
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=disable,
        mininterval=0.2 if interactive else 10.0,
        dynamic_ncols=interactive,
        ncols=None if interactive else 100,
    )
