"""Compiled code of generated source, kept across runs.

Three code generators run at every start of a full xinim-run: ``dataclasses``
(an ``__init__``, ``__repr__``, ``__eq__``... per class, ~60 of our classes),
attrs (trio's ~70 classes, while trio is imported) and our own wire codecs
(``lib/protocol/wire.py``, per message type on first use).  Compiling that
source was ~40 ms of a ~300 ms start.  This module keeps the compiled code in
one file next to our bytecode, keyed by a digest of (source, file name,
compiler flags), so a start that finds it unmarshals instead of compiling.

* :func:`code` -- the cached ``compile(source, filename, "exec")``.
* :func:`install_modules` -- our modules' code from one file too (below).
* :func:`install` -- routes the ``exec`` of ``dataclasses`` and the ``compile``
  of attrs through :func:`code` (by a module global that shadows the builtin, so
  their code is untouched); what they build is exactly what they built before.
  The commands call it before importing trio and our modules.

The file is written at exit when a run compiled something new, unless Python
writes no bytecode (``PYTHONDONTWRITEBYTECODE``); ``scripts/setup.sh`` fills it
then, as it compiles our modules (``python -m xinim_host.cli.precompile``).  A
missing, foreign or damaged file only means compiling again.
"""
from __future__ import annotations

import __future__
import _frozen_importlib_external
import atexit
import builtins
import hashlib
import marshal
import os
import re
import struct
import sys
import types
from importlib.machinery import ModuleSpec, SourceFileLoader
from importlib.util import cache_from_source as _cache_from_source
from typing import Any

PATH = os.path.join(os.path.dirname(__file__), "__pycache__",
                    f"codecache.{sys.implementation.cache_tag}.marshal")
# The cache belongs to one bytecode format: a file of another Python is ignored.
_MAGIC = _frozen_importlib_external.MAGIC_NUMBER
# The compiler flags a builtin compile()/exec() inherits from its caller's code.
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag

_compile = builtins.compile
_exec = builtins.exec
_store: dict[bytes, bytes] | None = None
_new = 0            # entries compiled by this run (written at exit)
force_save = False  # precompile: write even where Python writes no bytecode


def _load() -> dict[bytes, bytes]:
    global _store
    store: Any = None
    try:
        with open(PATH, "rb") as f:
            loaded = marshal.load(f)
        if type(loaded) is tuple and len(loaded) == 2 and loaded[0] == _MAGIC \
                and type(loaded[1]) is dict:
            store = loaded[1]
    except (OSError, EOFError, ValueError, TypeError):
        pass
    _store = store if store is not None else {}
    return _store


def save() -> None:
    """Write the cache if this run added to it (atomically: concurrent runs each
    replace the whole file, none sees half of one)."""
    global _new
    if not _new or _store is None or (sys.dont_write_bytecode and not force_save):
        return
    tmp = f"{PATH}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(PATH), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump((_MAGIC, _store), f)
        os.replace(tmp, PATH)
        _new = 0
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def code(source: str, filename: str, flags: int = 0) -> types.CodeType:
    """``compile(source, filename, "exec", flags, dont_inherit=True)``, from the
    cache when this exact source was compiled before."""
    global _new
    store = _store if _store is not None else _load()
    key = hashlib.blake2b(f"{flags}\0{filename}\0{source}".encode(errors="surrogatepass"),
                          digest_size=16).digest()
    raw = store.get(key)
    if raw is not None:
        try:
            cached = marshal.loads(raw)
        except (EOFError, ValueError, TypeError):
            cached = None
        if type(cached) is types.CodeType:
            return cached
    compiled = _compile(source, filename, "exec", flags, dont_inherit=True)
    store[key] = marshal.dumps(compiled)
    if not _new:
        atexit.register(save)
    _new += 1
    return compiled


def _key(kind: str, text: str) -> bytes:
    return hashlib.blake2b(f"{kind}\0{text}".encode(errors="surrogatepass"),
                           digest_size=16).digest()


def get(key: str) -> Any:
    """What :func:`put` kept under ``key`` (in this run or an earlier one), or None."""
    store = _store if _store is not None else _load()
    raw = store.get(_key("value", key))
    if raw is None:
        return None
    try:
        return marshal.loads(raw)
    except (EOFError, ValueError, TypeError):
        return None


