"""``--trace``: one strace-like line per call, with the XINIM path it took."""
from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING, TextIO

from ptrace.syscall.prototypes import SYSCALL_PROTOTYPES

from ...intercept.tracee import Tracee
from ...lib.linux_abi import AT_FDCWD
from .. import renumber
from ..dispatch import SYSCALLS

if TYPE_CHECKING:
    from .flight import InFlight


def trace_line(out: TextIO, flight: "InFlight", result: int, xinim_pid: int) -> None:
    entry = SYSCALLS.get(flight.xinim)
    name = renumber.route(flight.linux_nr).linux_name
    owner = entry.owner.upper() if entry else "?"
    micros = (time.perf_counter_ns() - flight.started) / 1000
    shown = (f"-1 {errno.errorcode.get(-result, -result)}" if -4096 < result < 0
             else f"{result:#x}" if result > 0xFFFF else str(result))
    proto = SYSCALL_PROTOTYPES.get(name, ("long", tuple(("long", "") for _ in range(6))))[1]
    args = ", ".join(_arg(flight.tracee, ctype, argname, value)
                     for (ctype, argname), value in zip(proto, flight.args))
    xname = entry.name if entry else "?"
    out.write(f"[{xinim_pid}] {name}({args}) = {shown}  "
              f"<XINIM {flight.xinim} {xname} \u2192 {owner}, {micros:.0f} \u00b5s>\n")
    out.flush()


def _arg(tracee: Tracee, ctype: str, name: str, value: int) -> str:
    if ctype == "const char *" and value:
        try:
            text = tracee.read_cstring(value, 256)
        except OSError:
            return hex(value)
        shown = text[:64].decode(errors="backslashreplace")
        return f'"{shown}"' + ("..." if len(text) > 64 else "")
    if value >= 1 << 63:
        value -= 1 << 64
    if "dfd" in name or name == "dirfd":
        value = value & 0xFFFFFFFF
        value = value - (1 << 32) if value & 0x80000000 else value
        if value == AT_FDCWD:
            return "AT_FDCWD"
    return str(value) if -4096 < value < 4096 else hex(value)
