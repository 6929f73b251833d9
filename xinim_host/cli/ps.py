"""xinim-ps: the processes of a running XINIM system (``xinim-boot``).

    xinim-ps [--host] [--mem PID] [--socket PATH]

Joins the booted node through its node socket as a node of its own (a client
``Lattice`` with the node id the system assigns and one endpoint,
``CLIENT_PID_BASE`` + node id) and asks:

- the listing: PM's ``ProcList``, page by page (``start``/``next``), sent to PM
  directly.  PM stamps nothing secret into it: a remote client is just
  (its node, its pid) to PM, so the host pids come back as 0.
- ``--host`` and ``--mem PID``: PM shows host pids, and MM other processes' maps,
  only to kernels (m_source 0, or a joined node's kernel pid, which only a node
  running an interceptor should take) -- and a remote client is neither:
  the receiving lattice stamps m_source from the channel.  So these go to the
  *booted node's kernel* (pid 0), which relays a few read-only queries
  (``ProcList``, ``ProcInfo``, ``MmMaps``) to PM/MM as itself and passes the answer
  back (``serve_node_queries``, run by xinim-boot).  The kernel relays only for
  peers on *another node*, i.e. that came in through the node socket: the socket
  is mode 0600, so that is the host user who booted the system, who can see the
  host pids with the host's own ``ps`` anyway.  XINIM processes of the node
  itself (which may ``lattice_connect`` to pid 0) are refused with EPERM, so host
  pids stay PM's secret from them.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import socket
import sys
import tempfile
from typing import Any

import trio

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.ipc import IpcError, Lattice
from ..lib import nodelink
from ..lib.transport import NODE_CLIENT_PID_BASE, node_client_pid

log = logging.getLogger("xinim.ps")

CLIENT_PID_BASE = NODE_CLIENT_PID_BASE     # above any pid PM hands out (PID_MAX 32768)
PAGE_SIZE = 4096
QUERY_TIMEOUT = 10.0

# what the kernel relays for remote peers, and to whom
RELAYED = {p.PROC_LIST: p.PM_PID, p.PROC_INFO: p.PM_PID, p.MM_MAPS: p.MM_PID}


# --- where a booted system listens ------------------------------------------------------

# where sockets live by default: in lib/nodelink (the thin client needs them too)
runtime_dir = nodelink.runtime_dir
default_socket_path = nodelink.default_socket_path


def ensure_socket_dir(path: str) -> None:
    """The socket's directory, private to us (0700, ours) -- made if missing."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid != os.geteuid():
        raise PermissionError(f"{directory} belongs to uid {st.st_uid}, not to us")


def choose_socket(requested: str | None) -> str:
    """The node socket to serve: as asked, else the default -- unless a live system
    already listens there (then a per-process one beside it, which xinim-ps finds)."""
    if requested:
        ensure_socket_dir(requested)
        return requested
    path = default_socket_path()
    ensure_socket_dir(path)
    if os.path.exists(path) and socket_is_live(path):
        path = os.path.join(os.path.dirname(path), f"node-{os.getpid()}.sock")
    return path


def socket_dirs() -> list[str]:
    """Where this user's systems may listen (the default place, and the others a
    different environment would have picked)."""
    dirs = [runtime_dir(), os.path.join(tempfile.gettempdir(), f"xinim-{os.geteuid()}")]
    if os.geteuid() == 0:
        dirs.append("/run/xinim")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        dirs.append(os.path.join(xdg, "xinim"))
    dirs.append(f"/run/user/{os.geteuid()}/xinim")
    return list(dict.fromkeys(os.path.abspath(d) for d in dirs))


def live_sockets() -> list[str]:
    """Every node socket of this user's running systems (xinim-boot, xinim-run
    --listen): the default one first, then the others by name."""
    found: list[str] = []
    for directory in socket_dirs():
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".sock"))
        except OSError:
            continue
        found += [os.path.join(directory, n) for n in names]
    default = default_socket_path()
    found.sort(key=lambda s: s != default)
    return [s for s in dict.fromkeys(found) if socket_is_live(s)]


