"""lib/codecache.py: generated code compiled once and kept across runs, with what
dataclasses and attrs build unchanged."""
from __future__ import annotations

import marshal
import subprocess
import sys
import textwrap

import pytest

from xinim_host.lib import codecache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty cache file that this test may write."""
    monkeypatch.setattr(codecache, "PATH", str(tmp_path / "cache.marshal"))
    monkeypatch.setattr(codecache, "_store", None)
    monkeypatch.setattr(codecache, "_new", 0)
    monkeypatch.setattr(codecache, "force_save", True)
    return tmp_path / "cache.marshal"


def test_code_is_kept_and_reused(cache) -> None:
    source = "def f(x):\n    return x * 3\n"
    first = codecache.code(source, "<gen>")
    codecache.save()
    assert cache.exists()
    codecache._store = None                     # a new run: only the file
    compiled = []
    real = codecache._compile
    codecache._compile = lambda *a, **k: compiled.append(a) or real(*a, **k)
    try:
        again = codecache.code(source, "<gen>")
        other = codecache.code(source, "<other>")    # another file name: its own entry
    finally:
        codecache._compile = real
    assert [a[1] for a in compiled] == ["<other>"]
    ns: dict = {}
    exec(again, ns)
    assert ns["f"](4) == 12 and again.co_filename == first.co_filename == "<gen>"
    assert other.co_filename == "<other>"


def test_damaged_or_foreign_file_means_compiling_again(cache) -> None:
    cache.write_bytes(b"\x00garbage")
    ns: dict = {}
    exec(codecache.code("y = 7\n", "<gen>"), ns)
    assert ns["y"] == 7
    cache.write_bytes(marshal.dumps((b"XXXX", {})))     # another Python's bytecode
    codecache._store = None
    exec(codecache.code("y = 8\n", "<gen>"), ns)
    assert ns["y"] == 8


def test_future_flags_are_those_of_the_caller(cache) -> None:
    # the builtins inherit the caller's __future__ flags: a function's annotations
    # stay strings when its generator module has ``from __future__ import annotations``
    src = "def f(a: int) -> int:\n    return a\n"
    ns: dict = {}
    codecache._exec_cached(src, ns)             # called from here: annotations future
    assert ns["f"].__annotations__ == {"a": "int", "return": "int"}
    plain: dict = {}
    exec(compile("import xinim_host.lib.codecache as c\nc._exec_cached(SRC, NS)\n", "<t>",
                  "exec", dont_inherit=True), {"SRC": src, "NS": plain})
    assert plain["f"].__annotations__ == {"a": int, "return": int}


def test_dataclasses_build_the_same_classes_through_it() -> None:
    # in a fresh interpreter: install() changes the dataclasses module for good
    script = textwrap.dedent("""
        import dataclasses, sys
        from xinim_host.lib import codecache
        codecache.install()
        from dataclasses import dataclass, field, FrozenInstanceError

        @dataclass(frozen=True, slots=True)
        class P:
            x: int
            y: tuple = field(default_factory=tuple, repr=False)

        @dataclass(kw_only=True, eq=False)
        class Q:
            a: int = 1

        p = P(1)
        assert repr(p) == "P(x=1)" and p == P(1) and hash(P(2)) == hash(P(2))
        try:
            p.x = 2
        except FrozenInstanceError:
            pass
        else:
            raise AssertionError("frozen")
        assert P.__slots__ == ("x", "y") and dataclasses.replace(p, x=5).x == 5
        assert Q(a=2) != Q(a=2) and Q().a == 1
        assert codecache._new > 0        # its source went through the cache
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_attrs_hash_salt_is_this_process_s(tmp_path) -> None:
    # attrs puts hash() of a string -- different in every process -- into each
    # class's __hash__; the cached code must carry this process's value, not the
    # one of the run that filled the cache
    script = textwrap.dedent(f"""
        from xinim_host.lib import codecache
        codecache.PATH = {str(tmp_path / "cache.marshal")!r}
        codecache.force_save = True
        codecache.install()
        import attr
        from attr._make import _generate_unique_filename

        @attr.s(frozen=True, hash=True)
        class C:
            x = attr.ib()

        salt = hash(_generate_unique_filename(C, "hash"))
        assert hash(C(5)) == hash((salt, 5)), "salt"
        print(codecache._new)
    """)
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
            for seed in ("1", "2")]
    for out in runs:
        assert out.returncode == 0, out.stderr
    assert int(runs[0].stdout) > 0          # the first compiled and wrote the cache,
    assert int(runs[1].stdout) == 0         # the second (another seed) took it from there


