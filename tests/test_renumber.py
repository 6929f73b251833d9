"""The renumbering table (kernel/renumber.py) against the dispatcher's table
(kernel/dispatch.py), its support levels, and the generated docs/syscalls.md."""
from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from xinim_host.kernel import renumber
from xinim_host.kernel.dispatch import SYSCALLS
from xinim_host.kernel.renumber import LINUX_NAMES, LINUX_TO_XINIM, XINIM_ONLY, Action, Support
from xinim_host.lib.syscalls import Sys

DOC = Path(__file__).resolve().parent.parent / "docs" / "syscalls.md"


def test_every_delegated_row_has_a_dispatcher_entry() -> None:
    missing = {r.linux_name: r.xinim for r in LINUX_TO_XINIM.values()
               if r.action in (Action.DELEGATE, Action.DELEGATE_THEN_HOST)
               and (r.xinim is None or int(r.xinim) not in SYSCALLS)}
    assert not missing


def test_every_dispatcher_entry_has_a_handler() -> None:
    for nr, entry in SYSCALLS.items():
        assert entry.name == Sys(nr).name.lower()
        assert callable(entry.handler), entry.name
        inspect.signature(entry.handler).bind("kernel", "ctx")   # handler(kernel, c)


def test_every_dispatcher_entry_is_reached_by_a_row_or_is_xinim_only() -> None:
    reached = {int(r.xinim) for r in LINUX_TO_XINIM.values() if r.xinim is not None}
    orphans = [e.name for nr, e in SYSCALLS.items() if nr not in reached and Sys(nr) not in XINIM_ONLY]
    assert not orphans, f"no Linux row reaches {orphans}: add a row or list it in XINIM_ONLY"
    assert not reached & {int(nr) for nr in XINIM_ONLY}, "a XINIM-only call that a row reaches"
    assert all(int(nr) in SYSCALLS for nr in XINIM_ONLY)


def test_support_levels_are_explained() -> None:
    for nr in LINUX_NAMES:
        r = renumber.route(nr)
        if r.support is Support.HOST:
            assert r.reason, f"{r.linux_name}: a host row says why"
        if r.support is Support.PARTIAL:
            assert r.partial and r.xinim is not None, r.linux_name
        if r.support is Support.ENOSYS:
            assert nr not in LINUX_TO_XINIM and r.xinim is None
    n = renumber.counts()
    assert sum(n.values()) == len(LINUX_NAMES)
    assert n[Support.PARTIAL] > 0 and n[Support.FULL] > n[Support.HOST] > 0
    assert renumber.route(renumber.LINUX_NUMBERS["flock"]).support is Support.PARTIAL


def test_matrix_from_the_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "xinim_host.kernel.renumber"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    n = renumber.counts()
    assert out.splitlines()[0] == (
        f"of {len(LINUX_NAMES)} Linux x86-64 syscalls, {n[Support.FULL]} served by XINIM, "
        f"{n[Support.PARTIAL]} partial, {n[Support.HOST]} run by the host, "
        f"{n[Support.ENOSYS]} ENOSYS")
    assert len(out.splitlines()) == len(LINUX_NAMES) + 3


def test_committed_docs_syscalls_md_is_current() -> None:
    assert DOC.read_text() == renumber.format_markdown(), (
        "docs/syscalls.md is stale: python -m xinim_host.kernel.renumber --markdown > docs/syscalls.md")
