"""Fixtures shared by the test modules: generic helpers only (no server logic)."""
from __future__ import annotations

import errno
import signal
from typing import Callable

import pytest
import trio

from xinim_host.lib.errors import SysError
from xinim_host.lib.ipc import Lattice


def pytest_configure(config: pytest.Config) -> None:
    """Tests stop the systems they start with SIGINT, as Ctrl-C does.  A suite
    started as a background job of a script inherits SIGINT and SIGQUIT ignored
    (POSIX, for async lists without job control), and an ignored signal stays
    ignored across exec: every xinim-run a test starts would ignore its Ctrl-C
    (Python installs no KeyboardInterrupt handler then).  Give the children the
    default dispositions a terminal gives them."""
    for sig, handler in ((signal.SIGINT, signal.default_int_handler),
                         (signal.SIGQUIT, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, handler)


class FakeConsole:
    """A console that remembers what was written; reads give EOF, ioctls ENOTTY."""

    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> int:
        self.out += data
        return len(data)

    async def read(self, count: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    def tty_fd(self) -> int | None:
        return None

    def ioctl(self, request: int, arg: bytes) -> tuple[int, bytes]:
        raise SysError(errno.ENOTTY)

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")


@pytest.fixture
def console() -> FakeConsole:
    return FakeConsole()


@pytest.fixture
def lattice() -> Lattice:
    return Lattice()


def _walk(task: trio.lowlevel.Task) -> set[trio.lowlevel.Task]:
    found = {task}
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            found |= _walk(child)
    return found


@pytest.fixture
def all_tasks() -> Callable[[], set[trio.lowlevel.Task]]:
    """``all_tasks()``: every trio task of the current run, walked from the root."""

    def snapshot() -> set[trio.lowlevel.Task]:
        return _walk(trio.lowlevel.current_root_task())

    return snapshot