def put(key: str, value: Any) -> None:
    """Keep ``value`` (marshallable: code objects, tuples of them...) under ``key``,
    which must name everything it was made from."""
    global _new
    store = _store if _store is not None else _load()
    store[_key("value", key)] = marshal.dumps(value)
    if not _new:
        atexit.register(save)
    _new += 1


def _inherited(depth: int = 2) -> int:
    """The future flags of the code calling our stand-in (what the builtin would
    have inherited from it)."""
    return sys._getframe(depth).f_code.co_flags & _FUTURE_FLAGS


def _exec_cached(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """``exec`` for ``dataclasses``: a source string is compiled through the cache."""
    if type(source) is str:
        source = code(source, "<string>", _inherited())
    if globals is None:        # the caller's namespace, as the builtin would take it
        frame = sys._getframe(1)
        globals = frame.f_globals
        if locals is None:
            locals = frame.f_locals
    if locals is None:
        _exec(source, globals)
    else:
        _exec(source, globals, locals)


# attrs salts a class's ``__hash__`` with ``hash()`` of a string: a literal that
# changes with every process's hash seed.  Its code is cached with a stand-in for
# it, and the real salt put back into the constants.
_ATTRS_SALT = re.compile(r"hash\(\(\n\s*(-?\d+),\n")
_SALT_STANDIN = 0x5EED_5A17_C0DE_0001


def _with_const(co: types.CodeType, old: int, new: int) -> types.CodeType:
    consts = tuple(_with_const(c, old, new) if type(c) is types.CodeType
                   else new if type(c) is int and c == old else c for c in co.co_consts)
    return co.replace(co_consts=consts) if consts != co.co_consts else co


def _compile_cached(source: Any, filename: Any, mode: str, flags: int = 0,
                    dont_inherit: bool = False, optimize: int = -1, **kwargs: Any) -> Any:
    """``compile`` for attrs: ``exec`` mode on a source string through the cache."""
    if type(source) is str and mode == "exec" and optimize == -1 and not kwargs \
            and isinstance(filename, str):
        if not dont_inherit:
            flags |= _inherited()
        salts = {m.group(1) for m in _ATTRS_SALT.finditer(source)}
        if len(salts) == 1 and str(_SALT_STANDIN) not in source:
            salt = salts.pop()
            stood_in = _ATTRS_SALT.sub(lambda m: m.group(0).replace(salt, str(_SALT_STANDIN)),
                                       source)
            return _with_const(code(stood_in, filename, flags), _SALT_STANDIN, int(salt))
        return code(source, filename, flags)
    return _compile(source, filename, mode, flags, dont_inherit, optimize, **kwargs)


def install() -> None:
    """Route dataclasses' and attrs' code generation through the cache (once; a
    library that no longer calls those builtins simply compiles as before)."""
    import dataclasses
    dataclasses.exec = _exec_cached  # type: ignore[attr-defined]
    try:
        import attr._make
    except ImportError:
        return
    attr._make.compile = _compile_cached  # type: ignore[attr-defined]


# --- the modules' code, in one file ----------------------------------------------------
#
# Importing a module the ordinary way -- a search of sys.path or its package's
# directory for each kind of file, the source's stat, the bytecode file opened,
# read and checked -- costs ~90 us before its code runs, and a run imports ~140 of
# our modules and ~180 pure-Python ones of the standard library, trio and the
# rest: ~25 ms.  Set-up (``python -m xinim_host.cli.precompile``) writes all their
# code into one file; :func:`install_modules` puts a finder first on
# ``sys.meta_path`` that serves those modules from it, each checked against its
# source's size and mtime (one stat: a changed or new module, and any other, is
# imported the ordinary way).  What it serves is what the ordinary import gives
# (a ``SourceFileLoader``, the same file, code compiled from that source) --
# only when the search path is the one of set-up, and no module of the script's
# directory takes the name first; else it serves our own package only.

MODULES_PATH = os.path.join(os.path.dirname(__file__), "__pycache__",
                            f"modules.{sys.implementation.cache_tag}.marshal")
_HEAD = struct.Struct("<4sI")
_OURS = __name__.partition(".")[0] + "."     # "xinim_host."


class _BundleLoader(SourceFileLoader):
    """A ``SourceFileLoader`` whose code comes from the bundle, not the .pyc."""

    def __init__(self, fullname: str, path: str, fd: int, offset: int, length: int) -> None:
        super().__init__(fullname, path)
        self._where = fd, offset, length

    def get_code(self, fullname: str) -> types.CodeType:
        fd, offset, length = self._where
        return marshal.loads(os.pread(fd, length, offset))


class ModuleBundle:
    """The meta path finder of the bundled modules."""

    def __init__(self, index: dict[str, tuple[str, int, int, int, int]], fd: int, base: int,
                 others: bool, first: str, shadows: frozenset[str]) -> None:
        self.index, self.fd, self.base = index, fd, base   # the code read when loaded
        self.others = others          # serve modules not of our package too
        self.first = first            # the script's directory (sys.path[0])...
        self.shadows = shadows        # ...and the top-level names it has

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        entry = self.index.get(name)
        if entry is None:
            return None
        source, mtime_ns, size, offset, length = entry
        if not name.startswith(_OURS) and (
                not self.others or (name.partition(".")[0] in self.shadows
                                    and not source.startswith(self.first))):
            return None
        try:
            st = os.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None            # changed since set-up: the ordinary way
        loader = _BundleLoader(name, source, self.fd, self.base + offset, length)
        package = os.path.basename(source) == "__init__.py"
        spec = ModuleSpec(name, loader, origin=source, is_package=package)
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [os.path.dirname(source)]
        spec.cached = _cache_from_source(source)
        return spec


def install_modules(path: str | None = None) -> bool:
    """Serve modules from the bundle, if set-up wrote one for this Python."""
    if any(isinstance(f, ModuleBundle) for f in sys.meta_path):
        return True
    try:
        fd = os.open(path or MODULES_PATH, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        magic, head = _HEAD.unpack(os.pread(fd, _HEAD.size, 0))
        search, index = marshal.loads(os.pread(fd, head, _HEAD.size))
        if magic != _MAGIC or type(index) is not dict:
            raise ValueError("another Python's")
    except (OSError, EOFError, ValueError, TypeError, struct.error):
        os.close(fd)
        return False
    first = os.path.abspath(sys.path[0] or ".") if sys.path else "/"
    try:
        names = os.listdir(first)
    except OSError:
        names = []
    sys.meta_path.insert(0, ModuleBundle(index, fd, _HEAD.size + head, search == sys.path[1:],
                                         first.rstrip(os.sep) + os.sep,
                                         frozenset(n.partition(".")[0] for n in names)))
    return True


def write_modules(modules: dict[str, str], path: str | None = None) -> int:
    """Compile ``modules`` (name -> source file) into the bundle; how many.  The
    search path it records is this process's (less the script's directory)."""
    index: dict[str, tuple[str, int, int, int, int]] = {}
    blob = bytearray()
    for name, source_path in sorted(modules.items()):
        with open(source_path, "rb") as f:
            source = f.read()
        st = os.stat(source_path)
        code = marshal.dumps(_compile(source, source_path, "exec", dont_inherit=True))
        index[name] = (source_path, st.st_mtime_ns, st.st_size, len(blob), len(code))
        blob += code
    head = marshal.dumps((sys.path[1:], index))
    path = path or MODULES_PATH
    tmp = f"{path}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(_HEAD.pack(_MAGIC, len(head)) + head + blob)
    os.replace(tmp, path)
    return len(index)


def package_modules(package_dir: str, package: str) -> dict[str, str]:
    """Every module of ``package`` (its directory ``package_dir``): name -> source."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        if "__init__.py" not in files:
            dirs[:] = []
            continue
        rel = os.path.relpath(root, package_dir)
        prefix = package if rel == "." else package + "." + rel.replace(os.sep, ".")
        for name in files:
            if name.endswith(".py"):
                found[prefix if name == "__init__.py" else f"{prefix}.{name[:-3]}"] = \
                    os.path.abspath(os.path.join(root, name))
    return found


def loaded_source_modules() -> dict[str, str]:
    """The modules this process imported from a .py file the ordinary way."""
    found = {}
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is not None and type(spec.loader) is SourceFileLoader \
                and isinstance(spec.origin, str) and spec.origin.endswith(".py") \
                and name != "__main__":
            found[name] = os.path.abspath(spec.origin)
    return found
