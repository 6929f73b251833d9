"""A cheaper request loop for pyfuse3: what it sees as ``trio``.

pyfuse3 looks up its event loop library through the module global
``pyfuse3.trio`` (``pyfuse3.asyncio.enable`` replaces it the same way).  Per
request its loop takes a ``trio.Lock`` -- whose ``acquire`` always yields to
the scheduler, one full run-loop turn with an ``epoll_wait`` -- and then
``trio.lowlevel.wait_readable`` on /dev/fuse, which parks the task until
epoll reports the next request.  A host program issuing requests one after
another (create, stat, unlink; sequential 1 MiB I/O) sends its next request
a few microseconds after our reply: by then trio has gone to sleep in
``epoll_wait`` and the wakeup costs more than the request.  Measured on 2
shared VM cores: ~280 µs per create+stat+unlink round (7 requests) with
pyfuse3's loop, ~130 µs with this one.

:class:`_FuseTrio` is trio with two things changed:

* ``Lock`` is a flag, taken without a scheduler turn or trio.Lock's
  bookkeeping when it is free (it always is: :func:`~.fuse_export.serve_fuse`
  runs one worker task);
* ``lowlevel.wait_readable`` first polls the fd for up to ``SPIN_S`` (an
  adaptive spin, as a kernel mutex spins before it sleeps) and returns at
  once if a request is there -- but yields for real at least every
  ``SLICE_S`` (give or take ``CLOCK_EVERY`` requests: the clock is not read
  per request), so the other trio tasks of the process (the VFS server, the
  invalidator) and cancellation are never held up longer than that; and
  when spins keep finding nothing (a client that computes or copies for
  longer between requests) it mostly stops spinning.

Handlers never wait (see fuse_export), so nothing else changes.  Nothing here
affects what a request does or answers: only when the loop sleeps.
"""
from __future__ import annotations

import logging
import select
import time
from types import SimpleNamespace
from typing import Any

import pyfuse3
import trio

log = logging.getLogger(__name__)

#: How long the loop polls /dev/fuse for the next request before it sleeps.
SPIN_S = 30e-6
#: The loop yields to the trio scheduler at least this often while busy.
SLICE_S = 0.5e-3
#: After this many spins in a row found nothing, spin only every
#: PROBE_EVERY-th wait (a client that is slow between requests costs no CPU).
MISSES_BEFORE_PAUSE = 4
PROBE_EVERY = 8
#: Requests found at once between two looks at the clock (for SLICE_S).
CLOCK_EVERY = 8


class _Done:
    """An awaitable that is already complete: ``await`` on it does not go
    through the scheduler and makes no coroutine object."""

    __slots__ = ()

    def __await__(self) -> Any:
        return _EXHAUSTED


_EXHAUSTED = iter(())     # stays exhausted: one iterator serves every await
_DONE = _Done()


class _Lock:
    """pyfuse3's read lock without trio.Lock: serve_fuse runs one worker task,
    so the lock is never contended and a flag is all it takes (trio.Lock's
    acquire_nowait/release cost ~2 µs a request in parking-lot bookkeeping).
    Should a second task ever come, it waits by yielding until the flag is
    clear: correct (trio switches tasks only at awaits), just not fair."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def __aenter__(self) -> Any:
        if not self._held:
            self._held = True
            return _DONE
        return self._contended()

    async def _contended(self) -> None:
        while self._held:
            await trio.sleep(0)
        self._held = True

    def __aexit__(self, *exc: object) -> Any:
        self._held = False
        return _DONE


class _Waiter:
    """``wait_readable`` for the /dev/fuse fd: spin briefly, then sleep."""

    def __init__(self, spin_s: float, slice_s: float) -> None:
        self.spin_s = spin_s
        self.slice_s = slice_s
        self._poll = select.poll()
        self._fd = -1
        self._yielded = 0.0      # when the loop last went through the scheduler
        self.fast = 0            # requests found without a scheduler turn (stats)
        self.slow = 0
        self._misses = 0         # spins in a row that found nothing
        self._paused = 0
        self._since = CLOCK_EVERY  # requests since the clock was read (first: read it)

    def wait_readable(self, fd: Any) -> Any:
        if self.spin_s <= 0:
            return self._sleep(fd)
        if self._misses >= MISSES_BEFORE_PAUSE:
            # The client takes longer than a spin between requests (1 MiB
            # writes): spin only now and then, to notice when that changes.
            self._paused += 1
            if self._paused % PROBE_EVERY:
                return self._sleep(fd)
        # The clock is read only every CLOCK_EVERY-th request found at once
        # (a request costs several µs, so the slice is overrun by little).
        self._since += 1
        if self._since >= CLOCK_EVERY:
            self._since = 0
            if time.perf_counter() - self._yielded >= self.slice_s:
                return self._sleep(fd)
        if fd != self._fd:
            if self._fd >= 0:
                self._poll.unregister(self._fd)
            self._poll.register(fd, select.POLLIN)
            self._fd = fd
        poll = self._poll.poll
        ready = poll(0)
        if not ready:                  # not there yet: spin up to spin_s
            limit = time.perf_counter() + self.spin_s
            while not ready:
                if time.perf_counter() > limit:
                    self._misses += 1
                    return self._sleep(fd)
                ready = poll(0)
        if ready[0][1] == select.POLLIN:
            self.fast += 1
            self._misses = 0
            return _DONE
        return self._sleep(fd)         # error/hangup: let trio's wait report it

    async def _sleep(self, fd: Any) -> None:
        self.slow += 1
        await trio.lowlevel.wait_readable(fd)
        self._yielded = time.perf_counter()
        self._since = 0


class _FuseTrio(SimpleNamespace):
    """trio, as pyfuse3 sees it (every other name is trio's own)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(trio, name)


_installed: _Waiter | None = None


def install(spin_s: float = SPIN_S, slice_s: float = SLICE_S) -> _Waiter:
    """Make pyfuse3's loop use :class:`_FuseTrio`; returns the waiter (its
    ``fast``/``slow`` counts say how often the spin found a request)."""
    global _installed
    waiter = _Waiter(spin_s, slice_s)

    class _Lowlevel(SimpleNamespace):
        def __getattr__(self, name: str) -> Any:
            return getattr(trio.lowlevel, name)

    lowlevel = _Lowlevel(wait_readable=waiter.wait_readable)
    pyfuse3.trio = _FuseTrio(Lock=_Lock, lowlevel=lowlevel)  # type: ignore[attr-defined]
    _installed = waiter
    return waiter


def uninstall() -> None:
    """Back to pyfuse3's own loop (plain trio)."""
    global _installed
    pyfuse3.trio = trio  # type: ignore[attr-defined]
    if _installed is not None:
        log.debug("FUSE requests found by polling: %d, after sleeping: %d",
                  _installed.fast, _installed.slow)
    _installed = None


def installed() -> _Waiter | None:
    return _installed


