"""Compiled code of generated source, kept across runs.

Three code generators run at every start of a full xinim-run: ``dataclasses``
(an ``__init__``, ``__repr__``, ``__eq__``... per class, ~60 of our classes),
attrs (trio's ~70 classes, while trio is imported) and our own wire codecs
(``lib/protocol/wire.py``, per message type on first use).  Compiling that
source was ~40 ms of a ~300 ms start.  This module keeps the compiled code in
one file next to our bytecode, keyed by a digest of (source, file name,
compiler flags), so a start that finds it unmarshals instead of compiling.

* :func:`code` -- the cached ``compile(source, filename, "exec")``.
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
