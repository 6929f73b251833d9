"""IPv6 TCP with IPV6_V6ONLY, SO_REUSEADDR, TCP_NODELAY, SO_KEEPALIVE; FIONREAD on a TCP
and an AF_UNIX socket; /proc/net/tcp6 and udp6 (tests/test_net.py: native vs xinim-run)."""
import socket, fcntl, termios, array
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::1", 0)); s.listen(1)
port = s.getsockname()[1]
c = socket.create_connection(("::1", port))
a, addr = s.accept()
print(addr[0], s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
print(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
c.sendall(b"v6 data")
import select; select.select([a], [], [], 5)
buf = array.array("i", [0]); fcntl.ioctl(a.fileno(), termios.FIONREAD, buf); print("fionread", buf[0])
print(a.recv(100))
x, y = socket.socketpair(); x.send(b"12345")
buf = array.array("i", [0]); fcntl.ioctl(y.fileno(), termios.FIONREAD, buf); print("fionread unix", buf[0])
y.recv(2)
buf = array.array("i", [0]); fcntl.ioctl(y.fileno(), termios.FIONREAD, buf); print("fionread after a read", buf[0])
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 0))
print(open("/proc/net/tcp6").read().count("\n") >= 3, open("/proc/net/udp6").read().count("\n"))
