"""The Memory Manager (PID 4): receive loop and call vector.

Its handlers arrive with the Memory Manager issue; until then every MM message
is answered ENOSYS by the server base (the round trip itself works).
"""
from __future__ import annotations

from ..kernel import protocol as p
from ..kernel.server import Server


class MmServer(Server):
    pid = p.MM_PID
    reply_type = p.MM_REPLY
    handlers = {}
