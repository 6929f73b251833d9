"""What Linux's pseudo filesystems share (pipefs, sockfs, anon_inodefs): nodes
with no name, held only by open files, on a filesystem that cannot be mounted.

A subclass names its ``kind``, ``dev`` and ``magic`` (fstatfs's f_type) and
answers ``stat_reply`` and ``setattr`` for its nodes; ``mode`` and ``attr3`` read
a node's own ``mode``/``uid``/``gid`` unless the subclass says otherwise.
"""
from __future__ import annotations

from typing import Any, ClassVar

from .ramfs import StatFs


class PseudoFs:
    kind: ClassVar[str]
    dev: ClassVar[int]
    magic: ClassVar[int]
    readonly = False
    has_submounts = False
    covers = None

    @staticmethod
    def is_root(node: Any) -> bool:
        return False

    @staticmethod
    def host_path(node: Any) -> bytes:
        return b""

    @staticmethod
    def size(node: Any) -> int:
        return 0

    @staticmethod
    def mode(node: Any) -> int:
        return node.mode

    @staticmethod
    def attr3(node: Any) -> tuple[int, int, int]:
        return node.mode, node.uid, node.gid

    @staticmethod
    def hold(node: Any) -> None:
        pass

    @staticmethod
    def release(node: Any) -> None:
        pass

    def statfs(self) -> StatFs:
        return StatFs(f_bsize=4096, f_frsize=4096, f_blocks=0, f_bfree=0, f_bavail=0,
                      f_files=0, f_ffree=0, f_favail=0, f_flag=0, f_namemax=255,
                      f_type=self.magic)
