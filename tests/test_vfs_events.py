"""epoll, eventfd, timerfd and inotify through the VFS's messages: what the C
differential test cannot see from outside (descriptions across fork, the last
close, a parked wait woken by another process, a cancelled wait, the ramfs's
own changes)."""
from __future__ import annotations

import errno
import os
import struct

import trio

from xinim_host.lib import protocol as p

from support.vfs import Vfs, timeboxed, vfs  # noqa: F401 -- fixture

EPOLLIN, EPOLLET = 0x1, 1 << 31
ADD, DEL = 1, 2
U64 = struct.Struct("<Q")
EVENT = struct.Struct("<IQ")


async def eventfd(vfs: Vfs, value: int = 0, pid: int = 1, flags: int = os.O_NONBLOCK) -> int:
    return (await vfs.ok(p.VfsEventfd(caller=pid, initval=value, flags=flags))).result


async def epoll(vfs: Vfs, pid: int = 1) -> int:
    return (await vfs.ok(p.VfsEpollCreate(caller=pid, flags=0))).result


async def wait(vfs: Vfs, ep: int, timeout_ns: int = 0, pid: int = 1) -> list[tuple[int, int]]:
    r = await vfs.ok(p.VfsEpollWait(caller=pid, epfd=ep, maxevents=16, timeout_ns=timeout_ns))
    return list(EVENT.iter_unpack(r.data))


@timeboxed()
async def test_interest_follows_the_description_across_fork_and_ends_at_its_last_close(
        vfs: Vfs) -> None:
    ep, efd = await epoll(vfs), await eventfd(vfs, 1)
    await vfs.ok(p.VfsEpollCtl(caller=1, epfd=ep, op=ADD, fd=efd, events=EPOLLIN, data=7))
    await vfs.ok(p.VfsFork(parent=1, child=50))
    assert await wait(vfs, ep, pid=50) == [(EPOLLIN, 7)]       # the child's copy of the set
    await vfs.close(efd)                                        # the child still holds it
    assert await wait(vfs, ep) == [(EPOLLIN, 7)]
    await vfs.close(efd, pid=50)                                # the last reference
    assert await wait(vfs, ep) == []
    srv_ep = vfs.srv.procs[1].fds[ep].io
    assert not srv_ep.items and not srv_ep.ready


@timeboxed()
async def test_a_parked_epoll_wait_is_woken_by_another_process_and_cancelled_by_a_signal(
        vfs: Vfs) -> None:
    ep, efd = await epoll(vfs), await eventfd(vfs)
    await vfs.ok(p.VfsEpollCtl(caller=1, epfd=ep, op=ADD, fd=efd, events=EPOLLIN | EPOLLET,
                               data=3))
    await vfs.ok(p.VfsFork(parent=1, child=51))
    got: list[object] = []

    async def waiter() -> None:
        got.append(await wait(vfs, ep, timeout_ns=-1))

    async with trio.open_nursery() as n:
        n.start_soon(waiter)
        await trio.sleep(0.01)
        assert not got                                          # parked
        await vfs.ok(p.VfsWrite(caller=51, fd=efd, data=U64.pack(2)))
    assert got == [[(EPOLLIN, 3)]]
    assert await wait(vfs, ep) == []                            # edge-triggered: reported once
    errs: list[int] = []

    async def interrupted() -> None:
        r = await vfs.call(p.VfsEpollWait(caller=1, epfd=ep, maxevents=4, timeout_ns=-1))
        errs.append(r.error)

    async with trio.open_nursery() as n:
        n.start_soon(interrupted)
        await trio.sleep(0.01)
        await vfs.ok(p.VfsCancel(pid=1, err=512))   # ERESTARTSYS
    assert errs == [errno.EINTR]                                # epoll_wait is never restarted
    assert not vfs.srv.blocked.get(1)


@timeboxed()
async def test_a_timerfd_expires_on_a_trio_deadline_and_counts_its_intervals(vfs: Vfs) -> None:
    t = (await vfs.ok(p.VfsTimerfdCreate(caller=1, clockid=1, flags=0))).result
    old = await vfs.ok(p.VfsTimerfdSettime(caller=1, fd=t, flags=0, value_ns=10**7,
                                           interval_ns=10**7))
    assert (old.value_ns, old.interval_ns) == (0, 0)
    first = U64.unpack((await vfs.ok(p.VfsRead(caller=1, fd=t, count=8))).data)[0]  # waits
    assert first >= 1
    await trio.sleep(0.05)
    later = U64.unpack((await vfs.ok(p.VfsRead(caller=1, fd=t, count=8))).data)[0]
    assert later >= 2                                           # the ticks while nobody read
    now = await vfs.ok(p.VfsTimerfdGettime(caller=1, fd=t))
    assert 0 < now.value_ns <= 10**7 and now.interval_ns == 10**7
    await vfs.close(t)                                          # its deadline task ends with it
    await trio.sleep(0.03)


@timeboxed()
async def test_inotify_hears_the_ramfs_whoever_changes_it(vfs: Vfs) -> None:
    fd = (await vfs.ok(p.VfsInotifyInit(caller=1, flags=os.O_NONBLOCK))).result
    await vfs.ok(p.VfsMkdir(caller=1, dirfd=-100, mode=0o755, path=b"/w"))
    wd = (await vfs.ok(p.VfsInotifyAdd(caller=1, fd=fd, mask=0x100 | 0x200, path=b"/w"))).result
    ramfs = vfs.srv.ramfs                                      # as the FUSE export changes it
    d = ramfs.lookup(ramfs.root, b"w")
    ramfs.mknod(d, b"direct", 0o100644, 0, 0)
    ramfs.unlink(d, b"direct")
    data = (await vfs.ok(p.VfsRead(caller=1, fd=fd, count=4096))).data
    events = []
    while data:
        w, mask, cookie, n = struct.unpack_from("<iIII", data)
        events.append((w, mask, data[16:16 + n].rstrip(b"\0")))
        data = data[16 + n:]
    assert events == [(wd, 0x100, b"direct"), (wd, 0x200, b"direct")]
    assert await vfs.err(p.VfsRead(caller=1, fd=fd, count=4096)) == "EAGAIN"
