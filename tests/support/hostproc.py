"""Test helper: wait for a host process to appear."""
from __future__ import annotations

import os
import time


def wait_for_host_process(cmdline: bytes, timeout: float = 20.0) -> None:
    """Until a host process with this exact command line runs (a loaded machine can
    take a while to start it), plus a moment for it to reach its first wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        time.sleep(0.3)
                        return
            except (OSError, ValueError):
                continue
        time.sleep(0.05)
    raise AssertionError(f"no host process {cmdline!r}")