def socket_is_live(path: str) -> bool:
    """Does a system listen on ``path``?"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


# --- the booted node's side: the kernel relays queries of remote peers --------------------

async def serve_node_queries(system: Any, *,
                             task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer requests sent to the kernel (pid 0) of ``system``: the queries in
    ``RELAYED`` from peers on other nodes are relayed as the kernel; everything else
    is refused (EPERM).  Unsolicited replies (late answers to calls that gave up) are
    dropped.  Takes over the kernel endpoint's queue: run it only where nothing else
    ``recv``s on pid 0 (xinim-boot)."""
    lattice = system.lattice
    task_status.started()
    async with trio.open_nursery() as nursery:
        while True:
            delivery = await lattice.recv(p.KERNEL_PID)
            if type(delivery) is not p.Message or p.is_reply_type(delivery.m_type):
                continue
            nursery.start_soon(_relay, lattice, delivery)


def _from_other_node(lattice: Lattice, pid: int) -> bool:
    channel = lattice.send_channels.get((p.KERNEL_PID, pid))
    return channel is not None and channel.node != lattice.node_id


async def _relay(lattice: Lattice, msg: Any) -> None:
    dst = RELAYED.get(msg.m_type)
    answer: p.Payload
    if dst is None or not _from_other_node(lattice, msg.m_source):
        answer = p.error_reply_for(msg.m_type, errno.EPERM)
    else:
        body = msg.body
        if "caller" in getattr(body, "_FIXED_NAMES", ()):
            body = dataclasses.replace(body, caller=p.KERNEL_PID)   # PM would believe it
        try:
            answer = (await lattice.sendrec(p.KERNEL_PID, dst, body)).body
        except SysError as exc:
            answer = p.error_reply_for(msg.m_type, exc.errno)
    try:
        lattice.reply(p.KERNEL_PID, msg, answer)
    except (SysError, p.ProtocolError) as exc:
        log.debug("reply to %d lost: %s", msg.m_source, exc)


# --- the client ---------------------------------------------------------------------------

class Client:
    """A node of its own, linked to the booted system: ``ask(dst, body)``.

    Its one endpoint's pid is derived from the node id the system gives it
    (``node_client_pid``): a joined node may have no other endpoints."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lattice = Lattice(node_id=0)    # the system gives us our node id
        self.pid = 0
        self.node = 0
        self._connected: set[int] = set()

    async def open(self, nursery: trio.Nursery) -> None:
        from ..lib.transport import dial
        self.node = await dial(self.lattice, self.path, nursery)
        self.pid = node_client_pid(self.lattice.node_id)
        self.lattice.register(self.pid)

    async def ask(self, dst: int, body: p.Payload) -> Any:
        if dst not in self._connected:
            await self.lattice.connect(self.pid, dst, self.node)
            self._connected.add(dst)
        reply = (await self.lattice.sendrec(self.pid, dst, body)).body
        if reply.error:
            raise SysError(reply.error)
        return reply


async def list_processes(client: Client, *, via_kernel: bool) -> list[p.ProcListEntry]:
    dst = p.KERNEL_PID if via_kernel else p.PM_PID
    entries: list[p.ProcListEntry] = []
    start = 0
    while True:
        reply = await client.ask(dst, p.ProcList(caller=client.pid, start=start))
        entries += p.decode_proc_list(reply.data)
        if not reply.next or reply.next <= start:
            return entries
        start = reply.next


async def memory_map(client: Client, pid: int) -> tuple[str, Any]:
    """MM's /proc/PID/maps text of ``pid`` and its last reply (the frame counts)."""
    text = bytearray()
    while True:
        reply = await client.ask(p.KERNEL_PID, p.MmMaps(pid=pid, offset=len(text)))
        text += reply.data
        if not reply.data or len(text) >= reply.result:
            return text.decode(errors="replace"), reply


