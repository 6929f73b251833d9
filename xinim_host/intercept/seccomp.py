"""The seccomp-BPF filter installed in each traced program before it execs.

Decision order for every syscall:

1. ``arch != AUDIT_ARCH_X86_64`` (int 0x80 / i386 entry) -> KILL_PROCESS
2. x32 bit (0x40000000) in the number               -> ERRNO(ENOSYS)
3. a query the host answers alone (``allowed_if_zero``: rt_sigaction with no
   new action, rt_sigprocmask with no new set)     -> ALLOW
4. number in the trapped set                        -> TRACE (a ptrace stop)
5. anything else                                    -> ALLOW (no stop at all)

Nothing a program can put in a register lets a trapped number through: the
decision looks at the architecture and the number only -- and, for the
queries of step 3, at one argument being 0, which only lets through a call
whose whole effect is reading what the host kernel already holds.  Syscalls the tracer
makes a tracee execute (an injected mmap, the re-executed call of a "delegate,
then host" route, the launcher's own execve) trap like any other; the tracer
knows it asked for that very call in that very thread and lets it run (see
``tracee.Tracee._reexecute`` and ``tracer.Tracer._other_stop``).  An earlier
design let calls with a fixed "cookie" in r9 through untrapped, which any
program could forge.

Or, inverted (``allowed=``): numbers in the allowed set -> ALLOW, anything
else -> TRACE, for tables that say "everything not run on the host traps".

The set is matched by a binary search tree over ranges of numbers, so an
untrapped syscall costs O(log n) BPF compares however many are trapped.

Hand-assembled (rather than libseccomp): the program is small, a range tree
keeps it O(log n), and it is tested against the BPF evaluator below.
"""
from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

from . import _libc

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF

SECCOMP_SET_MODE_FILTER = 1
SYS_seccomp = 317
PR_SET_NO_NEW_PRIVS = 38

# classic BPF opcodes
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JEQ_K = 0x15
_JGT_K = 0x25
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# struct seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARGS = 16

Insn = tuple[int, int, int, int]  # code, jt, jf, k


def _ranges(nrs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(set(nrs)):
        if not 0 <= n < X32_SYSCALL_BIT:
            raise ValueError(f"not an x86-64 syscall number: {n}")
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _tree(rs: Sequence[tuple[int, int]], hit: int, miss: int) -> list[Insn]:
    """Instructions returning ``hit`` if A = nr is in one of the ranges, else
    ``miss``; every path ends in a RET."""
    if len(rs) <= 3:
        ins: list[Insn] = []
        for a, b in rs:
            if a == b:
                ins += [(_JEQ_K, 0, 1, a), (_RET_K, 0, 0, hit)]
            else:  # a <= A <= b
                ins += [(_JGE_K, 0, 2, a), (_JGT_K, 1, 0, b), (_RET_K, 0, 0, hit)]
        ins.append((_RET_K, 0, 0, miss))
        return ins
    mid = len(rs) // 2
    left = _tree(rs[:mid], hit, miss)
    right = _tree(rs[mid:], hit, miss)
    pivot = rs[mid][0]
    if len(left) <= 255:
        return [(_JGE_K, len(left), 0, pivot)] + left + right
    # jt/jf are 8 bits: hop over a big left subtree with a 32-bit JA
    return [(_JGE_K, 0, 1, pivot), (_JMP_JA, 0, 0, len(left))] + left + right


def build_filter(trapped: Iterable[int] = (), trace_data: int = 0, *,
                 allowed: Iterable[int] | None = None,
                 allowed_if_zero: Mapping[int, int] | None = None) -> list[Insn]:
    """The filter program as a list of (code, jt, jf, k).

    ``trapped``: these numbers stop, the rest run.  ``allowed`` (if given,
    ``trapped`` is ignored): these numbers run, every other one stops.
    ``allowed_if_zero``: number -> argument index; that number runs without a
    stop when the argument (all 64 bits) is 0, and stops otherwise -- a query
    that is the host's alone (``sigaction(sig, NULL, &old)``).
    """
    trace = SECCOMP_RET_TRACE | (trace_data & SECCOMP_RET_DATA)
    prog: list[Insn] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
        (_JSET_K, 0, 1, X32_SYSCALL_BIT),
        (_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
    ]
    for nr, arg in sorted((allowed_if_zero or {}).items()):
        if not 0 <= arg < 6:
            raise ValueError(f"no syscall argument {arg}")
        low = _OFF_ARGS + 8 * arg
        prog += [
            (_JEQ_K, 0, 6, nr),                 # another number: the next check
            (_LD_W_ABS, 0, 0, low),
            (_JEQ_K, 0, 3, 0),
            (_LD_W_ABS, 0, 0, low + 4),         # (seccomp_data is little-endian)
            (_JEQ_K, 0, 1, 0),
            (_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            (_RET_K, 0, 0, trace),
        ]
    if allowed is None:
        prog += _tree(_ranges(trapped), trace, SECCOMP_RET_ALLOW)
    else:
        prog += _tree(_ranges(allowed), SECCOMP_RET_ALLOW, trace)
    if len(prog) > 4096:
        raise ValueError("seccomp filter too long")
    return prog


def traps(trapped: Iterable[int] = (), *, allowed: Iterable[int] | None = None
          ) -> Callable[[int], bool]:
    """Whether the filter built from the same arguments stops on ``nr`` (the
    tracer uses it to know which re-executed calls will show a seccomp stop)."""
    if allowed is None:
        stop = frozenset(trapped)
        return stop.__contains__
    run = frozenset(allowed)
    return lambda nr: nr not in run


def assemble(prog: Sequence[Insn]) -> bytes:
    """``struct sock_filter[]`` bytes."""
    return b"".join(struct.pack("<HBBI", *insn) for insn in prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(code: bytes) -> None:
    """Install an assembled filter in the calling process (the forked child).

    Tries without NO_NEW_PRIVS first: when we have CAP_SYS_ADMIN (root) the
    kernel does not require it, and leaving it off keeps setuid programs
    working under the tracer.  Otherwise sets PR_SET_NO_NEW_PRIVS and retries.
    """
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buf))
    addr = ctypes.addressof(prog)
    if _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, addr, 0, 0, 0) == 0:
        return
    if _libc.get_errno() != errno.EACCES:
        _libc.raise_errno("seccomp")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _libc.raise_errno("prctl(PR_SET_NO_NEW_PRIVS)")
    if _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, addr, 0, 0, 0) != 0:
        _libc.raise_errno("seccomp")


def evaluate(prog: Sequence[Insn], nr: int, args: Sequence[int] = (0,) * 6,
             arch: int = AUDIT_ARCH_X86_64, ip: int = 0) -> int:
    """Run the program on one seccomp_data in Python (for tests and --explain)."""
    data = struct.pack("<iIQ6Q", nr if nr < 1 << 31 else nr - (1 << 32), arch, ip,
                       *[a & ((1 << 64) - 1) for a in args])
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == _LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == _RET_K:
            return k
        elif code == _JMP_JA:
            pc += k
        else:
            cond = {_JEQ_K: acc == k, _JGT_K: acc > k, _JGE_K: acc >= k, _JSET_K: bool(acc & k)}[code]
            pc += jt if cond else jf
