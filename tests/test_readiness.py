"""The shared readiness primitive: wakes reach every subscriber, none is lost."""
import trio

from xinim_host.lib.readiness import POLLIN, WaitQueue, wait_ready


def test_wake_reaches_each_subscriber_and_survives_a_broken_one():
    q = WaitQueue()
    seen: list[int] = []

    def broken(mask: int) -> None:
        raise RuntimeError("bad waiter")

    q.subscribe(broken)
    q.subscribe(seen.append)
    q.wake(POLLIN)
    q.unsubscribe(broken)
    q.wake(0x4)
    assert seen == [POLLIN, 0x4]
    assert len(q) == 1


def test_wait_ready_parks_until_the_state_changes_and_times_out_otherwise():
    async def main() -> None:
        q = WaitQueue()
        state = {"ready": False}

        async def later() -> None:
            await trio.sleep(0.01)
            state["ready"] = True
            q.wake(POLLIN)

        async with trio.open_nursery() as n:
            n.start_soon(later)
            assert await wait_ready([q], lambda: state["ready"])
        assert not q                       # unsubscribed afterwards
        assert not await wait_ready([q], lambda: False, trio.current_time() + 0.01)

    trio.run(main)


def test_host_fd_queue_watches_only_while_someone_waits_and_after_a_not_ready_poll():
    import os
    import select

    from xinim_host.lib.readiness import host_fd_queue

    async def main() -> None:
        r, w = os.pipe()
        q = host_fd_queue(r)

        def ready() -> bool:
            ok = bool(select.select([r], [], [], 0)[0])
            if not ok:
                q.arm(POLLIN)
            return ok

        q.arm(POLLIN)                       # nobody waits: nothing is started
        assert not q._scopes
        async with trio.open_nursery() as n:
            async def later() -> None:
                await trio.sleep(0.01)
                assert q._scopes            # the one watcher is there while we wait
                os.write(w, b"x")
            n.start_soon(later)
            assert await wait_ready([q], ready)
        assert not q and not q._scopes
        # a timed-out wait takes its watcher with it
        os.read(r, 1)
        assert not await wait_ready([q], ready, trio.current_time() + 0.01)
        assert not q._scopes
        # two waiters share one watcher; both wake
        woke: list[int] = []

        async def waiter(i: int) -> None:
            await wait_ready([q], ready)
            woke.append(i)
        async with trio.open_nursery() as n:
            n.start_soon(waiter, 1)
            n.start_soon(waiter, 2)
            await trio.sleep(0.01)
            assert len(q._scopes) == 1
            os.write(w, b"y")
        assert sorted(woke) == [1, 2]
        os.close(r)
        os.close(w)

    trio.run(main)
