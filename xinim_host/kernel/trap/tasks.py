"""The directory of host tasks the interceptor traces: host tid -> XINIM ids."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .flight import InFlight

EXITED_IDS_KEPT = 1024


@dataclass
class TaskEntry:
    """What the trap layer knows of one host task (thread)."""
    pid: int = 0                                      # XINIM pid, 0 until PM answered
    tid: int = 0                                      # XINIM tid (= pid for a main thread)
    waiting: list[Callable[[], None]] = field(default_factory=list)
    tgid: int = 0                                     # its host process
    flight: "InFlight | None" = None                  # the call it is parked in, if any
    ready: bool = False                               # named, and the servers told
    mem: Any = None                                   # its TraceeMemory, made once


class TaskDirectory:
    """Host tid -> :class:`TaskEntry`, plus the ids of recently exited tasks (a
    fork's child can live and die before its parent's fork returns)."""

    def __init__(self) -> None:
        self.tasks: dict[int, TaskEntry] = {}
        self._exited: dict[int, int] = {}      # host tid -> XINIM tid, recently gone
        self.died_unnamed: dict[int, int] = {}  # host tid -> wait status: died before PM named it

    def entry(self, host_tid: int) -> TaskEntry:
        entry = self.tasks.get(host_tid)
        if entry is None:
            entry = self.tasks[host_tid] = TaskEntry()
            self._exited.pop(host_tid, None)   # the host reused the tid: the old ids are not its
        return entry

    def gone(self, host_tid: int) -> TaskEntry | None:
        entry = self.tasks.pop(host_tid, None)
        if entry is not None and entry.pid:
            self.named_then_gone(host_tid, entry.tid)
        return entry

    def named_then_gone(self, host_tid: int, xinim_tid: int) -> None:
        self._exited[host_tid] = xinim_tid
        while len(self._exited) > EXITED_IDS_KEPT:
            del self._exited[next(iter(self._exited))]

    def has_pid(self, pid: int) -> bool:
        """Some live host task still belongs to XINIM process ``pid``."""
        return any(entry.pid == pid for entry in self.tasks.values())

    def pid_of_tid(self, xinim_tid: int) -> int:
        for entry in self.tasks.values():
            if entry.tid == xinim_tid:
                return entry.pid
        return xinim_tid

    def xinim_tid_of(self, host_tid: int) -> int:
        """The XINIM tid PM gave a host task we traced (0: not known)."""
        entry = self.tasks.get(host_tid)
        if entry is not None and entry.tid:
            return entry.tid
        return self._exited.get(host_tid, 0)

    def xinim_pid(self, host_tid: int) -> int:
        entry = self.tasks.get(host_tid)
        return entry.pid if entry else 0

    def has_process(self, host_tgid: int) -> bool:
        return host_tgid in self.tasks or any(e.tgid == host_tgid for e in self.tasks.values())
