"""Where the FUSE export is mounted, and cleaning up after a previous run.

A FUSE server that dies (``kill -9``, a crash) leaves its mount behind: every
access to the directory then fails with ENOTCONN ("Transport endpoint is not
connected") until somebody unmounts it.  :func:`prepare_mountpoint` finds such a
dead mount at the place we are about to use, detaches it lazily, creates the
directory if needed and refuses a non-empty plain directory (mounting over it
would hide its contents).

Everything here is plain blocking code: call it *before* the FUSE session of
this process starts serving (it never touches a mount served by this process).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MNT_DETACH = 2
#: How long we give ``stat`` on an existing FUSE mount to answer before we call
#: its server hung (a live server answers in microseconds).
PROBE_TIMEOUT = 2.0


class MountpointError(Exception):
    """The mount directory cannot be used (explained in the message)."""


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``."""

    mount_id: int
    major: int
    minor: int
    mountpoint: str
    fstype: str
    source: str

    @property
    def is_fuse(self) -> bool:
        return self.fstype == "fuse" or self.fstype.startswith(("fuse.", "fuseblk"))


def default_mount_dir() -> Path:
    """The per-user default mount directory (not created here).

    ``$XDG_RUNTIME_DIR/xinim/root``; without that variable ``/run/user/UID/xinim/root``
    when ``/run/user/UID`` exists and is ours; else ``/tmp/xinim-UID/root``.
    """
    uid = os.getuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        return Path(xdg) / "xinim" / "root"
    run_user = Path(f"/run/user/{uid}")
    try:
        st = run_user.stat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            return run_user / "xinim" / "root"
    except OSError:
        pass
    return Path(f"/tmp/xinim-{uid}") / "root"


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mountinfo(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    """Parse mountinfo (see proc(5)); an unreadable file gives an empty list."""
    entries: list[MountEntry] = []
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        log.debug("cannot read %s: %s", path, e)
        return entries
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf = left.split(" ")
        rf = right.split(" ")
        if len(lf) < 5 or len(rf) < 2:
            continue
        try:
            major, minor = (int(x) for x in lf[2].split(":"))
            entries.append(MountEntry(int(lf[0]), major, minor,
                                      _unescape_mountinfo(lf[4]), rf[0],
                                      _unescape_mountinfo(rf[1])))
        except ValueError:
            continue
    return entries


def mounts_at(path: str | os.PathLike[str]) -> list[MountEntry]:
    """The mounts whose mount point is exactly ``path`` (topmost last)."""
    p = os.path.abspath(os.fspath(path))
    # Resolve symlinks in the parent only: the place itself may be a dead mount.
    p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
    return [e for e in read_mountinfo() if e.mountpoint == p]


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    return bool(mounts_at(path))


def _stat_with_timeout(path: str, timeout: float) -> os.stat_result | OSError | None:
    """``os.stat`` in a helper thread: a hung FUSE server must not hang us.

    Returns the result, the OSError, or None on timeout (the thread is left
    behind as a daemon; it ends when the hung server does)."""
    box: list[os.stat_result | OSError] = []

    def probe() -> None:
        try:
            box.append(os.stat(path))
        except OSError as e:
            box.append(e)

    t = threading.Thread(target=probe, name="xinim-mount-probe", daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def lazy_unmount(path: str | os.PathLike[str]) -> None:
    """Detach the mount at ``path`` (``umount2(MNT_DETACH)`` as root, else
    ``fusermount3 -u -z``).  Raises MountpointError when both fail."""
    p = os.fspath(path)
    err = 0
    if os.geteuid() == 0:
        if _libc().umount2(os.fsencode(p), MNT_DETACH) == 0:
            log.info("lazily unmounted %s", p)
            return
        err = ctypes.get_errno()
        log.debug("umount2(%s, MNT_DETACH) failed: %s", p, os.strerror(err))
    for tool in ("fusermount3", "fusermount"):
        exe = shutil.which(tool)
        if exe is None:
            continue
        r = subprocess.run([exe, "-u", "-z", p], capture_output=True, text=True)
        if r.returncode == 0:
            log.info("lazily unmounted %s with %s", p, tool)
            return
        log.debug("%s -u -z %s: %s", tool, p, r.stderr.strip())
    raise MountpointError(
        f"cannot unmount the dead mount at {p}"
        + (f": {os.strerror(err)}" if err else "")
        + f"; try: fusermount3 -u -z {p}")


def cleanup_stale_mount(path: str | os.PathLike[str]) -> bool:
    """Detach dead FUSE mounts at ``path``; True if something was detached.

    Dead means: listed in mountinfo as FUSE and ``stat`` fails with ENOTCONN
    (or ECONNABORTED), or ``stat`` fails that way even though mountinfo does
    not show it (another mount namespace view).  A *live* FUSE mount there is
    somebody else's running server: raise MountpointError instead of
    unmounting it.
    """
    p = os.path.abspath(os.fspath(path))
    detached = False
    for _ in range(16):  # stacked dead mounts: peel them off one by one
        entries = mounts_at(p)
        res = _stat_with_timeout(p, PROBE_TIMEOUT)
        dead = isinstance(res, OSError) and res.errno in (errno.ENOTCONN, errno.ECONNABORTED)
        if dead:
            log.warning("found a dead FUSE mount at %s (%s); unmounting it", p,
                        os.strerror(res.errno))  # type: ignore[union-attr]
            lazy_unmount(p)
            detached = True
            continue
        if entries and entries[-1].is_fuse:
            if res is None:
                raise MountpointError(
                    f"{p} is a FUSE mount whose server does not answer; "
                    f"unmount it first (fusermount3 -u -z {p})")
            raise MountpointError(
                f"{p} is already a live FUSE mount ({entries[-1].source}, "
                f"{entries[-1].fstype}); is another xinim-boot running?")
        break
    return detached


def prepare_mountpoint(path: str | os.PathLike[str] | None = None) -> Path:
    """Make ``path`` (default: :func:`default_mount_dir`) ready to mount on.

    Detaches a dead FUSE mount left by a crashed run, creates the directory
    (and its parents, private to the user) when missing, and refuses a
    non-directory or a non-empty directory that is not a mount.
    """
    p = Path(os.path.abspath(os.fspath(path if path is not None else default_mount_dir())))
    cleanup_stale_mount(p)
    try:
        st = p.lstat()
    except FileNotFoundError:
        # Parents private: the runtime dir of one user is nobody else's business.
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        p.mkdir(mode=0o755, exist_ok=True)
        log.info("created mount directory %s", p)
        return p
    if not stat.S_ISDIR(st.st_mode):
        raise MountpointError(f"mount point {p} exists and is not a directory")
    if not is_mountpoint(p):
        try:
            with os.scandir(p) as it:
                first = next(it, None)
        except OSError as e:
            raise MountpointError(f"cannot read mount point {p}: {e.strerror}") from e
        if first is not None:
            raise MountpointError(
                f"mount point {p} is a non-empty directory (it holds {first.name!r}); "
                "refusing to hide its contents under the mount — pick an empty or new "
                "directory")
    return p


def fuse_connection_dir(path: str | os.PathLike[str]) -> Path | None:
    """The ``/sys/fs/fuse/connections/N`` directory of the FUSE mount at ``path``
    (found through mountinfo, so it never sends a request to the server)."""
    entries = [e for e in mounts_at(path) if e.is_fuse]
    if not entries:
        return None
    _ensure_fusectl()
    d = Path("/sys/fs/fuse/connections") / str(entries[-1].minor)
    return d if d.is_dir() else None


def abort_fuse_connection(path: str | os.PathLike[str]) -> bool:
    """Abort the FUSE connection of the mount at ``path``: every pending and
    future request fails at once (ENOTCONN).  The last resort when something
    is blocked on a request that will never be answered.  True on success."""
    d = fuse_connection_dir(path)
    if d is None:
        return False
    try:
        (d / "abort").write_text("1")
    except OSError as e:
        log.debug("cannot abort %s: %s", d, e)
        return False
    log.warning("aborted the FUSE connection %s of %s", d.name, path)
    return True


def _ensure_fusectl() -> None:
    """Mount the FUSE control filesystem when it is missing (root only)."""
    d = "/sys/fs/fuse/connections"
    if not os.path.isdir(d) or any(e.mountpoint == d for e in read_mountinfo()):
        return
    if os.geteuid() != 0:
        return
    if _libc().mount(b"fusectl", d.encode(), b"fusectl", 0, None) != 0:
        log.debug("cannot mount fusectl: %s", os.strerror(ctypes.get_errno()))
