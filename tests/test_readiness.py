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
