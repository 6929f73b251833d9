"""NET's call vector (MINIX ``table.c``): message type -> handler.

Every handler is wrapped so that, whatever it did, the sockets it changed get
their parked calls retried and their readiness sent to the VFS (``flush``).
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from ..lib import protocol as p
from . import handlers as h


def _flushing(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    @wraps(handler)
    def run(srv: Any, req: Any) -> Any:
        try:
            return handler(srv, req)
        finally:
            srv.flush()
    return run


CALL_VECTOR: dict[int, Callable[[Any, Any], Any]] = {t: _flushing(f) for t, f in {
    p.NET_SOCKET: h.do_socket,
    p.NET_SOCKETPAIR: h.do_socketpair,
    p.NET_BIND: h.do_bind,
    p.NET_LISTEN: h.do_listen,
    p.NET_ACCEPT: h.do_accept,
    p.NET_CONNECT: h.do_connect,
    p.NET_NAME: h.do_name,
    p.NET_SEND: h.do_send,
    p.NET_RECV: h.do_recv,
    p.NET_RECV_MORE: h.do_recv_more,
    p.NET_SHUTDOWN: h.do_shutdown,
    p.NET_SETOPT: h.do_setopt,
    p.NET_GETOPT: h.do_getopt,
    p.NET_CLOSE: h.do_close,
    p.NET_CANCEL: h.do_cancel,
    p.NET_EXIT: h.do_exit,
    p.NET_LIST: h.do_list,
    p.NET_IOCTL: h.do_ioctl,
    p.NET_WATCH: h.do_watch,
}.items()}
