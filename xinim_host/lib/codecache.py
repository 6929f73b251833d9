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


def _inherited(depth: int = 2) -> int:
    """The future flags of the code calling our stand-in (what the builtin would
    have inherited from it)."""
    return sys._getframe(depth).f_code.co_flags & _FUTURE_FLAGS


def _exec_cached(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """``exec`` for ``dataclasses``: a source string is compiled through the cache."""
    if type(source) is str:
        source = code(source, "<string>", _inherited())
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


# --- our modules' code, in one file ----------------------------------------------------
#
# Importing a module the ordinary way -- a search of its package's directory for
# each kind of file, the source's stat, the bytecode file opened, read and checked
# -- costs ~90 us before its code runs; ~150 of our modules make up a run, ~14 ms.
# ``scripts/setup.sh`` (``python -m xinim_host.cli.precompile``) writes every
# module's code into one file; :func:`install_modules` puts a finder first on
# ``sys.meta_path`` that serves ``xinim_host`` modules from it, each checked
# against its source's size and mtime (one stat: a changed or new module is
# imported the ordinary way).

MODULES_PATH = os.path.join(os.path.dirname(__file__), "__pycache__",
                            f"modules.{sys.implementation.cache_tag}.marshal")
_HEAD = struct.Struct("<4sI")


class _BundleLoader:
    """Loads one module from the bundle (what ``SourceFileLoader`` gives, from memory)."""

    def __init__(self, path: str, code: memoryview, package: bool) -> None:
        self.path, self._code, self._package = path, code, package

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        _exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname: str) -> types.CodeType:
        return marshal.loads(self._code)

    def is_package(self, fullname: str) -> bool:
        return self._package

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_source(self, fullname: str) -> str:
        import importlib.util
        with open(self.path, "rb") as f:
            return importlib.util.decode_source(f.read())


class ModuleBundle:
    """The meta path finder of our modules' bundled code."""

    def __init__(self, index: dict[str, tuple[str, int, int, bool, int, int]],
                 blob: memoryview) -> None:
        self.index, self.blob = index, blob

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        entry = self.index.get(name)
        if entry is None:
            return None
        source, mtime_ns, size, package, offset, length = entry
        try:
            st = os.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None            # changed since set-up: the ordinary way
        from importlib.machinery import ModuleSpec
        spec = ModuleSpec(name, _BundleLoader(source, self.blob[offset:offset + length], package),
                          origin=source, is_package=package)
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [os.path.dirname(source)]
        return spec


def install_modules(path: str | None = None) -> bool:
    """Serve our modules from the bundle, if set-up wrote one for this Python."""
    if any(isinstance(f, ModuleBundle) for f in sys.meta_path):
        return True
    try:
        with open(path or MODULES_PATH, "rb") as f:
            data = f.read()
        magic, head = _HEAD.unpack_from(data)
        index = marshal.loads(memoryview(data)[_HEAD.size:_HEAD.size + head])
    except (OSError, EOFError, ValueError, TypeError, struct.error):
        return False
    if magic != _MAGIC or type(index) is not dict:
        return False
    sys.meta_path.insert(0, ModuleBundle(index, memoryview(data)[_HEAD.size + head:]))
    return True


def write_modules(package_dir: str, package: str, path: str | None = None) -> int:
    """Compile every module of ``package`` (its directory ``package_dir``) into the
    bundle; how many."""
    path = path or MODULES_PATH
    index: dict[str, tuple[str, int, int, bool, int, int]] = {}
    blob = bytearray()
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        if "__init__.py" not in files:
            dirs[:] = []
            continue
        rel = os.path.relpath(root, package_dir)
        prefix = package if rel == "." else package + "." + rel.replace(os.sep, ".")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            source_path = os.path.abspath(os.path.join(root, name))
            with open(source_path, "rb") as f:
                source = f.read()
            st = os.stat(source_path)
            is_pkg = name == "__init__.py"
            modname = prefix if is_pkg else f"{prefix}.{name[:-3]}"
            code = marshal.dumps(_compile(source, source_path, "exec", dont_inherit=True))
            index[modname] = (source_path, st.st_mtime_ns, st.st_size, is_pkg, len(blob),
                              len(code))
            blob += code
    head = marshal.dumps(index)
    tmp = f"{path}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(_HEAD.pack(_MAGIC, len(head)) + head + blob)
    os.replace(tmp, path)
    return len(index)
