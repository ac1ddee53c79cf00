"""Exit codes and one-line error messages of the console scripts.

Bad input exits 2 with one line naming the field; a machine that fails (disk full, I/O error,
out of memory) exits 1, also with one line. The CLI prints these; the rules live here.
"""

from __future__ import annotations

import errno
import os
from typing import Final

from planner.specs.errors import ConfigError

EXIT_BAD_INPUT: Final = 2
"""Exit code for input the planner refuses (a config value, a path)."""
EXIT_MACHINE_FAILED: Final = 1
"""Exit code when the input was fine but the machine failed (disk full, I/O error)."""
MACHINE_ERRNOS: Final = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EFBIG}
)
"""``OSError`` numbers that blame the machine, not the path the user gave (exit code 1)."""


def bad_input_line(error: ConfigError) -> str:
    """``error: <field>: <problem>`` on one line."""
    return f"error: {' '.join(str(error).split())}"


def environment_failure(error: OSError) -> tuple[str, int]:
    """A file-system error as one line naming the path, and its exit code (1 machine, 2 path)."""
    where = f"{error.filename}: " if error.filename else ""
    cause = error.strerror or str(error) or os.strerror(error.errno or 0)
    code = EXIT_MACHINE_FAILED if error.errno in MACHINE_ERRNOS else EXIT_BAD_INPUT
    return " ".join(f"error: {where}{cause}".split()), code
