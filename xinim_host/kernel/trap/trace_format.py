"""strace's way of writing a system call, from python-ptrace's knowledge of them.

Names and argument types come from python-ptrace (``SYSCALL_PROTOTYPES``, its
flag tables and signal names); this module only renders them the way strace 6
does, so a trace reads (and diffs) like strace's: ``openat(AT_FDCWD,
"/etc/hostname", O_RDONLY|O_CLOEXEC) = 3``, ``= -1 ENOENT (No such file or
directory)``, escaped strings cut at ``-s``, structures the way strace abbreviates
them.  Nothing here may raise on what a program passes: an unreadable pointer
is written as its address, as strace does.
"""
from __future__ import annotations

import errno
import mmap
import os
import signal
import stat
from typing import Callable, Iterable, Protocol

from ptrace.signames import signalName
from ptrace.syscall import FILENAME_ARGUMENTS
from ptrace.syscall.posix_arg import (ACCESS_MODE_BITMASK, CLONE_FLAGS_BITMASK,
                                      MMAP_PROT_BITMASK, OPEN_FLAGS_BITMASK)
from ptrace.syscall.posix_constants import SYSCALL_ARG_DICT
from ptrace.syscall.prototypes import SYSCALL_PROTOTYPES

from ...lib import linux_abi as abi

Prototype = tuple[str, tuple[tuple[str, str], ...]]
_UNKNOWN: Prototype = ("long", tuple(("long", f"arg{i}") for i in range(6)))

# calls newer than python-ptrace's table (its prototypes stop at Linux 5.x)
_NEWER: dict[str, Prototype] = {
    "faccessat2": ("long", (("int", "dirfd"), ("const char *", "pathname"), ("int", "mode"),
                            ("int", "flags"))),
    "openat2": ("long", (("int", "dirfd"), ("const char *", "pathname"),
                         ("struct open_how *", "how"), ("size_t", "size"))),
    "io_uring_setup": ("long", (("u32", "entries"), ("struct io_uring_params *", "p"))),
    "clone3": ("long", (("struct clone_args *", "uargs"), ("size_t", "size"))),
    "close_range": ("long", (("unsigned int", "fd"), ("unsigned int", "max_fd"),
                             ("unsigned int", "flags"))),
    "epoll_pwait2": ("long", (("int", "epfd"), ("struct epoll_event *", "events"),
                              ("int", "maxevents"), ("const struct timespec *", "timeout"),
                              ("const sigset_t *", "sigmask"), ("size_t", "sigsetsize"))),
}


def prototype(name: str) -> Prototype:
    return SYSCALL_PROTOTYPES.get(name) or _NEWER.get(name) or _UNKNOWN


# --- classes for -e trace=%class (strace's sysent flags) -------------------------------

def _derived_file_calls() -> frozenset[str]:
    """strace's %file: the calls that take a file name (python-ptrace marks those
    arguments), plus the newer ones it does not know."""
    names = {n for n, (_, args) in SYSCALL_PROTOTYPES.items()
             if any(an in FILENAME_ARGUMENTS and "char" in t for t, an in args)}
    names.update(("faccessat2", "openat2", "execveat", "statx", "newfstatat"))
    names.discard("getcwd")     # its "pathname" is the buffer it fills, not a name it takes
    names.discard("__getcwd")
    return frozenset(names)


def _derived_desc_calls() -> frozenset[str]:
    return frozenset(n for n, (_, args) in SYSCALL_PROTOTYPES.items()
                     if args and args[0][1] in ("fd", "fildes", "oldfd", "epfd", "dirfd", "dfd"))


CLASSES: dict[str, frozenset[str]] = {
    "file": _derived_file_calls(),
    "desc": _derived_desc_calls(),
    "process": frozenset((
        "clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group",
        "wait4", "waitid", "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
        "pidfd_open", "pidfd_send_signal", "unshare")),
    "network": frozenset((
        "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
        "getsockname", "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg",
        "sendmmsg", "recvmmsg", "shutdown", "setsockopt", "getsockopt")),
    "signal": frozenset((
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
        "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "kill",
        "tkill", "tgkill", "pause", "signalfd", "signalfd4", "pidfd_send_signal")),
    "memory": frozenset((
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2",
        "munlock", "mlockall", "munlockall", "mincore", "msync", "remap_file_pages",
        "pkey_mprotect", "mbind", "get_mempolicy", "set_mempolicy", "migrate_pages",
        "move_pages", "shmat", "shmdt")),
    "ipc": frozenset((
        "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
        "msgget", "msgsnd", "msgrcv", "msgctl")),
}


