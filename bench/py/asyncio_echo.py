"""asyncio_echo N: N round trips of 64 bytes over a socketpair between two
asyncio streams (Python's reader takes a 256 KiB buffer per read: an mmap,
mremap and munmap per round trip).  Prints the loop's own time in ns."""
import asyncio
import socket
import sys
import time


async def main(n: int) -> None:
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)
    msg = b"x" * 64

    async def echo() -> None:
        for _ in range(n):
            wb.write(await rb.readexactly(len(msg)))
            await wb.drain()

    server = asyncio.create_task(echo())
    t0 = time.monotonic_ns()
    for _ in range(n):
        wa.write(msg)
        await wa.drain()
        await ra.readexactly(len(msg))
    t1 = time.monotonic_ns()
    await server
    print(t1 - t0, n)
    wa.close()
    wb.close()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
