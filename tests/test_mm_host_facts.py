"""What the kernel looks at on the host before a one-stop memory call
(kernel/calls/memory.py), and when: a held map fd is checked against
/proc/TGID/fd once per image (every time when another process shares the fd
table); a freshly exec'd image's first VMA count reads nothing of /proc."""
from __future__ import annotations

import os
import resource
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from xinim_host.kernel.calls import memory

KEY = (1, 2)


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    seen: list[Any] = []

    def still_open(tgid: int, fd: int, dev: int, ino: int) -> bool:
        seen.append(("fd", tgid, fd))
        return (dev, ino) == KEY

    def count(tgid: int) -> int:
        seen.append(("count", tgid))
        return 10

    def locking(tgid: int) -> bool:
        seen.append(("locking", tgid))
        return False

    monkeypatch.setattr(memory, "_still_open", still_open)
    monkeypatch.setattr(memory, "_count_vmas", count)
    monkeypatch.setattr(memory, "_locking", locking)
    saved = (dict(memory._open_maps), dict(memory._checked_fds), dict(memory._vma_room),
             set(memory._fresh_image), set(memory._shared_files))
    yield seen
    for table, old in zip((memory._open_maps, memory._checked_fds, memory._vma_room,
                           memory._fresh_image, memory._shared_files), saved):
        table.clear()
        table.update(old)


def _hold(tgid: int, fd: int) -> None:
    memory._open_maps[tgid] = {KEY: fd}
    memory._checked_fds.pop(tgid, None)


def test_a_held_fd_is_checked_once_per_image(looks: list[Any]) -> None:
    tgid = 999_001
    _hold(tgid, 7)
    assert [memory._held_fd(tgid, KEY) for _ in range(4)] == [7] * 4
    assert looks == [("fd", tgid, 7)]
    memory.image_loaded(tgid)                 # exec: the fd is looked at again
    assert memory._held_fd(tgid, KEY) == 7
    assert looks == [("fd", tgid, 7)] * 2
    memory.process_gone(tgid)


def test_a_held_fd_that_is_not_the_file_any_more_is_dropped(looks: list[Any]) -> None:
    tgid = 999_002
    memory._open_maps[tgid] = {(5, 6): 4}
    assert memory._held_fd(tgid, (5, 6)) == -1
    assert (5, 6) not in memory._open_maps[tgid]
    memory.process_gone(tgid)


def test_a_shared_fd_table_is_checked_every_time(looks: list[Any]) -> None:
    tgid = 999_003
    _hold(tgid, 9)
    memory.files_shared(tgid)
    assert [memory._held_fd(tgid, KEY) for _ in range(3)] == [9] * 3
    assert looks == [("fd", tgid, 9)] * 3
    memory.process_gone(tgid)                 # a new process under the tgid: cached again
    _hold(tgid, 9)
    assert [memory._held_fd(tgid, KEY) for _ in range(2)] == [9] * 2
    assert looks == [("fd", tgid, 9)] * 4
    memory.process_gone(tgid)


def _ctx(tgid: int) -> Any:
    return SimpleNamespace(host=SimpleNamespace(host_pid=tgid, sole_thread=lambda: True))


def test_a_fresh_image_is_counted_without_reading_proc(looks: list[Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tgid = os.getpid()        # prlimit of a real process: ours (AS and DATA unlimited here)
    monkeypatch.setitem(memory._host_vm, "max_map_count", 65530)    # Linux's default
    if (resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
            or resource.getrlimit(resource.RLIMIT_DATA)[0] != resource.RLIM_INFINITY):
        pytest.skip("needs RLIMIT_AS and RLIMIT_DATA unlimited")
    memory.image_loaded(tgid)
    assert memory._host_sure(_ctx(tgid), 4096, False)
    assert looks == []                        # no count, no look at locked memory
    assert memory._vma_room[tgid] == memory.TAIL_BATCH - 1
    memory.forget_layout(tgid)                # not an exec (a fork child, a limit): counted
    assert memory._host_sure(_ctx(tgid), 4096, False)
    assert looks == [("locking", tgid), ("count", tgid)]
    memory.forget_layout(tgid)


def test_the_exec_bound_leaves_room_under_the_default_map_count() -> None:
    # vm.max_map_count's default (65530) less the bound and the margin still
    # gives a whole batch of one-stop calls
    assert (65530 - memory.EXEC_VMAS_MAX - memory.MAP_COUNT_MARGIN) // 2 >= memory.TAIL_BATCH


def test_a_fresh_image_under_a_small_map_count_is_counted(looks: list[Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tgid = os.getpid()
    if (resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
            or resource.getrlimit(resource.RLIMIT_DATA)[0] != resource.RLIM_INFINITY):
        pytest.skip("needs RLIMIT_AS and RLIMIT_DATA unlimited")
    monkeypatch.setitem(memory._host_vm, "max_map_count", memory.EXEC_VMAS_MAX)
    memory.image_loaded(tgid)
    assert memory._host_sure(_ctx(tgid), 4096, False)   # 10 VMAs counted: room enough
    assert looks == [("locking", tgid), ("count", tgid)]
    memory.forget_layout(tgid)
