"""What every command shares: its parser, its log, and one-line errors.

* **Quiet by default** (like strace and PRoot): XINIM's own diagnostics never reach
  the program's stderr.  They go to ``--log FILE`` or ``$XINIM_LOG`` (appended, with
  timestamps), to the terminal with ``-v``, to xinim-boot's console -- or nowhere.
* **One-line errors**: a user's mistake is one line, ``PROG: what; what to do``
  (:class:`CliError`); exit status 2 for usage errors, as getopt tools give; a
  traceback only with ``-v``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, NoReturn, Sequence

USAGE = 2

LOG_FORMAT = "xinim: %(name)s: %(message)s"


class CliError(Exception):
    """A mistake of the user or the environment, said in one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and a hint (not the whole usage)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message}\nTry '{self.prog} --help'.\n")


def split_command(parser: argparse.ArgumentParser, argv: Sequence[str]
                  ) -> tuple[list[str], list[str]]:
    """``argv`` split into our options and ``PROGRAM ARGS...``: the command starts at
    the first word that is not an option or an option's value (or after ``--``).
    An option with an optional value (``--join``) takes it only as ``--join=VALUE``."""
    takes_value = {s for a in parser._actions for s in a.option_strings
                   if a.nargs not in (0, "?")}
    argv = list(argv)
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv[:i], argv[i + 1:]
        if not word.startswith("-") or word == "-":
            return argv[:i], argv[i:]
        if word.startswith("--"):
            if "=" not in word and word in takes_value:
                i += 1
        else:                                   # -v, -0, -w DIR, -wDIR, -o ro, -vo ro
            for j in range(1, len(word)):
                if f"-{word[j]}" in takes_value:
                    if j == len(word) - 1:
                        i += 1
                    break
        i += 1
    return argv, []


#: logger name prefix -> the subsystem a kernel log names (the boot log's words)
SUBSYSTEMS = (("xinim_host.vfs_fuse", "VFS"), ("xinim_host.pm", "PM"), ("xinim_host.mm", "MM"),
              ("xinim_host.net", "NET"),
              ("xinim_host.uart", "console"), ("xinim_host.system.boot", "kernel"),
              ("xinim_host.kernel", "kernel"), ("xinim_host.intercept", "kernel"),
              ("xinim_host.lib", "ipc"), ("xinim_host.cli", "init"), ("xinim.", "init"))


class Uptime(logging.Formatter):
    """``[    0.012] VFS: message``: seconds since start and the subsystem, like a
    kernel log (and like the boot log's own lines)."""

    def __init__(self, start: float) -> None:
        super().__init__("%(message)s")
        self.start = start

    def format(self, record: logging.LogRecord) -> str:
        who = next((short for prefix, short in SUBSYSTEMS if record.name.startswith(prefix)),
                   record.name)
        return f"[{record.created - self.start:9.3f}] {who}: {super().format(record)}"


def log_file_of(log_file: str | None) -> str | None:
    return log_file or os.environ.get("XINIM_LOG") or None


def setup_logging(verbose: int, log_file: str | None, *, terminal: bool = True) -> None:
    """Where XINIM's diagnostics go: ``log_file`` (or ``$XINIM_LOG``) and, with
    ``verbose``, the terminal (stderr; not when ``terminal`` is False: xinim-boot
    puts them on its console); nowhere else (never the program's stderr)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    log_file = log_file_of(log_file)
    level = logging.DEBUG if verbose > 1 else logging.INFO
    root.setLevel(level if (verbose or log_file) else logging.WARNING)
    if log_file:
        try:
            handler: logging.Handler = logging.FileHandler(log_file)
        except OSError as exc:
            raise CliError(f"--log {log_file}: {exc.strerror}", USAGE) from None
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(process)d %(name)s: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    if verbose and terminal:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    if not root.handlers:
        root.addHandler(logging.NullHandler())   # not logging's last resort: stderr


class ConsoleLog(logging.Handler):
    """Diagnostics on a booted system's console, like a kernel's printk: through
    ``sink`` (the console's kernel path), from any thread (a FUSE or worker
    thread's record is handed to the trio thread)."""

    def __init__(self, sink: Any, start: float, level: int) -> None:
        import trio
        super().__init__(level)
        self.sink = sink
        self.token = trio.lowlevel.current_trio_token()
        self.setFormatter(Uptime(start))

    def emit(self, record: logging.LogRecord) -> None:
        import trio
        try:
            data = (self.format(record) + "\n").encode(errors="replace")
            try:
                trio.lowlevel.current_trio_token()
                self.sink.write(data)
            except RuntimeError:
                try:
                    self.token.run_sync_soon(self.sink.write, data)
                except trio.RunFinishedError:
                    pass               # the system is gone; so is its console
        except Exception:          # noqa: BLE001 -- a log line never breaks the system
            self.handleError(record)


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside trio's exception groups (the first that is not a
    cancellation when there are several)."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if type(e).__name__ != "Cancelled"] or \
            list(exc.exceptions)
        exc = inner[0]
    return exc


def one_line(exc: BaseException) -> tuple[str, int] | None:
    """A known failure as (message, exit code); None for a real bug."""
    from ..vfs_fuse.image import ImageError
    from ..vfs_fuse.mountpoint import MountpointError
    if isinstance(exc, CliError):
        return str(exc), exc.exit_code
    if isinstance(exc, (ImageError, MountpointError)):
        return str(exc), 1
    if isinstance(exc, RuntimeError) and "FUSE" in str(exc):
        return f"{exc}; is /dev/fuse usable (modprobe fuse; fusermount3 installed)?", 1
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 1
    return None


def guarded(prog: str, verbose: Callable[[], int], body: Callable[[], int]) -> int:
    """``body()``'s exit status; a known failure as one line on stderr (its
    traceback only with -v), Ctrl-C as 130."""
    try:
        return body()
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as exc:   # noqa: BLE001 -- every failure becomes one line
        if isinstance(exc, BaseExceptionGroup):
            interrupted, rest = exc.split(KeyboardInterrupt)
            if interrupted is not None and rest is None:
                return 130
        cause = leaf(exc)
        known = one_line(cause)
        if verbose():
            logging.getLogger(f"xinim.{prog}").error("failed", exc_info=exc)
        if known is not None:
            message, code = known
        else:
            message = f"internal error: {type(cause).__name__}: {cause}"
            if not verbose():
                message += " (-v shows the traceback)"
            code = 1
        print(f"{prog}: {message}", file=sys.stderr)
        return code
