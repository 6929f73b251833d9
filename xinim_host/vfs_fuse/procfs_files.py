"""The texts of /proc, in the Linux kernel's formats (``fs/proc/array.c``,
``meminfo.c``, ``stat.c``...), so procps, Python's ``os`` and friends parse them.

Everything here is a pure function of what :mod:`.procfs` gathered: PM's record
of a process (``ProcInfoReply``), MM's map of it (``MmMapsReply`` + the maps
text), VFS's own fd table and mounts.  Host facts appear only where XINIM has
none of its own: CPU times, the load average's three figures, memory totals and
/proc/cpuinfo are the machine's, since XINIM's processes run on its CPUs.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

HZ = 100                               # USER_HZ: clock ticks in stat/uptime
PAGE_KB = 4
RLIM_INFINITY = (1 << 64) - 1
SIGCHLD = 17
STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)",
               "T": "T (stopped)", "t": "t (tracing stop)", "Z": "Z (zombie)",
               "X": "X (dead)", "I": "I (idle)"}
CAP_ALL = 0x000001FFFFFFFFFF


@dataclass
class ProcFacts:
    """One process as /proc/PID shows it, gathered from PM, MM and VFS."""

    pid: int
    ppid: int = 0
    pgid: int = 0
    sid: int = 0
    state: str = "R"
    ruid: int = 0
    euid: int = 0
    suid: int = 0
    rgid: int = 0
    egid: int = 0
    sgid: int = 0
    threads: int = 1
    sigpnd: int = 0
    shdpnd: int = 0
    blocked: int = 0
    ignored: int = 0
    caught: int = 0
    start_ns: int = 0
    comm: bytes = b""
    cmdline: bytes = b""               # NUL-separated, final NUL
    tty_nr: int = 0                    # the kernel's encoding (see ``tty_nr``)
    tpgid: int = -1
    umask: int = 0o022
    groups: tuple[int, ...] = ()
    fdsize: int = 64
    # from MM (None: MM did not tell)
    maps: str | None = None
    used: int = 0                      # frames
    shared: int = 0
    mapped_pages: int = 0
    kernel_thread: bool = False        # the servers and init: no address space of their own


def tty_nr(rdev: int) -> int:
    """A device number as /proc/PID/stat's tty_nr encodes it (``new_encode_dev``)."""
    major, minor = os.major(rdev), os.minor(rdev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def _kb(pages: int) -> str:
    return f"{pages * PAGE_KB:8d} kB"


def start_ticks(f: ProcFacts, boot_ns: int) -> int:
    return max(0, (f.start_ns - boot_ns) * HZ // 1_000_000_000)


def _map_sizes(maps: str, exe: bytes) -> dict[str, int]:
    """VmData/VmStk/VmExe/VmLib (kB) from the maps text."""
    out = {"data": 0, "stk": 0, "exe": 0, "lib": 0, "file": 0}
    exe_s = os.fsdecode(exe) if exe else None
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        kb = (hi - lo) // 1024
        perms = parts[1]
        name = parts[5] if len(parts) > 5 else ""
        if name == "[stack]":
            out["stk"] += kb
        elif "x" in perms and name and not name.startswith("["):
            out["exe" if name == exe_s else "lib"] += kb
        elif "w" in perms and "p" in perms and (not name or name == "[heap]"):
            out["data"] += kb
        if name.startswith("/"):
            out["file"] += kb
    return out


def stat_text(f: ProcFacts, boot_ns: int) -> bytes:
    zombie = f.state == "Z"
    vsize = 0 if zombie else f.mapped_pages * 4096
    rss = 0 if zombie else f.used
    fields = [
        f.ppid, f.pgid, f.sid, f.tty_nr, f.tpgid,
        0x400100 if not f.kernel_thread else 0x208040,   # flags (PF_*)
        0, 0, 0, 0,                                     # minflt cminflt majflt cmajflt
        0, 0, 0, 0,                                     # utime stime cutime cstime
        20, 0, f.threads, 0, start_ticks(f, boot_ns), vsize, rss, RLIM_INFINITY,
        0, 0, 0, 0, 0,                                  # startcode endcode startstack esp eip
        f.sigpnd | f.shdpnd, f.blocked, f.ignored, f.caught,
        0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0,             # wchan .. cguest_time
        0, 0, 0, 0, 0, 0, 0, 0]                         # start_data .. exit_code
    comm = f.comm.replace(b"\n", b"?")
    return (b"%d (%s) %s " % (f.pid, comm, f.state.encode())
            + " ".join(str(x) for x in fields).encode() + b"\n")


def statm_text(f: ProcFacts) -> bytes:
    if f.state == "Z" or f.maps is None:
        return b"0 0 0 0 0 0 0\n"
    sizes = _map_sizes(f.maps, b"")
    text = sizes["exe"] // PAGE_KB
    data = (sizes["data"] + sizes["stk"]) // PAGE_KB
    return b"%d %d %d %d 0 %d 0\n" % (f.mapped_pages, f.used, f.shared, text, data)


def status_text(f: ProcFacts, exe: bytes, ncpu: int) -> bytes:
    caps = CAP_ALL if f.euid == 0 else 0
    groups = "".join(f"{g} " for g in f.groups)
    lines = [
        f"Name:\t{f.comm.decode(errors='replace')}",
        f"Umask:\t{f.umask:04o}",
        f"State:\t{STATE_NAMES.get(f.state, f.state)}",
        f"Tgid:\t{f.pid}", "Ngid:\t0", f"Pid:\t{f.pid}", f"PPid:\t{f.ppid}", "TracerPid:\t0",
        f"Uid:\t{f.ruid}\t{f.euid}\t{f.suid}\t{f.euid}",
        f"Gid:\t{f.rgid}\t{f.egid}\t{f.sgid}\t{f.egid}",
        f"FDSize:\t{f.fdsize}", f"Groups:\t{groups}",
        f"NStgid:\t{f.pid}", f"NSpid:\t{f.pid}", f"NSpgid:\t{f.pgid}", f"NSsid:\t{f.sid}",
        f"Kthread:\t{1 if f.kernel_thread else 0}",
    ]
    if f.state != "Z" and f.maps is not None and not f.kernel_thread:
        sizes = _map_sizes(f.maps, exe)
        lines += [
            f"VmPeak:\t{_kb(f.mapped_pages)}", f"VmSize:\t{_kb(f.mapped_pages)}",
            f"VmLck:\t{_kb(0)}", f"VmPin:\t{_kb(0)}",
            f"VmHWM:\t{_kb(f.used)}", f"VmRSS:\t{_kb(f.used)}",
            f"RssAnon:\t{_kb(f.used)}", f"RssFile:\t{_kb(0)}", f"RssShmem:\t{_kb(0)}",
            f"VmData:\t{sizes['data']:8d} kB", f"VmStk:\t{sizes['stk']:8d} kB",
            f"VmExe:\t{sizes['exe']:8d} kB", f"VmLib:\t{sizes['lib']:8d} kB",
            f"VmPTE:\t{_kb(0)}", f"VmSwap:\t{_kb(0)}",
        ]
    lines += [
        f"Threads:\t{f.threads}", "SigQ:\t0/31805",
        f"SigPnd:\t{f.sigpnd:016x}", f"ShdPnd:\t{f.shdpnd:016x}",
        f"SigBlk:\t{f.blocked:016x}", f"SigIgn:\t{f.ignored:016x}",
        f"SigCgt:\t{f.caught:016x}",
        "CapInh:\t0000000000000000", f"CapPrm:\t{caps:016x}", f"CapEff:\t{caps:016x}",
        f"CapBnd:\t{CAP_ALL:016x}", "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t0", "Seccomp:\t0", "Seccomp_filters:\t0",
        f"Cpus_allowed:\t{(1 << ncpu) - 1:x}",
        f"Cpus_allowed_list:\t{'0' if ncpu == 1 else f'0-{ncpu - 1}'}",
        "Mems_allowed:\t1", "Mems_allowed_list:\t0",
        "voluntary_ctxt_switches:\t0", "nonvoluntary_ctxt_switches:\t0",
    ]
    return ("\n".join(lines) + "\n").encode()


# --- system-wide files ---------------------------------------------------------------

def _host_text(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def ncpus() -> int:
    return os.cpu_count() or 1


def uptime_text(boot_ns: int) -> bytes:
    up = max(0.0, (time.time_ns() - boot_ns) / 1e9)
    idle = 0.0
    host = _host_text("/proc/uptime").split()
    try:                                  # the host's idle share, applied to our uptime
        idle = up * float(host[1]) / float(host[0])
    except (IndexError, ValueError, ZeroDivisionError):
        pass
    return b"%.2f %.2f\n" % (up, idle)


def loadavg_text(running: int, total: int, last_pid: int) -> bytes:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        one = five = fifteen = 0.0
    return b"%.2f %.2f %.2f %d/%d %d\n" % (one, five, fifteen, running, total, last_pid)


def meminfo_text() -> bytes:
    """The machine's memory: XINIM's processes live in it.  (MM's frame pool has
    no query message yet.)"""
    text = _host_text("/proc/meminfo")
    if text:
        return text
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1024
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1024
    return (f"MemTotal:       {total:8d} kB\nMemFree:        {free:8d} kB\n"
            f"MemAvailable:   {free:8d} kB\nBuffers:               0 kB\n"
            f"Cached:                0 kB\nSwapTotal:             0 kB\n"
            f"SwapFree:              0 kB\n").encode()


def cpuinfo_text() -> bytes:
    text = _host_text("/proc/cpuinfo")
    if text:
        return text
    return b"".join(b"processor\t: %d\n\n" % i for i in range(ncpus()))


def stat_sys_text(boot_ns: int, forks: int, running: int, blocked: int) -> bytes:
    """/proc/stat: the host CPUs' times, XINIM's boot time and process counts."""
    cpu_lines = [line for line in _host_text("/proc/stat").splitlines()
                 if line.startswith(b"cpu")]
    if not cpu_lines:
        cpu_lines = [b"cpu  0 0 0 0 0 0 0 0 0 0"] + [
            b"cpu%d 0 0 0 0 0 0 0 0 0 0" % i for i in range(ncpus())]
    out = cpu_lines + [
        b"intr 0", b"ctxt 0", b"btime %d" % (boot_ns // 1_000_000_000),
        b"processes %d" % forks, b"procs_running %d" % running,
        b"procs_blocked %d" % blocked, b"softirq 0 0 0 0 0 0 0 0 0 0 0"]
    return b"\n".join(out) + b"\n"


def version_text() -> bytes:
    u = os.uname()
    return (f"XINIM version {u.release} (xinim@xinim) #1 XINIM hosted on Linux "
            f"{u.version}\n").encode()


def _escape(path: bytes) -> bytes:
    """Octal escapes of /proc/mounts (space, tab, newline, backslash)."""
    return (path.replace(b"\\", b"\\134").replace(b" ", b"\\040")
            .replace(b"\t", b"\\011").replace(b"\n", b"\\012"))


def mounts_text(rows: list[tuple[bytes, bytes, bytes, bytes]]) -> bytes:
    """``rows``: (source, mount point, type, options)."""
    return b"".join(b"%s %s %s %s 0 0\n" % (_escape(src), _escape(where), kind, opts)
                    for src, where, kind, opts in rows)


FILESYSTEMS = (b"nodev\tramfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevtmpfs\nnodev\tdevpts\n"
               b"nodev\tmqueue\nnodev\tpipefs\n\thostfs\n")


# --- /proc/sys: the sysctls programs and LTP read ------------------------------------

def _host_sysctl(path: str, default: bytes) -> Callable[[], bytes]:
    """A value XINIM takes over from the host kernel it runs on (page sizes, ASLR)."""
    def read() -> bytes:
        return _host_text("/proc/sys/" + path) or default
    return read


def _const(value: Any) -> Callable[[], bytes]:
    text = (value if isinstance(value, bytes) else str(value).encode()) + b"\n"
    return lambda: text


def sysctl_table(srv: Any) -> dict[bytes, Callable[[], bytes]]:
    """path below /proc/sys -> its text.  XINIM's own limits where XINIM has them
    (pipes, fds, pids, leases), the values Linux has where XINIM has nothing of its
    own yet, the host's for the machine itself.  The files root may write
    (pipe-max-size, domainname, the SysV limits) are sysctl.py's."""
    from ..lib.limits import pid_max_from_env
    from .fdtable import NR_OPEN

    def file_nr() -> bytes:
        open_files = len({id(of) for fp in srv.procs.values() for of in fp.fds if of is not None})
        return b"%d\t0\t%d\n" % (open_files, FILE_MAX)

    u = os.uname()
    return {
        b"fs/pipe-user-pages-hard": _const(0),
        b"fs/pipe-user-pages-soft": _const(16384),
        b"fs/file-max": _const(FILE_MAX),
        b"fs/file-nr": file_nr,
        b"fs/nr_open": _const(NR_OPEN),
        b"fs/lease-break-time": lambda: b"%d\n" % int(srv.lease_break_time),
        b"fs/leases-enable": _const(1),
        b"fs/protected_hardlinks": _const(1),
        b"fs/protected_symlinks": _const(1),
        b"fs/protected_fifos": _const(0),
        b"fs/protected_regular": _const(0),
        b"fs/suid_dumpable": _const(0),
        b"kernel/pid_max": lambda: b"%d\n" % pid_max_from_env(),
        b"kernel/ostype": _const(b"Linux"),
        b"kernel/osrelease": _const(u.release.encode()),
        b"kernel/version": _const(b"#1 XINIM hosted on Linux " + u.version.encode()),
        b"kernel/hostname": lambda: os.uname().nodename.encode() + b"\n",
        b"kernel/msgmnb": _const(16384),
        b"kernel/sem": _const(b"32000\t1024000000\t500\t32000"),
        # POSIX message queues (vfs_fuse/mqueue.py's limits)
        b"fs/mqueue/queues_max": _const(256),
        b"fs/mqueue/msg_max": _const(10),
        b"fs/mqueue/msgsize_max": _const(8192),
        b"fs/mqueue/msg_default": _const(10),
        b"fs/mqueue/msgsize_default": _const(8192),
        b"kernel/ngroups_max": _const(65536),
        b"kernel/overflowuid": _const(65534),
        b"kernel/overflowgid": _const(65534),
        b"kernel/tainted": _const(0),
        b"kernel/core_pattern": _const(b"core"),
        b"kernel/threads-max": _host_sysctl("kernel/threads-max", b"63448\n"),
        b"kernel/cap_last_cap": _host_sysctl("kernel/cap_last_cap", b"40\n"),
        b"kernel/randomize_va_space": _host_sysctl("kernel/randomize_va_space", b"2\n"),
        b"kernel/perf_event_paranoid": _host_sysctl("kernel/perf_event_paranoid", b"2\n"),
        b"vm/overcommit_memory": _host_sysctl("vm/overcommit_memory", b"0\n"),
        b"vm/max_map_count": _const(65530),
        b"vm/mmap_min_addr": _host_sysctl("vm/mmap_min_addr", b"65536\n"),
    }


FILE_MAX = (1 << 63) - 1          # /proc/sys/fs/file-max: no system-wide cap here
