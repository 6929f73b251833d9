"""System assembly: boot (kernel, VFS 2, PM 3, MM 4, channels, init 1) and join
(a node kernel linked to a running boot).  Above the kernel, the interceptor and
the servers; only the CLIs import it."""
