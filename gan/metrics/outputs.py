"""A stage's output folder replaced whole: all of its files from one run, or the previous ones.

Each file is already written atomically (gan.io), but metrics.json from a new run beside a
samples.png from an old one would still be a lie. `replaced_dir` yields a fresh temp folder
beside the output; when the block succeeds the files are fsynced and the folder takes the
output's place by renames in the same parent: the old folder is renamed aside, the new one
renamed in, the old one deleted. A failure inside the block leaves the previous outputs as
they were. (Only a crash of the process between the two renames leaves the old outputs in
`.<name>.<random>.tmp.old` and no output folder; the next run starts from there.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gan.errors import GanError
from gan.io import fsync_path


@contextlib.contextmanager
def replaced_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp dir next to `out`; on success it becomes `out`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GanError(f"{out}: the output must be a folder, not a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = tmp.with_name(tmp.name + ".old")  # unique, like tmp
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                fsync_path(p)
        fsync_path(tmp)
        if out.exists():
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            if old.exists() and not out.exists():
                os.rename(old, out)  # put the previous outputs back
            raise
        fsync_path(out.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
