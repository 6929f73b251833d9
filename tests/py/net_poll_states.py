"""poll(2) of sockets in each state (tests/test_net.py: native vs xinim-run): the
readiness NET computes and pushes to the VFS proxies, as Linux unix_poll/tcp_poll."""
import select, socket
P = select.POLLIN | select.POLLOUT | select.POLLPRI | 0x2000
def rev(s):
    p = select.poll(); p.register(s, P); r = p.poll(0); return r[0][1] if r else 0
u = socket.socket(socket.AF_UNIX); print("unconnected stream", rev(u))
l = socket.socket(socket.AF_UNIX); l.bind("\0ps-l"); l.listen(1); print("listening", rev(l))
c = socket.socket(socket.AF_UNIX); c.connect("\0ps-l"); print("listener with one", rev(l))
a, _ = l.accept(); print("connected", rev(a), rev(c))
c.send(b"x"); print("data", rev(a))
c.shutdown(socket.SHUT_WR); print("peer shut wr", rev(a), rev(c))
a.recv(10); c.close(); print("peer closed", rev(a))
x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM); print("dgram pair", rev(x))
x.close(); print("dgram peer closed", rev(y))
s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET); s1.close(); print("seqpacket peer closed", rev(s2))
t = socket.socket(); print("tcp unconnected", rev(t))
tl = socket.socket(); tl.bind(("127.0.0.1", 0)); tl.listen(1); print("tcp listening", rev(tl))
tc = socket.create_connection(tl.getsockname()); ta, _ = tl.accept()

print("tcp connected", rev(ta), rev(tc))
tc.close(); print("tcp peer closed", rev(ta))
# fill a stream socket: POLLOUT goes
f1, f2 = socket.socketpair(); f1.setblocking(False)
try:
    while True: f1.send(b"z" * 65536)
except BlockingIOError: pass
print("full", rev(f1) & select.POLLOUT)
f2.recv(1 << 20); print("after a read", rev(f1) & select.POLLOUT)
