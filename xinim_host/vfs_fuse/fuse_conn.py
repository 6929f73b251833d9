"""What pyfuse3 gives no way to negotiate: turning off ``auto_inval_data``.

libfuse 3 asks the kernel for ``FUSE_AUTO_INVAL_DATA`` by default: whenever
the kernel refreshes a file's attributes and the mtime differs from the one it
cached, it drops every cached page of the file.  A host program that writes a
file and then reads it back (a compiler and its linker, ``cp`` then ``cmp``)
never reads from the page cache: each write changes the mtime behind the
kernel's back (without a writeback cache the kernel keeps no mtime of its own),
so the read after it refetches the whole file.  The export does not need the
heuristic: every change that did not come through the mount is invalidated
explicitly (``invalidate_inode`` with data, before the XINIM call returns; see
fuse_export), and writes through the mount land in the kernel's pages as well
as in the ramfs.

pyfuse3's ``init`` handler cannot touch the ``fuse_conn_info`` libfuse
negotiates with, so :func:`drop_auto_inval_data` finds it from outside: the
session pointer pyfuse3 keeps in a module-static variable (located through the
extension's ELF symbol table), and in the session the ``fuse_conn_info``
(found by its contents and checked, not by an offset that changes between
libfuse releases).  Called from ``Operations.init``, which runs inside
libfuse's INIT handler after the defaults are set and before the reply is
built.  Anything unexpected leaves the connection as it is (the heuristic
stays on: correct, only slower).
"""
from __future__ import annotations

import ctypes
import logging
import struct
from functools import lru_cache

import pyfuse3

log = logging.getLogger(__name__)

FUSE_CAP_EXPORT_SUPPORT = 1 << 4
FUSE_CAP_AUTO_INVAL_DATA = 1 << 12
FUSE_CAP_READDIRPLUS = 1 << 13
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
#: How far into struct fuse_session to look for the conn info (it sits after
#: a few fields and the ops table, ~410 bytes in libfuse 3.14; the struct is
#: bigger than this, so the scan stays inside it).
_SCAN_BYTES = 1024
_SESSION_SYMBOL = b"__pyx_v_7pyfuse3_session"
_ANCHOR_SYMBOL = b"PyInit_pyfuse3"


def _elf_symbols(path: str, wanted: set[bytes]) -> dict[bytes, int]:
    """st_value of the ``wanted`` symbols in a 64-bit little-endian ELF's
    .symtab (static symbols are only there, not in .dynsym)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
                for i in range(e_shnum)]
    found: dict[bytes, int] = {}
    for sh in sections:
        if sh[1] != 2:                      # SHT_SYMTAB
            continue
        off, size, link, entsize = sh[4], sh[5], sh[6], sh[9] or 24
        stroff = sections[link][4]
        for i in range(size // entsize):
            st_name, _info, _other, _shndx, st_value, _size = struct.unpack_from(
                "<IBBHQQ", data, off + i * entsize)
            end = data.index(b"\0", stroff + st_name)
            name = data[stroff + st_name:end]
            if name in wanted:
                found[name] = st_value
    return found


@lru_cache(maxsize=1)
def _session_slot() -> int | None:
    """Address of pyfuse3's ``session`` variable in this process, or None."""
    path = pyfuse3.__file__
    if path is None:
        return None
    syms = _elf_symbols(path, {_SESSION_SYMBOL, _ANCHOR_SYMBOL})
    if len(syms) != 2:
        return None
    anchor = ctypes.cast(getattr(ctypes.CDLL(path), _ANCHOR_SYMBOL.decode()),
                         ctypes.c_void_p).value
    if not anchor:
        return None
    return anchor - syms[_ANCHOR_SYMBOL] + syms[_SESSION_SYMBOL]


def _find_conn(session: int) -> int | None:
    """Address of the session's fuse_conn_info: the one place in the first
    _SCAN_BYTES that reads as the INIT being negotiated now."""
    raw = ctypes.string_at(session, _SCAN_BYTES)
    hits = []
    for off in range(0, _SCAN_BYTES - 28, 4):
        (major, minor, max_write, max_read, max_readahead, capable,
         want) = struct.unpack_from("<7I", raw, off)
        if (major == 7 and 26 <= minor < 1000 and max_write >= 4096
                and capable & (FUSE_CAP_READDIRPLUS | FUSE_CAP_AUTO_INVAL_DATA)
                == FUSE_CAP_READDIRPLUS | FUSE_CAP_AUTO_INVAL_DATA
                and want & FUSE_CAP_READDIRPLUS
                and not want & FUSE_CAP_READDIRPLUS_AUTO      # pyfuse3's init cleared it
                and not want & ~capable):
            hits.append(off)
    if len(hits) != 1:
        return None
    return session + hits[0]


def drop_auto_inval_data() -> bool:
    """Inside pyfuse3's INIT handler: stop asking for FUSE_AUTO_INVAL_DATA.
    True when done; False (and nothing changed) when the session or its conn
    info cannot be found for sure."""
    try:
        slot = _session_slot()
        if slot is None:
            log.debug("pyfuse3 session not found: auto_inval_data stays on")
            return False
        session = ctypes.c_void_p.from_address(slot).value
        if not session:
            return False
        conn = _find_conn(session)
        if conn is None:
            log.debug("fuse_conn_info not found: auto_inval_data stays on")
            return False
        want = ctypes.c_uint.from_address(conn + 24)     # after 6 unsigned fields
        want.value &= ~FUSE_CAP_AUTO_INVAL_DATA
        log.debug("auto_inval_data off (conn info at session + %d)", conn - session)
        return True
    except (OSError, ValueError, AttributeError, struct.error) as e:
        log.debug("auto_inval_data stays on: %s", e)
        return False