# --- flag tables strace uses that python-ptrace lacks (values from the stdlib) ------------

def _named(module: object, prefix: str, names: Iterable[str]) -> list[tuple[int, str]]:
    out = []
    for n in names:
        v = getattr(module, prefix + n, None)
        if isinstance(v, int) and v:
            out.append((v, prefix + n))
    return out


MAP_BITS = [(0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x03, "MAP_SHARED_VALIDATE")]
MAP_FLAGS = [(0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"),
             (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
             (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
             (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
             (0x100000, "MAP_FIXED_NOREPLACE")]
assert all(getattr(mmap, name, v) == v for v, name in MAP_FLAGS)   # same numbers as the host
AT_FLAGS = [(abi.AT_SYMLINK_NOFOLLOW, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"),
            (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
            (abi.AT_EMPTY_PATH, "AT_EMPTY_PATH"), (0x8000, "AT_RECURSIVE")]
_AT_FLAG_ARGS = frozenset(("flag", "flags", "atflags"))
_FD_ARGS = frozenset(("dirfd", "dfd", "olddfd", "newdfd", "olddirfd", "newdirfd"))
_SIG_ARGS = frozenset(("sig", "signum", "signal"))
_ADDR_CALLS = frozenset(("mmap", "brk", "mremap", "shmat"))    # results are addresses
SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
            -4: "SI_ASYNCIO", -6: "SI_TKILL"}
CLD_CODES = {1: "CLD_EXITED", 2: "CLD_KILLED", 3: "CLD_DUMPED", 4: "CLD_TRAPPED",
             5: "CLD_STOPPED", 6: "CLD_CONTINUED"}
SEGV_CODES = {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"}
_IFMT = [(stat.S_IFSOCK, "S_IFSOCK"), (stat.S_IFLNK, "S_IFLNK"), (stat.S_IFREG, "S_IFREG"),
         (stat.S_IFBLK, "S_IFBLK"), (stat.S_IFDIR, "S_IFDIR"), (stat.S_IFCHR, "S_IFCHR"),
         (stat.S_IFIFO, "S_IFIFO")]


def _fcntl_commands() -> dict[int, str]:
    """fcntl's commands by this host's numbers (python-ptrace's table is another
    architecture's: it calls x86-64's F_SETOWN F_SETLK)."""
    import fcntl
    names: dict[int, str] = {}
    for n in sorted(dir(fcntl), key=len, reverse=True):    # F_GETLK over F_GETLK64
        v = getattr(fcntl, n)
        if n.startswith("F_") and isinstance(v, int) and not n.startswith("F_SEAL") and n not in (
                "F_OK", "F_LOCK", "F_TLOCK", "F_ULOCK", "F_TEST", "F_EXLCK", "F_SHLCK",
                "F_RDLCK", "F_WRLCK", "F_UNLCK"):
            names[v] = n
    names.update({36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW",
                  15: "F_SETOWN_EX", 16: "F_GETOWN_EX"})
    return names


FCNTL_CMDS = _fcntl_commands()


def bits(value: int, table: Iterable[tuple[int, str]], zero: str = "0") -> str:
    names, rest = [], value
    for mask, name in table:
        if mask and rest & mask == mask:
            names.append(name)
            rest &= ~mask
    if rest:
        names.append(hex(rest))
    return "|".join(names) if names else zero


def open_flags(value: int) -> str:
    acc = value & 3
    head = ("O_RDONLY", "O_WRONLY", "O_RDWR", "0x3")[acc]
    table = [(m, n) for m, n in OPEN_FLAGS_BITMASK
             if n not in ("O_WRONLY", "O_RDWR", "O_LARGEFILE", "O_TMPFILE")]
    rest = value & ~3
    if rest & 0o20200000 == 0o20200000:
        rest &= ~0o20200000
        head += "|O_TMPFILE"
    tail = bits(rest, table, "")
    return head + ("|" + tail if tail else "")


def mode_string(mode: int) -> str:
    fmt = mode & 0o170000                     # S_IFMT
    kind = next((n for m, n in _IFMT if m == fmt), None)
    parts = [kind] if kind else ([oct(fmt)] if fmt else [])
    for m, n in ((stat.S_ISUID, "S_ISUID"), (stat.S_ISGID, "S_ISGID"), (stat.S_ISVTX, "S_ISVTX")):
        if mode & m:
            parts.append(n)
    parts.append(f"{mode & 0o777:04o}")
    return "|".join(parts)


SA_FLAGS = [(0x1, "SA_NOCLDSTOP"), (0x2, "SA_NOCLDWAIT"), (0x4, "SA_SIGINFO"),
            (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"),
            (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND")]


def _short_signame(sig: int) -> str:
    if sig == 32:
        return "RTMIN"
    if sig > 32:
        return f"RT_{sig - 32}"
    return signame(sig).removeprefix("SIG")


def sigset_text(mask: int) -> str:
    """strace's ``[INT CHLD]``, or ``~[...]`` naming the few not in a full set."""
    members = [s for s in range(1, 65) if mask >> (s - 1) & 1]
    if len(members) > 32:
        return "~[" + " ".join(_short_signame(s) for s in range(1, 65)
                               if not mask >> (s - 1) & 1) + "]"
    return "[" + " ".join(_short_signame(s) for s in members) + "]"


def signame(sig: int) -> str:
    return signalName(sig) if 0 < sig < 65 else str(sig)


def errname(err: int) -> str:
    return errno.errorcode.get(err, str(err))


_RESTARTS = {512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
             513: ("ERESTARTNOINTR", "To be restarted"),
             514: ("ERESTARTNOHAND", "To be restarted if no handler"),
             516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal")}


def result_text(name: str, result: int) -> str:
    if -4096 < result < 0:
        err = -result
        if err in _RESTARTS:
            code, text = _RESTARTS[err]
            return f"? {code} ({text})"
        return f"-1 {errname(err)} ({os.strerror(err)})"
    if name in _ADDR_CALLS:
        return hex(result)
    return str(result)


def quote(data: bytes, limit: int, cut: bool = False) -> str:
    """A C string the way strace writes one: printable ASCII as is, the usual
    escapes, octal for the rest; ``...`` after the quote when cut at ``limit``."""
    shown = data[:limit]
    out = ['"']
    for i, b in enumerate(shown):
        if b == 0x22 or b == 0x5C:
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif b in _ESCAPES:
            out.append(_ESCAPES[b])
        else:
            nxt = shown[i + 1] if i + 1 < len(shown) else None
            # \1 then a digit would read as \1d: write all three digits then
            out.append(f"\\{b:03o}" if nxt is not None and 0x30 <= nxt <= 0x37 else f"\\{b:o}")
    out.append('"')
    if cut or len(data) > limit:
        out.append("...")
    return "".join(out)


_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r"}


class Memory(Protocol):
    def read(self, addr: int, n: int) -> bytes: ...
    def read_cstring(self, addr: int, limit: int = 4096) -> bytes: ...


def _signed(value: int, bits_: int = 64) -> int:
    value &= (1 << bits_) - 1
    return value - (1 << bits_) if value >> (bits_ - 1) else value


class CallFormat:
    """Renders one call's arguments; ``strsize`` is strace's ``-s``."""

    def __init__(self, strsize: int = 32) -> None:
        self.strsize = strsize

    def call(self, name: str, args: Iterable[int], result: int, mem: Memory) -> str:
        proto = prototype(name)[1]
        vals = list(args)[:len(proto)]
        if name in ("openat", "open") and not vals[-2 if name == "openat" else 1] & 0o20200100:
            proto, vals = proto[:-1], vals[:-1]         # the mode matters only when creating
        shown = []
        for (ctype, argname), value in zip(proto, vals):
            try:
                shown.append(self.arg(name, ctype, argname, value, vals, result, mem))
            except (OSError, ValueError, IndexError):
                shown.append(hex(value) if value else "NULL")
        return f"{name}({', '.join(shown)})"

    def arg(self, name: str, ctype: str, argname: str, value: int, vals: list[int],
            result: int, mem: Memory) -> str:
        if name == "fcntl" and argname == "cmd":
            return FCNTL_CMDS.get(value & 0xFFFFFFFF, str(value))
        table = SYSCALL_ARG_DICT.get(name, {}).get(argname)
        if table is not None and value in table:
            return table[value]
        pointer = ctype.endswith("*")
        if argname in _FD_ARGS or (argname == "fd" and name.endswith("at")):
            v = _signed(value, 32)
            return "AT_FDCWD" if v == abi.AT_FDCWD else str(v)
        if name in ("openat", "open") and argname == "flags":
            return open_flags(value)
        if name in ("openat", "open", "creat", "mkdir", "mkdirat", "chmod", "fchmod",
                    "fchmodat", "mknod", "mknodat") and argname == "mode":
            return mode_string(value) if name.startswith("mknod") else f"{value & 0o7777:04o}"
        if name in ("access", "faccessat", "faccessat2") and argname == "mode":
            return bits(value, ACCESS_MODE_BITMASK[::-1], "F_OK")
        if argname in _AT_FLAG_ARGS and (name.endswith("at") or name in ("faccessat2", "statx",
                                                                           "execveat")):
            return bits(value, AT_FLAGS)
        if argname in _SIG_ARGS:
            return signame(value)
        if name in ("mmap", "mprotect", "pkey_mprotect") and argname == "prot":
            return bits(value, MMAP_PROT_BITMASK, "PROT_NONE")
        if name == "mmap":
            if argname == "flags":
                head = next((n for m, n in reversed(MAP_BITS) if value & 3 == m), hex(value & 3))
                tail = bits(value & ~3, MAP_FLAGS, "")
                return head + ("|" + tail if tail else "")
            if argname == "fd":
                return str(_signed(value, 32))
            if argname in ("pgoff", "off", "offset"):
                return hex(value) if value else "0"
            if argname == "addr":
                return hex(value) if value else "NULL"
        if name in ("clone",) and argname == "flags":
            return bits(value & ~0xFF, CLONE_FLAGS_BITMASK) + (
                "|" + signame(value & 0xFF) if value & 0xFF else "")
        if pointer:
            return self.pointer(name, ctype, argname, value, vals, result, mem)
        if ctype in ("unsigned int", "unsigned long", "size_t", "u32", "umode_t"):
            if name in ("brk", "munmap", "mremap", "madvise", "mprotect") and argname in (
                    "brk", "addr", "start", "old_address", "new_address"):
                return hex(value) if value else "NULL"
            return str(value & (0xFFFFFFFF if ctype in ("unsigned int", "u32", "umode_t")
                                else (1 << 64) - 1))
        if ctype in ("int", "pid_t", "uid_t", "gid_t", "clockid_t", "key_t", "mqd_t"):
            return str(_signed(value, 32))
        return str(_signed(value))

    def pointer(self, name: str, ctype: str, argname: str, value: int, vals: list[int],
                result: int, mem: Memory) -> str:
        if not value:
            return "NULL"
        base = ctype.replace("const ", "").replace("*", "").strip()
        failed = -4096 < result < 0
        if base == "char" and argname in FILENAME_ARGUMENTS:
            name_ = self.cstring(value, mem)        # strace prints file names whole
            return quote(name_, len(name_))
        if base == "char" and ctype.startswith("const"):
            return quote(self.cstring(value, mem), self.strsize)
        if name == "execve" and argname in ("argv", "envp"):
            return self.string_array(value, mem) if argname == "argv" else self.env_count(value, mem)
        if base in ("char", "void") and argname in ("buf", "ubuf"):
            # read: what came back (only on success); write: what went out
            if name in ("read", "pread64", "recvfrom"):
                if failed:
                    return hex(value)
                n = result
            else:
                n = vals[2] if len(vals) > 2 else 0
            data = mem.read(value, min(n, self.strsize))
            return quote(data, self.strsize, cut=n > self.strsize)
        if base in ("struct stat", "struct __old_kernel_stat") and not failed:
            raw = mem.read(value, abi.STAT.size)
            st = abi.STAT.unpack(raw)
            return f"{{st_mode={mode_string(st[3])}, st_size={st[8]}, ...}}"
        out_arg = not ctype.startswith("const")
        if base == "sigset_t" and not (out_arg and failed):
            (mask,) = abi.POINTER.unpack(mem.read(value, 8))
            return sigset_text(mask)
        if base == "struct sigaction" and not (argname.startswith("o") and failed):
            handler, flags, restorer, mask = abi.SIGACTION.unpack(mem.read(value, abi.SIGACTION.size))
            shown = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, hex(handler))
            text = f"{{sa_handler={shown}, sa_mask={sigset_text(mask)}, sa_flags={bits(flags, SA_FLAGS)}"
            if flags & 0x04000000:
                text += f", sa_restorer={restorer:#x}"
            return text + "}"
        if base == "int" and name in ("pipe", "pipe2") and not failed:
            a, b = abi.TWO_INTS.unpack(mem.read(value, 8))
            return f"[{a}, {b}]"
        return hex(value)

    def cstring(self, addr: int, mem: Memory) -> bytes:
        """Up to the NUL, or a bit more than ``-s`` shows when there is none soon."""
        try:
            return mem.read_cstring(addr, 4096)
        except OSError:
            return mem.read(addr, self.strsize + 1)

    def string_array(self, addr: int, mem: Memory, limit: int = 32) -> str:
        items = []
        for i in range(limit + 1):
            (ptr,) = abi.POINTER.unpack(mem.read(addr + 8 * i, 8))
            if not ptr:
                break
            if i == limit:
                items.append("...")
                break
            items.append(quote(self.cstring(ptr, mem), self.strsize))
        return "[" + ", ".join(items) + "]"

    def env_count(self, addr: int, mem: Memory) -> str:
        n = 0
        while n < 100000:
            (ptr,) = abi.POINTER.unpack(mem.read(addr + 8 * n, 8))
            if not ptr:
                break
            n += 1
        return f"{addr:#x} /* {n} vars */"


def _pid_field(host_pid: int, xinim_pid: Callable[[int], int]) -> list[str]:
    """si_pid in XINIM's numbering; left out when the sender is no XINIM task any
    more (a reaped child) or never was (XINIM's own signals)."""
    pid = xinim_pid(host_pid)
    return [f"si_pid={pid}"] if pid else []


def siginfo_text(sig: int, info: bytes, xinim_pid: Callable[[int], int]) -> str:
    """``{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=7, ...}`` from a siginfo_t."""
    if len(info) < 24:
        return f"{{si_signo={signame(sig)}}}"
    signo, _errno, code = abi.TWO_INTS.unpack_from(info, 0) + (abi.INT.unpack_from(info, 8)[0],)
    parts = [f"si_signo={signame(signo or sig)}"]
    if signo == signal.SIGCHLD and code in CLD_CODES:
        pid, uid, status = abi.INT.unpack_from(info, 16)[0], abi.INT.unpack_from(info, 20)[0], \
            abi.INT.unpack_from(info, 24)[0]
        shown = signame(status) if code in (2, 3, 4, 5, 6) else str(status)
        parts += [f"si_code={CLD_CODES[code]}", *_pid_field(pid, xinim_pid), f"si_uid={uid}",
                  f"si_status={shown}"]
    elif signo in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE) and code > 0:
        (addr,) = abi.POINTER.unpack_from(info, 16)
        codes = SEGV_CODES if signo == signal.SIGSEGV else {}
        parts += [f"si_code={codes.get(code, code)}", f"si_addr={addr:#x}"]
    else:
        parts.append(f"si_code={SI_CODES.get(code, code)}")
        if code <= 0:
            pid, uid = abi.INT.unpack_from(info, 16)[0], abi.INT.unpack_from(info, 20)[0]
            parts += [*_pid_field(pid, xinim_pid), f"si_uid={uid}"]
    return "{" + ", ".join(parts) + "}"
