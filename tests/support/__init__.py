"""Helpers shared by the test modules (no tests here): ``support.vfs`` (a lattice
with a VfsServer), ``support.pm`` (a lattice with PM and fakes behind its
notifier), ``support.run`` (the real ``xinim-run`` and the C programs of
tests/c/), ``support.hostproc`` (wait for a host process).  The test modules
import them as ``support.*``: pytest puts tests/ on sys.path (rootdir-relative,
``prepend`` import mode, tests/ has no ``__init__.py``)."""
