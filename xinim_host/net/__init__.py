"""The NET server (XINIM pid ``NET_PID``): every socket, MINIX 3's INET/LWIP role.

AF_UNIX sockets live here (``unix.py``); AF_INET/AF_INET6 ones are a real host
socket each (``inet.py``, gVisor's hostinet).  The VFS holds a proxy per socket
in the owner's fd table and is told each socket's readiness (docs/net.md).
"""
