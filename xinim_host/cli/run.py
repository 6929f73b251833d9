"""xinim-run: run a real Linux program as a XINIM process.

    xinim-run [OPTIONS] PROGRAM [ARGS...]
    xinim-run --join[=SOCKET] [--socket SOCKET] [OPTIONS] PROGRAM [ARGS...]

Boots an ephemeral system (kernel, VFS, PM, MM, init), starts PROGRAM under the
interceptor as a child of init and exits with PROGRAM's exit status (128+N when
killed by signal N; 127/126 when it cannot be found/run, 2 for a usage error).
PROGRAM runs as you (``-0``: as root) in your cwd when XINIM sees it (``-w DIR``).
XINIM's own diagnostics go to ``--log FILE``/``$XINIM_LOG``, or with ``-v`` to
the terminal; never to PROGRAM's stderr.  The options end at PROGRAM.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from typing import Any

import trio

from ..system.boot import BootConfig, booted
from ..system.place import start_dir, take_host_identity
from ..uart.terminal import FdConsole, serial_console
from ..lib.errors import SysError
from ..system.join import joined
from .common import USAGE, CliError, Parser, guarded, setup_logging, split_command
from .launch import LaunchError, _resolver, run_program
from .options import (add_log_options, add_system_options, check_system_options, load_ramfs,
                      mounts_from, system_services)
from .trace_opts import add_trace_options, check_trace_args, split_o_values, strace_from
from .ps import choose_socket, default_socket_path, live_sockets, serve_node_queries

log = logging.getLogger("xinim.run")


def stderr_console() -> FdConsole | None:
    """The program's fd 2 writes to our stderr unless both go to one terminal."""
    try:
        same = os.path.samestat(os.fstat(1), os.fstat(2)) and os.isatty(1)
    except OSError:
        same = False
    return None if same else FdConsole(out_fd=2, in_fd=0)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``, looking inside trio's exception groups (a refused
    join, an IpcError, as the OSError it stands for)."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, SysError):
        return OSError(exc.errno, str(exc))
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _os_error(exc.exceptions[0])
    return None


def make_parser() -> Parser:
    parser = Parser(prog="xinim-run", description=__doc__.split("\n\n")[0],
                    usage="%(prog)s [OPTIONS] PROGRAM [ARGS...]")
    add_system_options(parser, o_names_trace_file=True)
    add_trace_options(parser)
    parser.add_argument("--keep", action="store_true",
                        help="after PROGRAM exits keep the system (and mount) up until Ctrl-C "
                        "or until the --mount is unmounted from outside")
    parser.add_argument("--join", nargs="?", const=True, default=None, metavar="SOCKET",
                        help="join a running system (xinim-boot, or xinim-run --listen) instead "
                        "of booting: the one at --socket, else $XINIM_SOCKET, else "
                        f"{default_socket_path()}; --join=SOCKET names it directly.  "
                        "XINIM_SOCKET alone joins too")
    parser.add_argument("--socket", metavar="PATH", default=None,
                        help="the node socket to join (--join) or to serve (--listen)")
    parser.add_argument("--listen", action="store_true",
                        help="serve a node socket (--socket, else the default, else "
                        "node-PID.sock beside it) so xinim-ps and xinim-run --join find "
                        "this system")
    parser.add_argument("-0", "--root-id", action="store_true",
                        help="run PROGRAM as root (uid 0) inside XINIM, as PRoot's -0 "
                        "(default: your own uid, gid and groups)")
    parser.add_argument("-w", "--cwd", metavar="DIR", default=None,
                        help="start PROGRAM in XINIM directory DIR (default: your cwd when "
                        "XINIM sees it through a host mount, else /)")
    parser.add_argument("--hostname", metavar="NAME", default=None,
                        help="the system's host name (default: the host's)")
    parser.add_argument("--console", choices=("uart", "fd"), default=None,
                        help="uart: our terminal is the far end of the UART console (raw while "
                        "PROGRAM runs; ^C/^Z/^\\ reach its foreground process group through PM); "
                        "fd: PROGRAM's console is our fds (default: uart when stdin and stdout "
                        "are one terminal, else fd)")
    add_log_options(parser)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    ours, command = split_command(parser, argv)
    args = parser.parse_args(ours)
    if not command:
        parser.error("PROGRAM is missing (xinim-run [OPTIONS] PROGRAM [ARGS...])")
    args.program, args.args = command[0], command[1:]
    try:
        split_o_values(args)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    problem = check_trace_args(args)
    if problem:
        parser.error(problem)
    joining = args.join is not None or bool(os.environ.get("XINIM_SOCKET"))
    if isinstance(args.join, str):
        if args.socket and args.socket != args.join:
            parser.error("--join=SOCKET and --socket name two sockets; give one")
        args.socket = args.join
    if joining:
        args.join = args.socket or default_socket_path()
        if args.listen:
            parser.error("--listen serves a booted system; a joined run has none of its own")
        if args.mount or args.image or args.bind or args.fuse_options:
            parser.error("--mount/--image/--bind/-o belong to the system being joined")
        if args.root_id and os.getuid() != 0:
            parser.error("-0: a joined system gives you your host ids (boot one to fake root)")
    else:
        args.join = None
        if args.socket and not args.listen:
            parser.error("--socket needs --join or --listen")
    if args.hostname is not None and not (0 < len(os.fsencode(args.hostname)) <= 64):
        parser.error("--hostname: 1 to 64 bytes")
    return args


