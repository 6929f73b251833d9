"""The socket workload bench/net.py times in each mode (native, PRoot, xinim-run).

Prints ``name value unit`` lines; every figure is timed inside the mode, so the
runner's start-up is not in it.  Usage: python3 net_work.py TMPDIR [--quick]
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

QUICK = "--quick" in sys.argv
TMP = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
SMALL = 64
BIG = 1 << 20


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return bytes(buf)


def unix_round_trips(n: int) -> float:
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        for _ in range(n):
            b.sendall(recv_exact(b, SMALL))
        os._exit(0)
    b.close()
    msg = b"x" * SMALL
    t = time.perf_counter()
    for _ in range(n):
        a.sendall(msg)
        recv_exact(a, SMALL)
    dt = time.perf_counter() - t
    os.waitpid(pid, 0)
    return n / dt


def stream_mbps(a: socket.socket, b: socket.socket, count: int) -> float:
    pid = os.fork()
    if pid == 0:
        a.close()
        left = count * BIG
        while left:
            got = b.recv(min(left, BIG))
            if not got:
                break
            left -= len(got)
        b.sendall(b"k")
        os._exit(0)
    b.close()
    msg = b"y" * BIG
    t = time.perf_counter()
    for _ in range(count):
        a.sendall(msg)
    recv_exact(a, 1)
    dt = time.perf_counter() - t
    os.waitpid(pid, 0)
    a.close()
    return count * BIG / dt / 1e6


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    srv.close()
    return a, b


def tcp_connects(n: int) -> float:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    addr = srv.getsockname()
    pid = os.fork()
    if pid == 0:
        for _ in range(n):
            c, _ = srv.accept()
            c.close()
        os._exit(0)
    t = time.perf_counter()
    for _ in range(n):        # lockstep: the server's close (EOF here) ends each round,
        c = socket.create_connection(addr)    # so the accept queue never overflows
        c.recv(1)
        c.close()
    dt = time.perf_counter() - t
    os.waitpid(pid, 0)
    srv.close()
    return n / dt


def http_curl(size: int) -> float:
    d = os.path.join(TMP, "netbench-http")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "big"), "wb") as f:
        f.write(os.urandom(1 << 16) * (size >> 16))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", d],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        t = time.perf_counter()
        subprocess.run(["curl", "-s", "-o", os.path.join(d, "got"),
                        f"http://127.0.0.1:{port}/big"], check=True)
        dt = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait()
    if os.path.getsize(os.path.join(d, "got")) != size:
        raise SystemExit("curl got a short file")
    return dt


def main() -> None:
    print("unix_rtt", round(unix_round_trips(500 if QUICK else 3000)), "round trips/s")
    a, b = socket.socketpair()
    print("unix_mbps", round(stream_mbps(a, b, 16 if QUICK else 64), 1), "MB/s")
    a, b = tcp_pair()
    print("tcp_mbps", round(stream_mbps(a, b, 16 if QUICK else 64), 1), "MB/s")
    print("tcp_connects", round(tcp_connects(100 if QUICK else 500)), "connect+accept+close/s")
    print("http_curl", round(http_curl(10 << 20), 3), "s for 10 MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
