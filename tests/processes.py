"""The processes a test leaves behind, looked for among the test process's own descendants.

The test process becomes a child subreaper (Linux): a process whose parent exits (a
`flwr run` SuperLink in the background, Ray's daemons) is adopted by the test process rather
than by init, so everything a test started stays among its descendants, and a check for
leftovers looks at nothing else on the machine.
"""

from __future__ import annotations

import ctypes
import os
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def running_descendants() -> dict[int, str]:
    """Process id -> command line of every live descendant (exited ones are not running)."""
    found = {}
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                found[process.pid] = " ".join(process.cmdline())[:160]
        except psutil.NoSuchProcess:
            continue
    return found


class Leftovers:
    """Descendants started since `__init__` that are still running."""

    def __init__(self) -> None:
        adopt_orphans()
        self.before = set(running_descendants())

    def __call__(self) -> dict[int, str]:
        return {pid: cmd for pid, cmd in running_descendants().items() if pid not in self.before}

    def after(self, seconds: float) -> dict[int, str]:
        """What is still running `seconds` from now (or none, as soon as all have exited):
        Ray's workers leave on their own a few seconds after their raylet stops."""
        deadline = time.monotonic() + seconds
        while (left := self()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left
