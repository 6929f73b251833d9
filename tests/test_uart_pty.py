"""The UART on a real host pty: Console -> chip -> pty master -> slave, and back."""
from __future__ import annotations

import os
import select
import time
import tty
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import trio

from xinim_host.uart import regs as R
from xinim_host.uart.console import Console
from xinim_host.uart.pty_line import PtyLine
from xinim_host.uart.uart16550 import Uart16550


@asynccontextmanager
async def serial(**line_kw: int) -> AsyncIterator[tuple[Console, PtyLine]]:
    uart = Uart16550()
    with PtyLine(uart, **line_kw) as line:
        console = Console(uart)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(line.run)
            yield console, line
            nursery.cancel_scope.cancel()


@contextmanager
def open_slave(line: PtyLine) -> Iterator[int]:
    fd = os.open(line.slave_name, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)  # no line discipline in the way: bytes pass unchanged
        yield fd
    finally:
        os.close(fd)


def read_exactly(fd: int, n: int, idle_timeout: float = 5.0) -> bytes:
    """Blocking-style reader for a worker thread; gives up after idle_timeout."""
    buf = bytearray()
    while len(buf) < n:
        ready, _, _ = select.select([fd], [], [], idle_timeout)
        if not ready:
            break
        buf += os.read(fd, n - len(buf))
    return bytes(buf)


async def test_slave_name_is_a_pty() -> None:
    async with serial() as (_, line):
        assert line.slave_name.startswith("/dev/pts/")
        assert os.isatty(line.master_fd)


async def test_console_output_comes_out_of_the_slave() -> None:
    text = "XINIM boot: uart0 at 115200 baud \u2713\n".encode() * 3
    async with serial() as (console, line):
        with open_slave(line) as fd:
            assert console.write(text) == len(text)
            with trio.fail_after(10):
                got = await trio.to_thread.run_sync(read_exactly, fd, len(text))
    assert got == text


async def test_bytes_typed_on_the_slave_reach_read_some() -> None:
    async with serial() as (console, line):
        with open_slave(line) as fd:
            os.write(fd, b"ls -l\r")
            got = bytearray()
            with trio.fail_after(5):
                while len(got) < 6:
                    got += await console.read_some()
    assert bytes(got) == b"ls -l\r"  # below the trigger level: delivered by the timeout


async def test_read_some_waits_for_input() -> None:
    async with serial() as (console, line):
        with open_slave(line) as fd:
            async with trio.open_nursery() as nursery:
                result: list[bytes] = []

                async def reader() -> None:
                    result.append(await console.read_some())

                nursery.start_soon(reader)
                await trio.sleep(0.05)
                assert not result  # nothing typed yet: still waiting
                os.write(fd, b"\x03")
    assert result == [b"\x03"]


async def test_paste_larger_than_fifo_is_not_lost() -> None:
    data = bytes(range(256)) * 40  # 10 KiB arriving at once
    async with serial() as (console, line):
        with open_slave(line) as fd:
            os.write(fd, data)
            got = bytearray()
            with trio.fail_after(10):
                while len(got) < len(data):
                    got += await console.read_some()
    assert bytes(got) == data
    assert console.overruns == 0  # the line held bytes back instead of overrunning


async def test_megabyte_of_output() -> None:
    data = (bytes(range(32, 127)) + b"\n") * (1024 * 1024 // 96 + 1)
    async with serial() as (console, line):
        with open_slave(line) as fd:
            async with trio.open_nursery() as nursery:
                result: list[bytes] = []

                async def reader() -> None:
                    result.append(await trio.to_thread.run_sync(read_exactly, fd, len(data)))

                nursery.start_soon(reader)
                t0 = time.perf_counter()
                for off in range(0, len(data), 4096):  # as a program's write()s would
                    console.write(data[off:off + 4096])
                    await trio.sleep(0)
                elapsed = time.perf_counter() - t0
    assert result[0] == data
    assert elapsed < 10, f"console.write of 1 MiB took {elapsed:.1f}s"


async def test_unread_line_drops_oldest_output_without_blocking() -> None:
    async with serial(tx_buffer_limit=64 * 1024) as (console, line):
        for _ in range(64):
            console.write(b"z" * 16384)  # 1 MiB that nobody reads
            await trio.sleep(0)
        await trio.sleep(0.05)
        assert line.tx_dropped > 0
        assert line.tx_backlog <= 64 * 1024


async def test_line_asserts_modem_inputs() -> None:
    async with serial() as (console, _):
        msr = console.uart.read(R.MSR)
        assert msr & (R.MSR_CTS | R.MSR_DSR | R.MSR_DCD) == R.MSR_CTS | R.MSR_DSR | R.MSR_DCD
