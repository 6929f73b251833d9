"""Memory Manager messages: the plan's 300-303 and reply 350; new types take 304-349."""
from __future__ import annotations

from .wire import *  # noqa: F403 -- numbers, field kinds (i32, path, data...)
from .wire import Payload, ReplyBase, reply, request

# --- MM messages (300-303; new types take 304-349) -------------------------------


@request(MM_BRK)
class MmBrk(Payload):
    caller: i32
    addr: u64                 # 0: query


@request(MM_MMAP)
class MmMmap(Payload):
    caller: i32
    addr: u64
    length: u64
    prot: i32
    flags: i32
    fd: i32
    offset: i64


@request(MM_MUNMAP)
class MmMunmap(Payload):
    caller: i32
    addr: u64
    length: u64


@request(MM_MPROTECT)
class MmMprotect(Payload):
    caller: i32
    addr: u64
    length: u64
    prot: i32


@reply(MM_REPLY)
class MmReply(ReplyBase):
    """Generic MM reply: ``result`` is an address or 0."""


