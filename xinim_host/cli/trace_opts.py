"""xinim-run's strace options: ``--trace``, ``-e``, ``-o``, ``-ff``, ``-s``, ``-t``/``-tt``/
``-ttt``, ``-r``, ``-T``, ``-c`` -- the same letters and meanings as strace's.

``-o`` is shared with the FUSE options of ``--mount`` (``-o allow_other,ro``):
a value made only of FUSE option names goes to the mount, anything else names
the trace's output file, as in strace (``-o ./ro`` for a file called ro).
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from typing import Iterator

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..kernel.trap.trace import Strace
# kernel.trap.trace (and python-ptrace's tables behind it) is imported only when
# tracing is asked for: it is a sizeable part of a plain run's start-up
from .options import FUSE_FLAGS, FUSE_IDS, fuse_options

def is_fuse_options(value: str) -> bool:
    """Whether an ``-o`` value is made of FUSE option names (else it is a file)."""
    items = [i for i in value.split(",") if i]
    return bool(items) and all(i.partition("=")[0] in FUSE_FLAGS + FUSE_IDS for i in items)


def split_o_values(args: argparse.Namespace) -> None:
    """``-o`` values: FUSE option lists to ``args.fuse_options`` (checked as the
    mount checks them), the last other one to ``args.trace_output``."""
    args.fuse_options, files = [], []
    for value in args.o_values:
        if is_fuse_options(value):
            args.fuse_options.extend(fuse_options(value))
        else:
            files.append(value)
    args.trace_output = files[-1] if files else None


def add_trace_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("tracing (strace's options)")
    g.add_argument("--trace", action="store_true",
                   help="trace every call the interceptor stops, strace-style, to stderr")
    g.add_argument("-e", dest="trace_exprs", action="append", default=[], metavar="EXPR",
                   help="trace=SET (names, %%file, %%process, %%network, %%signal, %%memory, "
                   "%%desc, %%ipc, !SET) or status=failed|successful; implies --trace")
    g.add_argument("--trace-file", metavar="FILE", help="the same as -o FILE")
    g.add_argument("-f", dest="follow", action="count", default=0,
                   help="-f: follow forks (always done); -ff with -o FILE: one FILE.PID each")
    g.add_argument("-s", dest="strsize", type=int, default=32, metavar="N",
                   help="show at most N bytes of each string (default 32)")
    g.add_argument("-t", dest="timestamps", action="count", default=0,
                   help="-t: time of day; -tt: with microseconds; -ttt: seconds since the epoch")
    g.add_argument("-r", dest="relative", action="store_true",
                   help="time since the previous line")
    g.add_argument("-T", dest="syscall_times", action="store_true",
                   help="time spent in each call")
    g.add_argument("--ipc", action="store_true",
                   help="also a line per lattice message (sender, receiver, message, size) "
                   "before the call it served; implies --trace")
    g.add_argument("-c", dest="summary", action="store_true",
                   help="count calls, errors and time per call (and per XINIM server) "
                   "and print a table at exit instead of the trace")


def trace_file(args: argparse.Namespace) -> str | None:
    return getattr(args, "trace_output", None) or args.trace_file


def wants_trace(args: argparse.Namespace) -> bool:
    return bool(args.trace or args.trace_exprs or trace_file(args) or args.summary or args.ipc)


def check_trace_args(args: argparse.Namespace) -> str | None:
    """A usage error in the tracing options, or None."""
    if not args.trace_exprs:
        return _other_trace_errors(args)
    from ..kernel.trap.trace import TraceUsageError, parse_expressions
    try:
        parse_expressions(args.trace_exprs)
    except TraceUsageError as exc:
        return str(exc)
    return _other_trace_errors(args)


def _other_trace_errors(args: argparse.Namespace) -> str | None:
    if args.strsize < 0:
        return "-s: a string size is a number >= 0"
    if args.follow >= 2 and not trace_file(args):
        return "-ff needs -o FILE (each process writes FILE.PID)"
    return None


@contextmanager
def strace_from(args: argparse.Namespace) -> Iterator[Strace | None]:
    """The ``Strace`` the options ask for (None without tracing), closed at the end
    (which writes ``-c``'s table)."""
    if not wants_trace(args):
        yield None
        return
    from ..kernel.trap.trace import Strace, TraceOptions
    path = trace_file(args)
    per_process = args.follow >= 2 and path is not None
    out = None if per_process else (open(path, "w") if path else sys.stderr)
    stamps = ("", "t", "tt", "ttt")[min(args.timestamps, 3)] or ("r" if args.relative else "")
    strace = Strace(TraceOptions(out=out, path=path, per_process=per_process,
                                 exprs=list(args.trace_exprs), strsize=args.strsize,
                                 timestamps=stamps, syscall_times=args.syscall_times,
                                 summary=args.summary, ipc=args.ipc))
    try:
        yield strace
    finally:
        strace.close()
        if out is not None and out is not sys.stderr:
            out.close()