def _python(script: str, cwd: str, **env: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                         text=True, cwd=cwd,
                         env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin", **env})
    assert out.returncode == 0, out.stderr
    return out


def test_modules_bundle_serves_current_modules_only(tmp_path) -> None:
    # a package with a subpackage, bundled; a module changed after that is
    # imported the ordinary way (its source, not the bundle's old code)
    pkg = tmp_path / "bpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("NAME = 'top'\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text("from .. import NAME\nVALUE = NAME + '-bundled'\n")
    (pkg / "other.py").write_text("VALUE = 1\n")
    bundle = str(tmp_path / "bundle.marshal")
    modules = codecache.package_modules(str(pkg), "bpkg")
    assert sorted(modules) == ["bpkg", "bpkg.other", "bpkg.sub", "bpkg.sub.mod"]
    _python(f"""
        from xinim_host.lib import codecache
        assert codecache.write_modules({modules!r}, {bundle!r}) == 4
    """, str(tmp_path))
    (pkg / "other.py").write_text("VALUE = 22\n")       # changed since set-up
    out = _python(f"""
        import sys
        from xinim_host.lib import codecache
        assert codecache.install_modules({bundle!r})
        import bpkg.sub.mod, bpkg.other
        loader = type(bpkg.sub.mod.__spec__.loader).__name__
        print(bpkg.sub.mod.VALUE, loader, bpkg.sub.mod.__file__ == {str(pkg / "sub" / "mod.py")!r},
              bpkg.sub.__path__ == [{str(pkg / "sub")!r}],
              bpkg.other.VALUE, type(bpkg.other.__spec__.loader).__name__)
    """, str(tmp_path))
    assert out.stdout.split() == ["top-bundled", "_BundleLoader", "True", "True", "22",
                                  "SourceFileLoader"]


def test_modules_bundle_serves_others_only_on_set_up_s_search_path(tmp_path) -> None:
    # a module that is not ours (here: the standard library's) is served only
    # where the search path is the one it was bundled on; and not where the
    # script's directory has a module of that name, which the ordinary search
    # finds first
    bundle = str(tmp_path / "bundle.marshal")
    _python(f"""
        import colorsys
        from xinim_host.lib import codecache
        codecache.write_modules({{"colorsys": colorsys.__file__}}, {bundle!r})
    """, str(tmp_path))
    shadowing = tmp_path / "shadow"
    shadowing.mkdir()
    (shadowing / "colorsys.py").write_text("MINE = True\n")
    script = f"""
        from xinim_host.lib import codecache
        assert codecache.install_modules({bundle!r})
        import colorsys
        print(type(colorsys.__spec__.loader).__name__, getattr(colorsys, "MINE", False))
    """
    assert _python(script, str(tmp_path)).stdout.split() == ["_BundleLoader", "False"]
    assert _python(script, str(shadowing)).stdout.split() == ["SourceFileLoader", "True"]
    assert _python(script, str(tmp_path), PYTHONPATH="/nonexistent").stdout.split() == \
        ["SourceFileLoader", "False"]


def test_no_modules_bundle_means_ordinary_imports(tmp_path) -> None:
    assert not codecache.install_modules(str(tmp_path / "absent.marshal"))
    (tmp_path / "bad.marshal").write_bytes(b"\x00" * 3)
    assert not codecache.install_modules(str(tmp_path / "bad.marshal"))
    assert not any(isinstance(f, codecache.ModuleBundle) for f in sys.meta_path)


def test_exec_stand_in_uses_the_caller_s_namespace_as_the_builtin(cache) -> None:
    ns: dict = {}
    codecache._exec_cached("a = 1\n", ns)
    codecache._exec_cached("b = a + 1\n", ns, ns)
    assert ns["a"] == 1 and ns["b"] == 2
    here = {"__name__": "caller", "seen": None}
    exec(compile("import xinim_host.lib.codecache as c\nc._exec_cached('seen = __name__')\n",
                 "<t>", "exec"), here)
    assert here["seen"] == "caller"        # the calling code's globals, not codecache's


def test_values_are_kept_by_key(cache) -> None:
    code = codecache.code("def f():\n    return 5\n", "<gen>")
    assert codecache.get("layout A") is None
    codecache.put("layout A", (code,))
    codecache.save()
    codecache._store = None                   # a new run: only the file
    kept = codecache.get("layout A")
    ns: dict = {}
    exec(kept[0], ns)
    assert ns["f"]() == 5 and codecache.get("layout B") is None
