"""lib/procfs.read_proc: a /proc file whole, as open().read() gives it."""
from __future__ import annotations

import os

import pytest

from xinim_host.lib.procfs import read_proc


@pytest.mark.parametrize("name", ["maps", "stat", "status", "cmdline"])
def test_read_proc_is_the_whole_file(name: str) -> None:
    path = f"/proc/{os.getpid()}/{name}"
    with open(path, "rb") as f:
        want = f.read()
    got = read_proc(path)
    if name in ("maps", "cmdline"):
        assert got == want
    else:                         # times and counters move between the two reads
        assert got.split(b"\n")[0][:5] == want.split(b"\n")[0][:5] and got.count(b"\n") == \
            want.count(b"\n")


def test_read_proc_reads_past_one_chunk(tmp_path) -> None:
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 1024)          # 256 KiB: several reads
    assert read_proc(str(big)) == big.read_bytes()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_proc(str(empty)) == b""


def test_read_proc_raises_as_open_does() -> None:
    with pytest.raises(FileNotFoundError):
        read_proc("/proc/0/maps")