def format_listing(entries: list[p.ProcListEntry], *, host: bool) -> str:
    head = f"{'PID':>5} {'PPID':>5} {'PGID':>5} {'SID':>5} " + (f"{'HOST':>7} " if host else "") \
        + f"{'UID':>5} {'THR':>3} S COMMAND"
    lines = [head]
    for e in entries:
        lines.append(f"{e.pid:>5} {e.ppid:>5} {e.pgid:>5} {e.sid:>5} "
                     + (f"{e.host_pid or '-':>7} " if host else "")
                     + f"{e.uid:>5} {e.threads:>3} {e.state} {e.command}")
    return "\n".join(lines) + "\n"


def format_memory(pid: int, text: str, reply: Any) -> str:
    kib = PAGE_SIZE // 1024
    return (f"{text}{'' if not text or text.endswith(chr(10)) else chr(10)}"
            f"pid {pid}: frames used {reply.used} ({reply.used * kib} KiB), "
            f"shared {reply.shared}, private {reply.private}; "
            f"mapped pages {reply.mapped_pages} ({reply.mapped_pages * kib} KiB)\n")


async def main_async(args: argparse.Namespace) -> str:
    client = Client(args.socket)
    with trio.fail_after(QUERY_TIMEOUT):
        async with trio.open_nursery() as nursery:
            await client.open(nursery)
            if args.mem is not None:
                text, reply = await memory_map(client, args.mem)
                out = format_memory(args.mem, text, reply)
            else:
                entries = await list_processes(client, via_kernel=args.host)
                out = format_listing(entries, host=args.host)
            nursery.cancel_scope.cancel()
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from .common import Parser
    parser = Parser(prog="xinim-ps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", action="store_true",
                        help="also show each process's host pid (asked through the kernel)")
    parser.add_argument("--mem", metavar="PID", type=int,
                        help="print MM's memory map of PID and its frames (used/shared/private)")
    parser.add_argument("--socket", metavar="PATH", default=None,
                        help="the system's node socket (default: $XINIM_SOCKET, else every "
                        f"system of yours listening in {runtime_dir()} and the like: "
                        "xinim-boot, xinim-run --listen)")
    args = parser.parse_args(argv)
    args.socket = args.socket or os.environ.get("XINIM_SOCKET") or None
    return args


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside trio's exception groups (or the group itself)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _unwrapped(args: argparse.Namespace) -> str:
    try:
        return await main_async(args)
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if leaf is group:
            raise
        raise leaf from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="xinim-ps: %(name)s: %(message)s")
    if args.socket:
        sockets = [args.socket]
    else:
        sockets = live_sockets()
        if not sockets:
            print(f"xinim-ps: no system listens on {default_socket_path()} or beside it "
                  "(is xinim-boot, or xinim-run --listen, running?)", file=sys.stderr)
            return 1
        if len(sockets) > 1 and args.mem is not None:
            print(f"xinim-ps: {len(sockets)} systems run ({', '.join(sockets)}); "
                  "choose one with --socket", file=sys.stderr)
            return 2
    status = 0
    for i, sock in enumerate(sockets):
        args.socket = sock
        out, code = _query(args)
        status = status or code
        if out is not None:
            if len(sockets) > 1:
                out = f"{'' if i == 0 else chr(10)}== {sock} ==\n{out}"
            sys.stdout.write(out)
    return status


def _query(args: argparse.Namespace) -> tuple[str | None, int]:
    try:
        return trio.run(_unwrapped, args), 0
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"xinim-ps: no system listens on {args.socket} (is xinim-boot running?)",
              file=sys.stderr)
    except trio.TooSlowError:
        print(f"xinim-ps: {args.socket}: no answer", file=sys.stderr)
    except (SysError, IpcError) as exc:
        what = f"pid {args.mem}" if args.mem is not None and exc.errno == errno.ESRCH else args.socket
        print(f"xinim-ps: {what}: {os.strerror(exc.errno)}", file=sys.stderr)
    return None, 1


if __name__ == "__main__":
    sys.exit(main())
