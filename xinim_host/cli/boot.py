"""xinim-boot: boot a XINIM system whose console is a 16550 UART on a serial line.

    xinim-boot [--serial stdio|pty] [--mount DIR [-o OPTS]] [--image FILE]
               [--bind HOST:XINIM[:ro|rw]] [--socket PATH] [--allow-uid UID] [-0]
               [--hostname NAME] [-v]
               [--log FILE] [--console-log FILE] [--init PROGRAM ARGS...]

The console is the UART model; its serial line is a new host pty (``--serial pty``:
prints ``serial0: /dev/pts/N``, attach with ``screen /dev/pts/N`` or ``picocom``) or
your terminal (``--serial stdio``, the default when stdin and stdout are a terminal:
raw mode while the system runs, restored at exit; Ctrl-] leaves).  The boot log goes
to the console, each line stamped with the seconds since boot like a kernel log
(``[    0.012] VFS: started on PID 2``), and so do XINIM's diagnostics (warnings;
``-v``: all) unless ``--log FILE`` takes them; ``--console-log FILE`` keeps a copy of
everything the console sends.  ``--init PROGRAM ARGS...`` (last on the line) runs PROGRAM on the
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
from ..system.place import take_host_identity
from ..uart.terminal import TtyConsole, serial_console
from .common import ConsoleLog, Parser, guarded, log_file_of, setup_logging
from .launch import DEFAULT_PATH, LaunchError, run_program, spawn_for_client
from .options import (add_log_options, add_system_options, check_system_options, load_ramfs,
                      mounts_from, system_services)
from .ps import choose_socket, runtime_dir, serve_node_queries

log = logging.getLogger("xinim.boot")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="xinim-boot", description=__doc__.split("\n\n")[0])
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
    parser.add_argument("-0", "--root-id", action="store_true",
                        help="init and its programs are root inside XINIM (default: your own "
                        "uid, gid and groups; root's are root anyway)")
    parser.add_argument("--hostname", metavar="NAME", default=None,
                        help="the system's host name (default: the host's)")
    add_log_options(parser)
    parser.add_argument("--console-log", metavar="FILE", default=None,
                        help="append everything the console sends (boot log, programs' "
                        "output, diagnostics) to FILE")
    parser.add_argument("--init", nargs=argparse.REMAINDER, metavar="PROGRAM ARGS",
                        help="run PROGRAM on the console as init's child (the rest of the line)")
    args = parser.parse_args(argv)
    if args.init is not None and not args.init:
        parser.error("--init needs a PROGRAM")
    if args.serial is None:
        args.serial = "stdio" if os.isatty(0) and os.isatty(1) else "pty"
    return args


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
                        socket_path=args.socket, allow_uids=tuple(args.allow_uid),
                        on_spawn=spawn_for_client)
    code = 0
    async with AsyncExitStack() as stack:
        system = await stack.enter_async_context(booted(config))
        if not log_file_of(args.log):        # XINIM's diagnostics: on the console
            level = logging.INFO if args.verbose else logging.WARNING
            handler = ConsoleLog(system.kernel.console, system.started, level)
            root = logging.getLogger()
            root.setLevel(min(root.level, level) if root.level else level)
            root.addHandler(handler)
            stack.callback(root.removeHandler, handler)
        await system_services(system, args, stack)
        if not args.root_id and os.getuid() != 0:
            await take_host_identity(system, os.getuid(), os.getgid(), os.getgroups())
        if args.hostname is not None:
            system.kernel.hostname = os.fsencode(args.hostname)
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
                    system.log(f"init: starting {' '.join(args.init)} on the console")
                    try:
                        code = await run_program(system, args.init, init_env(args.serial))
                    except LaunchError as exc:
                        system.log(f"init: {exc}")
                        code = exc.exit_code
                    await console.drain()      # its last words before ours
                    system.log(f"init: {args.init[0]} exited {code}; shutting down")
                    stop()
                nursery.start_soon(run_init_program)
            else:
                system.log("init: no program on the console (xinim-boot --init PROGRAM)")
    return code


async def _stop_on_signals(stop: Any) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("%s: shutting down", signal.Signals(signum).name)
            stop()
            return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded("xinim-boot", lambda: args.verbose, lambda: _boot(args))


def _boot(args: argparse.Namespace) -> int:
    setup_logging(args.verbose, args.log, terminal=False)
    check_system_options(args)
    try:
        args.socket = choose_socket(args.socket)
    except OSError as exc:
        print(f"xinim-boot: node socket: {exc}", file=sys.stderr)
        return 1
    copy = open(args.console_log, "ab", buffering=0) if args.console_log else None
    console = serial_console(args.serial)
    if copy is not None:
        _copy_console(console, copy)
    try:
        if args.serial == "stdio":
            print("xinim-boot: serial0 on this terminal (Ctrl-] quits)\r", file=sys.stderr)
        else:
            print(f"serial0: {console.line.slave_name}", flush=True)   # type: ignore[union-attr]
        print(f"xinim-boot: node socket {args.socket}\r", file=sys.stderr, flush=True)
        return trio.run(main_async, args, console)
    finally:
        console.close()
        if copy is not None:
            copy.close()
        if args.serial == "stdio":
            print(file=sys.stderr)     # the shell's prompt on a line of its own


def _copy_console(console: TtyConsole, copy: Any) -> None:
    """Everything the UART driver sends (the kernel's lines and programs' output
    alike pass through its ``write``) goes to ``copy`` too."""
    driver: Any = console.driver
    send = driver.write

    def write(data: Any) -> int:
        try:
            copy.write(bytes(data))
        except OSError:
            pass                      # a full disk does not stop the console
        return send(data)

    driver.write = write


if __name__ == "__main__":
    sys.exit(main())
