"""x86-64 ``struct user_regs_struct`` (what PTRACE_GETREGS / PTRACE_SETREGS move).

Syscall ABI: number in ``orig_rax`` (``rax`` is clobbered with -ENOSYS on
entry), arguments in rdi rsi rdx r10 r8 r9, result in ``rax``.  Register
values are unsigned 64-bit; use :func:`s64` / :func:`s32` to read them as C
``long`` / ``int`` (e.g. ``AT_FDCWD`` arrives as 0xffffff9c or
0xffffffffffffff9c depending on the caller).
"""
from __future__ import annotations

import ctypes

MASK64 = (1 << 64) - 1

_FIELDS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
    "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)


class UserRegs(ctypes.Structure):
    """``struct user_regs_struct`` (arch/x86/include/asm/user_64.h)."""

    _fields_ = [(name, ctypes.c_uint64) for name in _FIELDS]

    # -- syscall view -------------------------------------------------------
    @property
    def nr(self) -> int:
        return self.orig_rax

    @property
    def args(self) -> tuple[int, int, int, int, int, int]:
        return (self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9)

    def set_args(self, args: tuple[int, ...] | list[int]) -> None:
        """Write up to six argument registers (missing ones are left alone)."""
        n = len(args)
        if n > 6:
            raise ValueError("x86-64 syscalls take at most 6 arguments")
        names = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
        for i in range(n):
            setattr(self, names[i], args[i] & MASK64)

    @property
    def result(self) -> int:
        """``rax`` as a signed long (negative errno on failure)."""
        return s64(self.rax)

    @result.setter
    def result(self, value: int) -> None:
        self.rax = value & MASK64

    def copy(self) -> UserRegs:
        return UserRegs.from_buffer_copy(self)

    def __repr__(self) -> str:
        return "UserRegs(" + ", ".join(f"{n}={getattr(self, n):#x}" for n in _FIELDS) + ")"


assert ctypes.sizeof(UserRegs) == 27 * 8

ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")


def s64(v: int) -> int:
    """Unsigned 64-bit register value as a signed C long."""
    return v - (1 << 64) if v & (1 << 63) else v


def s32(v: int) -> int:
    """Low 32 bits of a register as a signed C int (the kernel's ``int`` args)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & (1 << 31) else v
