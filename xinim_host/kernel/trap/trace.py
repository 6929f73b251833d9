"""``--trace`` and its strace options: one strace-format line per call, plus
what strace cannot know (the XINIM number, the server that answered, its time).

What is shown: every call the seccomp filter stops -- those XINIM serves, those
it serves and then lets the host finish, and those it answers ENOSYS (written
as strace writes them).  Calls the filter lets the host run untouched (futex,
the data path of host-run descriptors, ...) never stop, so they are not in
the trace; ``docs/syscalls.md`` lists them.  Exits, kills and delivered signals
get strace's ``+++``/``---`` lines; the first program's ``execve`` (done before
tracing starts) is written from what the launcher asked for.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, TextIO

from ...lib import protocol as p
from .trace_format import CLASSES, CallFormat, Memory, quote, result_text, siginfo_text, signame


def _start_stack(host_pid: int) -> int:
    """Where argc sits on a process's first stack (/proc/PID/stat's startstack)."""
    try:
        with open(f"/proc/{host_pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return int(fields[25])             # field 28 of the whole line
    except (OSError, ValueError, IndexError):
        return 0


_ENDPOINTS = {p.KERNEL_PID: "kernel", p.INIT_PID: "init", p.VFS_PID: "VFS", p.PM_PID: "PM",
              p.MM_PID: "MM", p.NET_PID: "NET"}
_REPLY_NAMES = {p.VFS_REPLY: "VFS reply", p.PROC_REPLY: "PM reply", p.MM_REPLY: "MM reply",
                p.NET_REPLY: "NET reply"}


def _endpoint_name(pid: int) -> str:
    return _ENDPOINTS.get(pid, f"pid {pid}")


def _message_name(m_type: int) -> str:
    cls = p.REQUESTS.get(m_type)
    if cls is not None:
        return cls.__name__
    return _REPLY_NAMES.get(m_type, f"type {m_type}")


class TraceUsageError(ValueError):
    """A malformed ``-e`` expression (the CLI turns it into a usage error)."""


def parse_expressions(exprs: Iterable[str]) -> tuple[Callable[[str], bool], str]:
    """strace's ``-e trace=SET`` and ``-e status=SET``: (does a name show?, status).

    SET is a comma list of names and ``%class``es, optionally ``!``-negated as a
    whole (strace's rule); a bare ``-e SET`` means ``trace=SET``.
    """
    chosen: set[str] | None = None
    negate = False
    status = "all"
    for expr in exprs:
        key, _, value = expr.partition("=")
        if not _:
            key, value = "trace", expr
        if key in ("t", "trace"):
            negate = value.startswith("!")
            names: set[str] = set()
            for item in value.lstrip("!").split(","):
                item = item.strip()
                if not item:
                    continue
                if item in ("all", "%all"):       # all, or !all: nothing
                    chosen, negate = (set(), False) if negate else (None, False)
                    break
                if item.startswith("%"):
                    cls = CLASSES.get(item[1:])
                    if cls is None:
                        raise TraceUsageError(f"invalid system call class '{item}'")
                    names |= cls
                else:
                    names.add(item)
            else:
                chosen = names
        elif key == "status":
            if value not in ("all", "failed", "successful"):
                raise TraceUsageError(f"unsupported status '{value}' (all, failed, successful)")
            status = value
        else:
            raise TraceUsageError(f"invalid -e qualifier '{key}'")
    if chosen is None:
        return (lambda name: not negate), status
    picked = frozenset(chosen)
    return ((lambda name: name not in picked) if negate else picked.__contains__), status


@dataclass
class Stat:
    calls: int = 0
    errors: int = 0
    ns: int = 0
    server: str = ""


@dataclass
class TraceOptions:
    """What ``--trace``/strace's options asked for."""

    out: TextIO | None = None              # one stream for all (None with per_process)
    path: str | None = None                # -o FILE; with -ff each process writes FILE.PID
    per_process: bool = False              # -ff
    exprs: list[str] = field(default_factory=list)
    strsize: int = 32                      # -s
    timestamps: str = ""                   # "", "t", "tt", "ttt", "r"
    syscall_times: bool = False            # -T
    summary: bool = False                  # -c
    xinim: bool = True                     # the <XINIM ...> column
    ipc: bool = False                      # --ipc: a line per lattice message


class Strace:
    """Writes the trace; the router calls it on every event it knows of."""

    def __init__(self, opts: TraceOptions) -> None:
        self.opts = opts
        self.show, self.status = parse_expressions(opts.exprs)
        self.fmt = CallFormat(opts.strsize)
        self.stats: dict[str, Stat] = {}
        self.pids: set[int] = set()
        self.files: dict[int, TextIO] = {}
        self.last = time.monotonic()
        self.local_node = 0                # --ipc: this node's id (others are shown @N)
        self._ipc_file: TextIO | None = None

    # -- where a line goes ---------------------------------------------------------------
    def _stream(self, pid: int) -> TextIO | None:
        if not self.opts.per_process:
            return self.opts.out
        f = self.files.get(pid)
        if f is None and self.opts.path:
            f = self.files[pid] = open(f"{self.opts.path}.{pid}", "w")
        return f

    def _emit(self, pid: int, text: str) -> None:
        self.pids.add(pid)
        out = self._stream(pid)
        if out is None:
            return
        prefix = ""
        if not self.opts.per_process and len(self.pids) > 1:
            prefix = f"[pid {pid:5d}] "
        stamp = self._stamp()
        out.write(f"{prefix}{stamp}{text}\n")
        out.flush()

    def _stamp(self) -> str:
        how = self.opts.timestamps
        if not how:
            return ""
        now = time.time()
        if how == "r":
            mono = time.monotonic()
            delta, self.last = mono - self.last, mono
            return f"{delta:12.6f} "
        if how == "ttt":
            return f"{now:.6f} "
        t = time.localtime(now)
        if how == "tt":
            return time.strftime("%H:%M:%S", t) + f".{int(now % 1 * 1e6):06d} "
        return time.strftime("%H:%M:%S ", t)

    # -- events ----------------------------------------------------------------------------
    def call(self, pid: int, name: str, args: Iterable[int], result: int, mem: Memory,
             *, xinim_nr: int | None, xinim_name: str, server: str, elapsed_ns: int) -> None:
        failed = -4096 < result < 0
        if self.opts.summary:
            st = self.stats.setdefault(name, Stat(server=server))
            st.calls += 1
            st.errors += failed
            st.ns += elapsed_ns
            return
        if not self.show(name) or (self.status == "failed" and not failed) or (
                self.status == "successful" and failed):
            return
        try:
            text = self.fmt.call(name, args, result, mem)
        except Exception:                    # never let the trace break the program
            text = f"{name}({', '.join(hex(a) for a in args)})"
        line = f"{text:<39} = {result_text(name, result)}" if len(text) < 39 else \
            f"{text} = {result_text(name, result)}"
        if self.opts.syscall_times:
            line += f" <{elapsed_ns / 1e9:.6f}>"
        if self.opts.xinim:
            line += (f"  <XINIM {xinim_nr} {xinim_name} \u2192 {server}, "
                     f"{elapsed_ns / 1000:.0f} \u00b5s>" if xinim_nr is not None
                     else "  <XINIM: not in the table>")
        self._emit(pid, line)

    def enosys(self, pid: int, name: str, args: Iterable[int], mem: Memory) -> None:
        self.call(pid, name, args, -errno.ENOSYS, mem, xinim_nr=None, xinim_name=name,
                  server="not supported", elapsed_ns=0)

    def first_exec(self, pid: int, host_pid: int, path: bytes, argv: list[bytes],
                   envc: int) -> None:
        """The first program's execve, done before tracing began: its envp is found
        where the kernel put it, after argv on the new stack (``startstack``)."""
        if self.opts.summary or not self.show("execve") or self.status == "failed":
            return
        s = self.opts.strsize
        shown = ", ".join(quote(a, s) for a in argv[:32]) + (", ..." if len(argv) > 32 else "")
        envp = _start_stack(host_pid)
        where = f"{envp + 8 * (len(argv) + 2):#x}" if envp else "[]"
        self._emit(pid, f'execve({quote(path, len(path))}, [{shown}], {where} /* {envc} vars */)'
                   " = 0")

    def signal(self, pid: int, sig: int, info: bytes, xinim_pid: Callable[[int], int]) -> None:
        if self.opts.summary or self.status == "failed":
            return
        self._emit(pid, f"--- {signame(sig)} {siginfo_text(sig, info, xinim_pid)} ---")

    def exited(self, pid: int, status: int) -> None:
        if self.opts.summary or self.status == "failed":
            return
        if os.WIFEXITED(status):
            self._emit(pid, f"+++ exited with {os.WEXITSTATUS(status)} +++")
        elif os.WIFSIGNALED(status):
            core = " (core dumped)" if os.WCOREDUMP(status) else ""
            self._emit(pid, f"+++ killed by {signame(os.WTERMSIG(status))}{core} +++")

    def message(self, src: int, dst: int, node: int, m_type: int, size: int) -> None:
        """``--ipc``: one lattice message, as this node sealed it (before the line of
        the call it served, which is written when the call completes)."""
        if self.opts.summary:
            return
        out = self.opts.out if not self.opts.per_process else self._ipc_stream()
        if out is None:
            return
        where = f"@{node}" if node != self.local_node else ""
        out.write(f"  ipc {_endpoint_name(src)} \u2192 {_endpoint_name(dst)}{where} "
                  f"{_message_name(m_type)} {size} B\n")

    def _ipc_stream(self) -> TextIO | None:
        if self._ipc_file is None and self.opts.path:
            self._ipc_file = open(f"{self.opts.path}.ipc", "w")
        return self._ipc_file

    # -- the end ---------------------------------------------------------------------------
    def close(self) -> None:
        if self.opts.summary and self.opts.out is not None:
            self.opts.out.write(self.summary())
            self.opts.out.flush()
        for f in self.files.values():
            f.close()
        self.files.clear()
        if self._ipc_file is not None:
            self._ipc_file.close()
            self._ipc_file = None

    def summary(self) -> str:
        """strace -c's table, plus which XINIM server answered each call and the
        servers' shares of the time."""
        rows = sorted(self.stats.items(), key=lambda kv: (-kv[1].ns, kv[0]))
        total_ns = sum(s.ns for _, s in rows) or 1
        rule = "------ ----------- ----------- --------- --------- ---------------- ----------\n"
        out = ["% time     seconds  usecs/call     calls    errors syscall          server\n", rule]
        for name, s in rows:
            out.append(f"{100 * s.ns / total_ns:6.2f} {s.ns / 1e9:11.6f} "
                       f"{s.ns // 1000 // max(s.calls, 1):11d} {s.calls:9d} "
                       f"{s.errors or '':>9} {name:<16} {s.server}\n")
        calls = sum(s.calls for _, s in rows)
        errs = sum(s.errors for _, s in rows)
        out.append(rule)
        out.append(f"100.00 {total_ns / 1e9 if rows else 0:11.6f} "
                   f"{(total_ns // 1000 // max(calls, 1)) if rows else 0:11d} {calls:9d} "
                   f"{errs or '':>9} total\n")
        by_server: dict[str, int] = {}
        for _, s in rows:
            by_server[s.server] = by_server.get(s.server, 0) + s.ns
        out.append("\nXINIM: time by the server that answered\n")
        for server, ns in sorted(by_server.items(), key=lambda kv: -kv[1]):
            out.append(f"  {server:<14} {100 * ns / total_ns:6.2f}%  {ns / 1e9:.6f} s\n")
        return "".join(out)
