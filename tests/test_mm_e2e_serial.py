"""The memory calls of one address space run one at a time (kernel/calls/memory.py).

MM decides, then the host applies with injected syscalls; between the two the
tracer serves other threads.  Without serialisation thread A's munmap (decided)
lets thread B's mmap get the same addresses and map them before A's host munmap
runs, which then unmaps B's memory -- tests/c/mm_more.c's threads died of
SIGSEGV that way.  These tests drive the handler wrapper directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from xinim_host.kernel.calls import memory
from xinim_host.kernel.calls.base import Await, HostCall, SyscallContext
from xinim_host.lib.usermem import FlatMemory


@dataclass
class FakeTracee:
    alive: bool = True


@dataclass
class FakeHost:
    host_pid: int = 1000
    tracee: FakeTracee = field(default_factory=FakeTracee)


def ctx(host: FakeHost, pid: int = 7) -> SyscallContext:
    return SyscallContext(pid=pid, args=(0,) * 6, mem=FlatMemory(4096), host=host)


@memory._serialised
def two_host_calls(k: Any, c: SyscallContext):
    """A stand-in memory handler: "decide", then two host calls."""
    first = yield HostCall(9, (c.tid,))
    second = yield HostCall(11, (c.tid,))
    return first + second


def run_to_wait(gen) -> Any:
    return gen.send(None)


@pytest.fixture(autouse=True)
def no_leftover_locks():
    yield
    assert memory._space_locks == {}


async def test_second_call_of_one_process_waits_for_the_first() -> None:
    a_host, b_host = FakeHost(), FakeHost()
    a = two_host_calls(None, ctx(a_host))
    b = two_host_calls(None, ctx(b_host))
    assert isinstance(run_to_wait(a), HostCall)          # A holds the address space
    op = run_to_wait(b)
    assert isinstance(op, Await)                          # B waits its turn
    waited = trio.Event()

    async def wait_b() -> None:
        await op.make()
        waited.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_b)
        await trio.testing.wait_all_tasks_blocked()
        assert not waited.is_set()
        assert isinstance(a.send(1), HostCall)            # A's second host call: still A's
        await trio.testing.wait_all_tasks_blocked()
        assert not waited.is_set()
        with pytest.raises(StopIteration) as done:
            a.send(2)
        assert done.value.value == 3
    assert waited.is_set()                                # A done: B's turn
    assert isinstance(b.send(None), HostCall)
    b.send(0)
    with pytest.raises(StopIteration):
        b.send(0)


async def test_other_processes_do_not_wait() -> None:
    a = two_host_calls(None, ctx(FakeHost(host_pid=1000), pid=7))
    b = two_host_calls(None, ctx(FakeHost(host_pid=2000), pid=8))
    c = two_host_calls(None, ctx(FakeHost(host_pid=3000), pid=7))   # pid 7 reused
    for gen in (a, b, c):
        assert isinstance(run_to_wait(gen), HostCall)
    for gen in (a, b, c):
        gen.send(0)
        with pytest.raises(StopIteration):
            gen.send(0)


async def test_waiters_run_first_come_first_served() -> None:
    holder = two_host_calls(None, ctx(FakeHost()))
    run_to_wait(holder)
    order: list[int] = []
    gens = [two_host_calls(None, ctx(FakeHost())) for _ in range(3)]
    ops = [run_to_wait(g) for g in gens]

    async def turn(i: int) -> None:
        await ops[i].make()
        order.append(i)
        gens[i].send(None)
        await trio.sleep(0.01)
        gens[i].send(0)
        with pytest.raises(StopIteration):
            gens[i].send(0)

    async with trio.open_nursery() as nursery:
        for i in (0, 1, 2):
            nursery.start_soon(turn, i)
        await trio.testing.wait_all_tasks_blocked()
        holder.send(0)
        with pytest.raises(StopIteration):
            holder.send(0)
    assert order == [0, 1, 2]


async def test_a_dead_holder_is_taken_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread killed in the middle of its memory call (another thread exec'd)
    is never resumed; the next caller must not wait for it forever."""
    monkeypatch.setattr(memory, "STALE_CHECK", 0.01)
    dead_host = FakeHost()
    dead = two_host_calls(None, ctx(dead_host))
    run_to_wait(dead)
    nxt = two_host_calls(None, ctx(FakeHost()))
    op = run_to_wait(nxt)
    dead_host.tracee.alive = False
    with trio.fail_after(5):
        await op.make()
    assert isinstance(nxt.send(None), HostCall)
    # the dead call's generator is collected later: its release must not touch
    # the lock that now belongs to someone else
    dead.close()
    nxt.send(0)
    with pytest.raises(StopIteration):
        nxt.send(0)


async def test_a_failing_handler_releases() -> None:
    host = FakeHost()
    gen = two_host_calls(None, ctx(host))
    run_to_wait(gen)
    with pytest.raises(RuntimeError):
        gen.throw(RuntimeError("boom"))
    assert memory._space_locks == {}


async def test_kernel_side_callers_are_not_serialised() -> None:
    c = SyscallContext(pid=1, args=(0,) * 6, mem=FlatMemory(4096))
    gen = two_host_calls(None, c)
    assert isinstance(gen.send(None), HostCall)
    assert memory._space_locks == {}
    gen.close()
