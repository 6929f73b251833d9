"""Issue 13 acceptance, one Python program (tests/test_net.py runs it natively and
under xinim-run): an AF_UNIX server and a forked client passing an open file with
socket.send_fds; socket.socketpair(); http.server on 127.0.0.1 in a thread answering
urllib.request from the same program.  Every line it prints must be the same."""
import os, socket, threading, urllib.request, http.server
# 1. AF_UNIX stream server + forked client passing an open file with send_fds
path = "/tmp/acc.sock"
try: os.unlink(path)
except FileNotFoundError: pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(4)
print("mode", oct(os.stat(path).st_mode)[:4])
with open("/tmp/acc.txt", "w") as f:
    f.write("through the passed fd\n")
pid = os.fork()
if pid == 0:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    fd = os.open("/tmp/acc.txt", os.O_RDONLY)
    socket.send_fds(c, [b"file"], [fd])
    c.close()
    os._exit(0)
conn, addr = srv.accept()
msg, fds, flags, addr = socket.recv_fds(conn, 100, 4)
print(msg, len(fds))
print(os.read(fds[0], 100).decode().strip())
os.waitpid(pid, 0)
conn.close(); srv.close(); os.unlink(path)
print("exists", os.path.exists(path))
# 2. socketpair round trip
a, b = socket.socketpair()
a.sendall(b"ping"); print(b.recv(10)); b.sendall(b"pong"); print(a.recv(10))
# 3. http.server on 127.0.0.1 in a thread answers urllib
os.chdir("/tmp")
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
httpd = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
port = httpd.server_address[1]
t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/acc.txt", timeout=10).read()
print("http", body.decode().strip())
httpd.shutdown()
os.unlink("/tmp/acc.txt")
print("done")