def pick_console(args: argparse.Namespace) -> Any:
    """The console a booted system gets: the UART console with our terminal as its
    line (like xinim-boot --serial stdio), or our own fds."""
    if args.console == "fd" or args.join or args.keep or not _one_terminal():
        return FdConsole(out_fd=1, in_fd=0)
    return serial_console("stdio", escape=None)


def _one_terminal() -> bool:
    try:
        return os.isatty(0) and os.isatty(1) and os.path.samestat(os.fstat(0), os.fstat(1))
    except OSError:
        return False


async def main_async(args: argparse.Namespace, console: Any = None) -> int:
    """SIGTERM or SIGHUP cancel the run like Ctrl-C does, so the system shuts down
    in order (tracees killed, FUSE unmounted, image saved) before we exit 128+N."""
    code = 0
    async with trio.open_nursery() as nursery:
        async def stop_on_signals() -> None:
            nonlocal code
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                async for signum in signals:
                    code = 128 + signum
                    nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_signals)
        code = await run_system(args, console)
        nursery.cancel_scope.cancel()
    return code


async def _join(args: argparse.Namespace, stack: AsyncExitStack, console: Any) -> Any:
    try:
        return await stack.enter_async_context(joined(args.join, console=console))
    except (OSError, SysError, BaseExceptionGroup) as exc:
        cause = _os_error(exc)   # no system there, or it refused us (IpcError)
        if cause is None:
            raise
        others = [s for s in live_sockets() if s != args.join]
        hint = f" (running: {', '.join(others)})" if others else ""
        raise CliError(f"cannot join {args.join}: {cause.strerror or cause}{hint}") from None


async def run_system(args: argparse.Namespace, console: Any = None) -> int:
    config = BootConfig(console=console or FdConsole(out_fd=1, in_fd=0),
                        console_err=stderr_console(),
                        quiet=True,          # the boot log is a diagnostic: -v, --log
                        mounts=mounts_from(args.bind))
    async with AsyncExitStack() as stack:
        trace = stack.enter_context(strace_from(args))
        unmounted: trio.Event | None = None
        if args.join:
            system = await _join(args, stack, config.console)
        else:
            check_system_options(args)
            config.ramfs = load_ramfs(args)
            if args.listen:
                config.socket_path = choose_socket(args.socket)
            system = await stack.enter_async_context(booted(config))
            unmounted = await system_services(system, args, stack)
            if args.listen:
                await system.nursery.start(serve_node_queries, system)
                print(f"xinim-run: node socket {config.socket_path}", file=sys.stderr)
            if not args.root_id and os.getuid() != 0:
                await take_host_identity(system, os.getuid(), os.getgid(), os.getgroups())
        if args.hostname is not None:
            system.kernel.hostname = os.fsencode(args.hostname)
        if trace is not None and trace.opts.ipc:
            trace.local_node = system.lattice.node_id
            system.lattice.tap = trace.message
        try:
            host_cwd: str | None = os.getcwd()
        except OSError:
            host_cwd = None
        try:
            cwd = await start_dir(system, _resolver(system), args.cwd, host_cwd)
        except OSError as exc:
            raise CliError(f"-w {args.cwd}: {exc.strerror}", USAGE) from None
        env = dict(os.environ)
        if "PWD" in env or cwd != "/":
            env["PWD"] = cwd
        # Start-up is over (cli/thin.py held the collector off): what it built lives as
        # long as we do, so it goes out of the way of every later collection.
        gc.freeze()
        gc.enable()
        try:
            code = await run_program(system, [args.program, *args.args], env,
                                     trace=trace, cwd=cwd)
        except LaunchError as exc:
            print(f"xinim-run: {exc}", file=sys.stderr)
            code = exc.exit_code
        if args.keep:
            where = f" (ramfs mounted at {args.mount})" if args.mount else ""
            print(f"xinim-run: {args.program} exited {code}; system kept up{where}; "
                  "Ctrl-C to stop" + (", or unmount it" if args.mount else ""),
                  file=sys.stderr)
            if unmounted is not None:
                await unmounted.wait()
                print(f"xinim-run: {args.mount} was unmounted; stopping", file=sys.stderr)
            else:
                await trio.sleep_forever()
        return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging(args.verbose, args.log)
        console = pick_console(args)
        if not isinstance(console, FdConsole):
            for handler in logging.getLogger().handlers:   # -v: our terminal is raw now
                if isinstance(handler, logging.StreamHandler) and \
                        not isinstance(handler, logging.FileHandler):
                    handler.terminator = "\r\n"
        try:
            return trio.run(main_async, args, console)
        finally:
            if hasattr(console, "close"):
                console.close()     # the terminal back as it was

    return guarded("xinim-run", lambda: args.verbose, body)


if __name__ == "__main__":
    sys.exit(main())
