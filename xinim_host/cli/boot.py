"""xinim-boot: boot a XINIM system whose console is a 16550 UART on a serial line.

    xinim-boot [--serial stdio|pty] [--mount DIR] [--image FILE] [--bind HOST:XINIM[:ro|rw]]
               [--socket PATH] [--allow-uid UID] [-v] [--init PROGRAM ARGS...]

The console is the UART model; its serial line is a new host pty (``--serial pty``:
prints ``serial0: /dev/pts/N``, attach with ``screen /dev/pts/N`` or ``picocom``) or
your terminal (``--serial stdio``, the default when stdin and stdout are a terminal:
raw mode while the system runs, restored at exit; Ctrl-] leaves).  The boot log goes
to the console; ``--init PROGRAM ARGS...`` (last on the line) runs PROGRAM on the
console as a child of init, like a serial-console login, and the system ends with it
(exit status: its own).  Without it the system runs until SIGINT/SIGTERM/SIGHUP (or
Ctrl-] on a stdio console).  The node socket (``--socket``, default
``$XDG_RUNTIME_DIR/xinim/node.sock`` or ``/run/xinim/node.sock``) lets ``xinim-ps`` and
``xinim-run --join`` in: the user who booted (and ``--allow-uid`` users), holding
the per-boot key in ``SOCKET.key``.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from typing import Any

import trio

from ..system.boot import BootConfig, booted
from ..uart.terminal import TtyConsole, serial_console
from .launch import DEFAULT_PATH, LaunchError, run_program
from .options import add_system_options, load_ramfs, mounts_from, system_services
from .ps import default_socket_path, ensure_socket_dir, runtime_dir, serve_node_queries, \
    socket_is_live

log = logging.getLogger("xinim.boot")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="xinim-boot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serial", choices=("stdio", "pty"), default=None,
                        help="the console's serial line: this terminal, or a new host pty "
                        "(default: stdio on a terminal, else pty)")
    add_system_options(parser)
    parser.add_argument("--socket", metavar="PATH", default=None,
                        help="serve the node socket here (for xinim-ps; default: "
                        f"$XINIM_SOCKET, else {os.path.join(runtime_dir(), 'node.sock')})")
    parser.add_argument("--allow-uid", metavar="UID", type=int, action="append", default=[],
                        help="this host user may join too (besides the one who booted; it "
                        "still needs the node key, SOCKET.key); repeatable")
    parser.add_argument("-v", "--verbose", action="store_true", help="server logs on stderr")
    parser.add_argument("--init", nargs=argparse.REMAINDER, metavar="PROGRAM ARGS",
                        help="run PROGRAM on the console as init's child (the rest of the line)")
    args = parser.parse_args(argv)
    if args.init is not None and not args.init:
        parser.error("--init needs a PROGRAM")
    if args.serial is None:
        args.serial = "stdio" if os.isatty(0) and os.isatty(1) else "pty"
    return args


def choose_socket(requested: str | None) -> str:
    """The node socket's path: as asked, else the default -- unless a live system
    already listens there (then a per-process one beside it)."""
    if requested:
        ensure_socket_dir(requested)
        return requested
    path = default_socket_path()
    ensure_socket_dir(path)
    if os.path.exists(path) and socket_is_live(path):
        path = os.path.join(os.path.dirname(path), f"node-{os.getpid()}.sock")
    return path


def init_env(serial: str) -> dict[str, str]:
    """A login's environment, not ours."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/", "SHELL": "/bin/sh",
           "TERM": os.environ.get("TERM", "vt100") if serial == "stdio" else "vt100"}
    for name in ("LANG", "LC_ALL", "TZ"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


async def main_async(args: argparse.Namespace, console: TtyConsole) -> int:
    config = BootConfig(console=console, mounts=mounts_from(args.bind), ramfs=load_ramfs(args),
                        socket_path=args.socket, allow_uids=tuple(args.allow_uid))
    code = 0
    async with AsyncExitStack() as stack:
        system = await stack.enter_async_context(booted(config))
        await system_services(system, args, stack)
        await system.nursery.start(serve_node_queries, system)
        async with trio.open_nursery() as nursery:
            stop = nursery.cancel_scope.cancel
            line: Any = console.line
            line.on_hangup = stop
            if hasattr(line, "on_escape"):
                line.on_escape = stop
            nursery.start_soon(_stop_on_signals, stop)
            if args.init:
                async def run_init_program() -> None:
                    nonlocal code
                    system.log(f"[init] starting {' '.join(args.init)} on the console")
                    try:
                        code = await run_program(system, args.init, init_env(args.serial))
                    except LaunchError as exc:
                        system.log(f"[init] {exc}")
                        code = exc.exit_code
                    await console.drain()      # its last words before ours
                    system.log(f"[init] {args.init[0]} exited {code}; shutting down")
                    stop()
                nursery.start_soon(run_init_program)
            else:
                system.log("[init] no program on the console (xinim-boot --init PROGRAM)")
    return code


async def _stop_on_signals(stop: Any) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("%s: shutting down", signal.Signals(signum).name)
            stop()
            return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="xinim: %(name)s: %(message)s")
    try:
        args.socket = choose_socket(args.socket)
    except OSError as exc:
        print(f"xinim-boot: node socket: {exc}", file=sys.stderr)
        return 1
    console = serial_console(args.serial)
    try:
        if args.serial == "stdio":
            for handler in logging.getLogger().handlers:   # our terminal is raw now
                handler.terminator = "\r\n"
            print("xinim-boot: serial0 on this terminal (Ctrl-] quits)\r", file=sys.stderr)
        else:
            print(f"serial0: {console.line.slave_name}", flush=True)   # type: ignore[union-attr]
        print(f"xinim-boot: node socket {args.socket}\r", file=sys.stderr, flush=True)
        return trio.run(main_async, args, console)
    except KeyboardInterrupt:
        return 130
    finally:
        console.close()
        if args.serial == "stdio":
            print(file=sys.stderr)     # the shell's prompt on a line of its own


if __name__ == "__main__":
    sys.exit(main())
