"""System-wide limits more than one server shows: one place for each."""
from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)

PID_MAX = 32768           # Linux's default /proc/sys/kernel/pid_max on small systems
PID_MAX_MIN = 300         # XINIM_PID_MAX below this is raised to it
PID_MAX_LIMIT = 1 << 20   # and above this lowered: node client endpoints start there


def host_sysctl(path: str, default: int) -> int:
    """The first number in the host's ``/proc/sys`` file ``path`` (a limit XINIM
    shows as the host has it), or ``default`` when it cannot be read."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def pid_max_from_env(environ: "os._Environ[str] | dict[str, str]" = os.environ) -> int:
    """``XINIM_PID_MAX`` (pids are below it, like Linux's pid_max): default
    32768, at least 300 -- small values let tests wrap pids in seconds -- and at
    most 2**20 (the lattice endpoints of joined nodes' clients start there).
    PM allocates by it; /proc/sys/kernel/pid_max shows it."""
    text = environ.get("XINIM_PID_MAX", "")
    if not text:
        return PID_MAX
    try:
        value = int(text, 0)
    except ValueError:
        log.warning("XINIM_PID_MAX=%r is not a number: using %d", text, PID_MAX)
        return PID_MAX
    if value < PID_MAX_MIN:
        log.warning("XINIM_PID_MAX=%d is below %d: using %d", value, PID_MAX_MIN, PID_MAX_MIN)
    if value > PID_MAX_LIMIT:
        log.warning("XINIM_PID_MAX=%d is above %d: using %d", value, PID_MAX_LIMIT, PID_MAX_LIMIT)
    return min(max(value, PID_MAX_MIN), PID_MAX_LIMIT)


CAP_SYS_RESOURCE = 24


@functools.cache
def host_caps() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the host side, from /proc (read
    once: the host side's capabilities do not change while it runs).  XINIM
    root has these (capget shows them, the servers check them); other users none."""
    vals: dict[bytes, int] = {}
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                key, _, rest = line.partition(b":")
                if key in (b"CapEff", b"CapPrm", b"CapInh"):
                    vals[key] = int(rest.strip(), 16)
    except (OSError, ValueError):
        pass
    return vals.get(b"CapEff", 0), vals.get(b"CapPrm", 0), vals.get(b"CapInh", 0)


def root_capable(cap: int) -> bool:
    """Whether XINIM root has capability ``cap`` (the host side's effective set:
    in a container without, e.g., CAP_SYS_RESOURCE root lacks it, as natively)."""
    return bool(host_caps()[0] >> cap & 1)
