"""Warnings as one line each (`warning: ...`), the way the CLI reports errors, and a
library's exception as one short line for those errors (`exception_line`).

Python prints a warning as two lines, the second quoting the source line that issued it:
a user of `gan` wants to read what happened (a torn history line, a huge image), not our
code. A warning repeated word for word (the history read twice) is shown once. Only the
format changes, so code that records warnings (pytest.warns) still gets them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Format every warning shown in the block as one `warning:` line."""
    shown: set[str] = set()

    def one_line(message, category, filename, lineno, line=None) -> str:
        text = " ".join(str(message).split())  # one line, whatever the warning's layout
        if text in shown:
            return ""
        shown.add(text)
        return f"warning: {text}\n"

    saved = warnings.formatwarning
    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = saved


def exception_line(exc: BaseException, limit: int = 200) -> str:
    """A library's exception as one short line (tarfile's lists every method it tried,
    onnxruntime's spans lines)."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__
