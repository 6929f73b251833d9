"""xinim-run: run a real Linux program as a XINIM process.

    xinim-run [--mount DIR] [--image FILE] [--bind HOST:XINIM[:ro|rw]] [--trace]
              [--trace-file F] [--keep] [-v] PROGRAM [ARGS...]

Boots an ephemeral system (kernel, VFS, PM, MM, init), starts PROGRAM under the
interceptor as a child of init and exits with PROGRAM's exit status (128+N when
killed by signal N).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack, nullcontext
from typing import Any

import trio

from ..system.boot import BootConfig, booted
from ..uart.terminal import FdConsole, serial_console
from ..lib.errors import SysError
from ..system.join import joined
from .launch import LaunchError, run_program
from .options import add_system_options, load_ramfs, mounts_from, system_services
from .ps import default_socket_path

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="xinim-run", description=__doc__.split("\n\n")[0])
    add_system_options(parser)
    parser.add_argument("--trace", action="store_true",
                        help="print one line per intercepted syscall to stderr")
    parser.add_argument("--trace-file", metavar="F", help="write the trace to F instead")
    parser.add_argument("--keep", action="store_true",
                        help="after PROGRAM exits keep the system (and mount) up until Ctrl-C")
    parser.add_argument("--join", nargs="?", const=default_socket_path(), metavar="SOCKET",
                        help="join a running xinim-boot (default socket: %(const)s) instead of "
                        "booting; XINIM_SOCKET does the same")
    parser.add_argument("--console", choices=("uart", "fd"), default=None,
                        help="uart: our terminal is the far end of the UART console (raw while "
                        "PROGRAM runs; ^C/^Z/^\\ reach its foreground process group through PM); "
                        "fd: PROGRAM's console is our fds (default: uart when stdin and stdout "
                        "are one terminal, else fd)")
    parser.add_argument("-v", "--verbose", action="store_true", help="boot log and server logs")
    parser.add_argument("program", metavar="PROGRAM")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    return parser.parse_args(argv)


def pick_console(args: argparse.Namespace) -> Any:
    """The console a booted system gets: the UART console with our terminal as its
    line (like xinim-boot --serial stdio), or our own fds."""
    joining = args.join or os.environ.get("XINIM_SOCKET")
    if args.console == "fd" or joining or args.keep or not _one_terminal():
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


async def run_system(args: argparse.Namespace, console: Any = None) -> int:
    config = BootConfig(console=console or FdConsole(out_fd=1, in_fd=0),
                        console_err=stderr_console(),
                        quiet=not args.verbose,
                        mounts=mounts_from(args.bind), ramfs=load_ramfs(args))
    trace_cm: Any = (open(args.trace_file, "w") if args.trace_file
                     else nullcontext(sys.stderr) if args.trace else nullcontext(None))
    async with AsyncExitStack() as stack:
        trace = stack.enter_context(trace_cm)
        join = args.join or os.environ.get("XINIM_SOCKET")
        if join:
            if args.mount or args.image or args.bind:
                print("xinim-run: --mount/--image/--bind belong to the system being joined",
                      file=sys.stderr)
                return 2
            try:
                system = await stack.enter_async_context(joined(join, console=config.console))
            except (OSError, SysError, BaseExceptionGroup) as exc:
                cause = _os_error(exc)   # no system there, or it refused us (IpcError)
                if cause is None:
                    raise
                print(f"xinim-run: cannot join {join}: {cause.strerror or cause}",
                      file=sys.stderr)
                return 1
        else:
            system = await stack.enter_async_context(booted(config))
            await system_services(system, args, stack)
        try:
            code = await run_program(system, [args.program, *args.args], dict(os.environ),
                                     trace=trace)
        except LaunchError as exc:
            print(f"xinim-run: {exc}", file=sys.stderr)
            code = exc.exit_code
        if args.keep:
            where = f" (ramfs mounted at {args.mount})" if args.mount else ""
            print(f"xinim-run: {args.program} exited {code}; system kept up{where}; "
                  "Ctrl-C to stop", file=sys.stderr)
            await trio.sleep_forever()
        return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="xinim: %(name)s: %(message)s")
    try:
        console = pick_console(args)
        try:
            return trio.run(main_async, args, console)
        finally:
            if hasattr(console, "close"):
                console.close()     # the terminal back as it was
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:   # trio delivers Ctrl-C inside a group
        interrupted, rest = group.split(KeyboardInterrupt)
        if interrupted is not None and rest is None:
            return 130
        raise


if __name__ == "__main__":
    sys.exit(main())
