"""The rich console every human-facing command prints through.

On a terminal rich fits tables to its width. Piped into a file or a CI log there is no width to
fit, and rich's 80-column default truncates table cells ("pen…"), so output that is not a
terminal gets a generous fixed width instead.
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 160


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
