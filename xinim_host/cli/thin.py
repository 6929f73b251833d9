"""xinim-run's entry point, and its thin client.

``xinim-run --join PROGRAM...`` (or with ``XINIM_SOCKET`` set) does not need a
kernel and a tracer of its own when the booted system can run the program for
it: this module -- which imports nothing heavy, not even trio -- proves it holds
the node key (the same HMAC handshake as a full join, ``lib/nodelink.py``), sends
a SPAWN record with the program, its environment and cwd and our terminal's fds
0-2, and waits for the EXIT record with the exit code.  The booted system runs
the program with its own tracer as a child of init (``cli/launch.py``
``spawn_for_client``), its fds 0-2 our terminal; if we go away (Ctrl-C, a
signal), the link closes and the system kills the program.

The thin way is taken only when it gives what the full way would: no option
besides ``--join``/``--socket``, a root client of a system booted by root.  In
every other case -- a system that refuses (not root, an older boot), no system
there, any other option -- ``cli/run.py`` does the whole job as before.
"""
from __future__ import annotations

import array
import hmac
import os
import signal
import socket
import sys

from ..lib import nodelink as nl


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    plan = thin_plan(args)
    if plan is not None:
        code = run_thin(*plan)
        if code is not None:
            return code
    # The full way.  Start-up builds trio's and our classes and nothing of it is
    # garbage: no collections until the system is up (cli/run.py turns them back
    # on), and our modules' code and the code their classes generate come from
    # the files set-up wrote (lib/codecache.py).
    import gc
    gc.disable()
    from ..lib import codecache
    codecache.install_modules()
    codecache.install()
    from .run import main as full_main
    code = full_main(argv)
    if argv is None:                 # we are the command: the process ends here
        exit_now(code)
    return code


def exit_now(code: int) -> int:
    """End the process without tearing the interpreter down -- freeing every module
    and object one by one was ~7 ms of a short run -- after what an exit does that
    anyone sees: the atexit handlers (the logging files' flush, the code cache) and
    our stdio flushed.  With a thread that exit would wait for, or stdio that will
    not flush, it returns ``code`` and the ordinary exit does it all."""
    import atexit
    import threading
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)     # CPython's
    main_thread = threading.main_thread()
    if run_exitfuncs is None or any(t is not main_thread and not t.daemon and t.is_alive()
                                    for t in threading.enumerate()):
        return code
    run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return code
    os._exit(code)


def thin_plan(args: list[str]) -> tuple[str, list[str]] | None:
    """(socket, command) when this run may go the thin way, else None."""
    join = bool(os.environ.get("XINIM_SOCKET"))
    sock: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--join":
            join = True
        elif a.startswith("--join="):
            join, sock = True, a[len("--join="):]
        elif a == "--socket" and i + 1 < len(args):
            sock = args[i + 1]
            i += 1
        elif a.startswith("--socket="):
            sock = a[len("--socket="):]
        elif a == "--":
            i += 1
            break
        elif a.startswith("-"):
            return None                # anything else: the full way decides
        else:
            break
        i += 1
    command = args[i:]
    if not join or not command or not sock and sock is not None or os.geteuid() != 0:
        return None
    return sock or nl.default_socket_path(), command


def _read_record(s: socket.socket, buf: bytearray) -> tuple[int, bytes] | None:
    while True:
        if len(buf) >= nl.RECORD.size:
            length, kind = nl.RECORD.unpack_from(buf)
            end = 4 + length
            if len(buf) >= end:
                body = bytes(buf[nl.RECORD.size:end])
                del buf[:end]
                return kind, body
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk


def _record(kind: int, body: bytes) -> bytes:
    return nl.RECORD.pack(len(body) + 1, kind) + body


class _Gone(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _leave(signum: int, frame: object) -> None:
    raise _Gone(128 + signum)


def run_thin(path: str, command: list[str]) -> int | None:
    """The program's exit code, or None when the system did not run it."""
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        with open(nl.secret_path(path), "rb") as f:
            secret = f.read(nl.SECRET_SIZE + 1)
        if len(secret) != nl.SECRET_SIZE:
            return None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError:
        return None
    buf = bytearray()
    sent = False                     # after SPAWN, never run it the full way as well
    old = {sig: signal.signal(sig, _leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        s.settimeout(10)
        s.connect(path)
        hello = _read_record(s, buf)
        if hello is None or hello[0] != nl.HELLO or len(hello[1]) != nl.HELLO_BODY.size:
            return None
        boot_node, node, nonce = nl.HELLO_BODY.unpack(hello[1])
        s.sendall(_record(nl.AUTH, nl.mac(secret, nl.JOIN_PERSON, nonce, boot_node, node)))
        welcome = _read_record(s, buf)
        if welcome is None or welcome[0] != nl.WELCOME or not hmac.compare_digest(
                welcome[1], nl.mac(secret, nl.WELCOME_PERSON, nonce, boot_node, node)):
            return None
        try:
            cwd = os.fsencode(os.getcwd())
        except OSError:
            cwd = b""
        argv = [os.fsencode(a) for a in command]
        env = [k + b"=" + v for k, v in os.environb.items()]
        if any(b"\0" in x for x in (cwd, *argv, *env)):
            return None
        body = nl.SPAWN_HEAD.pack(len(argv), len(env)) + b"\0".join([cwd, *argv, *env]) + b"\0"
        s.sendmsg([_record(nl.SPAWN, body)],
                  [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", (0, 1, 2)).tobytes())])
        sent = True
        s.settimeout(None)
        while True:
            record = _read_record(s, buf)
            if record is None:
                print("xinim-run: the system went away", file=sys.stderr)
                return 1
            kind, body = record
            if kind == nl.EXIT and len(body) >= nl.EXIT_BODY.size:
                code, err = nl.EXIT_BODY.unpack_from(body)
                if err:
                    return None
                why = body[nl.EXIT_BODY.size:]
                if why:
                    print(f"xinim-run: {os.fsdecode(why)}", file=sys.stderr)
                return code
    except _Gone as gone:            # closing the link ends the program there
        return gone.code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if sent:
            print(f"xinim-run: lost the system: {exc.strerror or exc}", file=sys.stderr)
            return 1
        return None
    finally:
        s.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
