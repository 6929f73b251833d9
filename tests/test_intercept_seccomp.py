"""The hand-assembled seccomp filter, checked with the Python BPF evaluator."""
from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xinim_host.intercept import seccomp as sc

TRACE, ALLOW = sc.SECCOMP_RET_TRACE, sc.SECCOMP_RET_ALLOW


def test_small_set_and_special_rules() -> None:
    prog = sc.build_filter({39, 110, 0, 1, 2})
    for nr in range(600):
        assert sc.evaluate(prog, nr) == (TRACE if nr in {39, 110, 0, 1, 2} else ALLOW), nr
    # other architecture (i386 entry via int 0x80): kill the process
    assert sc.evaluate(prog, 20, arch=0x40000003) == sc.SECCOMP_RET_KILL_PROCESS
    # x32 ABI numbers: ENOSYS, trapped or not
    assert sc.evaluate(prog, 0x40000000 | 39) == sc.SECCOMP_RET_ERRNO | errno.ENOSYS
    assert sc.evaluate(prog, 0x40000000 | 500) == sc.SECCOMP_RET_ERRNO | errno.ENOSYS
    # -1 has the x32 bit set too: ENOSYS, which is what the kernel answers
    assert sc.evaluate(prog, 0xFFFFFFFF) == sc.SECCOMP_RET_ERRNO | errno.ENOSYS


def test_no_register_value_skips_a_trap() -> None:
    """The decision reads the arch and the number only: no argument value (the
    old fixed r9 cookie included) lets a trapped number run."""
    import random
    old_cookie = 0x5849_4E49_4D00_0000 & ~0xFFF & ((1 << 47) - 1)
    prog = sc.build_filter({9, 257, 110})
    rng = random.Random(11)
    values = [old_cookie, 0, (1 << 64) - 1] + [rng.getrandbits(64) for _ in range(1000)]
    for v in values:
        for pos in range(6):
            args = [0] * 6
            args[pos] = v
            assert sc.evaluate(prog, 257, args=tuple(args)) == TRACE
    assert all(code != 0x20 or k in (0, 4) for code, _, _, k in prog)  # loads nr/arch only


def test_large_set_uses_long_jumps() -> None:
    trapped = set(range(0, 460, 2)) | {435}
    prog = sc.build_filter(trapped)
    assert any(code == 0x05 for code, *_ in prog)  # a JA hop over a >255-insn subtree
    for nr in range(600):
        assert sc.evaluate(prog, nr) == (TRACE if nr in trapped else ALLOW), nr
    assert len(sc.assemble(prog)) == 8 * len(prog)


def test_ranges_compress_contiguous_numbers() -> None:
    prog = sc.build_filter(range(335))
    assert len(prog) < 20
    assert sc.evaluate(prog, 334) == TRACE and sc.evaluate(prog, 335) == ALLOW


def test_rejects_bad_numbers() -> None:
    with pytest.raises(ValueError):
        sc.build_filter({-1})
    with pytest.raises(ValueError):
        sc.build_filter({0x40000000})


def test_trace_data() -> None:
    prog = sc.build_filter({1}, trace_data=0x1234)
    assert sc.evaluate(prog, 1) == TRACE | 0x1234


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 500)), st.lists(st.integers(0, 520), max_size=40))
def test_matches_set_membership(trapped: set[int], probes: list[int]) -> None:
    prog = sc.build_filter(trapped)
    for nr in probes + sorted(trapped)[:20]:
        assert sc.evaluate(prog, nr) == (TRACE if nr in trapped else ALLOW)


def test_traps_predicate_matches_filter() -> None:
    for trapped, allowed in (({1, 9, 257}, None), ((), {0, 1, 60})):
        prog = sc.build_filter(trapped, allowed=allowed)
        stops = sc.traps(trapped, allowed=allowed)
        for nr in range(600):
            assert stops(nr) == (sc.evaluate(prog, nr) == TRACE), nr


def test_inverted_allow_list() -> None:
    allowed = {0, 1, 2, 60, 231}
    prog = sc.build_filter(allowed=allowed)
    for nr in range(600):
        assert sc.evaluate(prog, nr) == (ALLOW if nr in allowed else TRACE), nr
    assert sc.evaluate(prog, 100_000) == TRACE  # unknown numbers stop too
    assert sc.evaluate(prog, 0x40000000 | 1) == sc.SECCOMP_RET_ERRNO | errno.ENOSYS


@given(st.sampled_from([13, 14, 0, 1, 2, 60]),
       st.lists(st.integers(0, (1 << 64) - 1), min_size=6, max_size=6), st.booleans())
@settings(max_examples=300, deadline=None)
def test_queries_run_only_with_their_argument_zero(nr: int, args: list[int],
                                                   zero: bool) -> None:
    """rt_sigaction/rt_sigprocmask run without a stop only when the new action /
    set pointer is 0 (all 64 bits: a pointer with a zero low half still stops);
    every other number is decided as before."""
    allowed = {0, 2, 60}
    queries = {13: 1, 14: 1}
    prog = sc.build_filter(allowed=allowed, allowed_if_zero=queries)
    if zero:
        args[1] = 0
    elif args[1] == 0:
        args[1] = 1 << 40         # a pointer whose low 32 bits are 0
    expected = (ALLOW if nr in allowed or (nr in queries and args[1] == 0) else TRACE)
    assert sc.evaluate(prog, nr, args) == expected
    assert sc.evaluate(prog, 0x40000000 | nr, args) == sc.SECCOMP_RET_ERRNO | errno.ENOSYS
