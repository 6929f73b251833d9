"""Fill the code caches at set-up: ``python -m xinim_host.cli.precompile``.

``scripts/setup.sh`` runs it after compiling our modules' bytecode, for the
same reason: where Python writes no bytecode (``PYTHONDONTWRITEBYTECODE``), a
run never writes the cache itself, and every start would compile the
dataclasses', attrs' and wire codecs' generated code again
(``lib/codecache.py``); and our modules' code goes into one file (the same
module).  It builds the cache afresh -- trio's attrs classes,
every module's dataclasses, every message type's codec -- so entries of source
that no longer exists do not pile up.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

from ..lib import codecache


def main() -> int:
    codecache._store = {}            # afresh: only what today's sources generate
    codecache.force_save = True
    codecache.install()
    import trio  # noqa: F401  -- its attrs classes
    import xinim_host
    failed = []
    for info in pkgutil.walk_packages(xinim_host.__path__, "xinim_host."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:     # noqa: BLE001 -- an optional dependency missing
            failed.append(f"{info.name}: {exc}")
    from ..lib.protocol import wire
    for cls in {*wire.REQUESTS.values(), *wire.REPLIES.values()}:
        wire._materialize(cls)
    codecache.save()
    # the modules' code: all of ours, and the others a run imports (those loaded now:
    # trio's, the standard library's, ...)
    modules = codecache.loaded_source_modules()
    modules.update(codecache.package_modules(xinim_host.__path__[0], "xinim_host"))
    codecache.write_modules(modules)
    for line in failed:
        print(f"precompile: not cached: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
