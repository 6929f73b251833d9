#!/usr/bin/env bash
# Idempotent set-up shared by scripts/run and scripts/test: Debian packages that
# are missing, the .venv, and `pip install -e .[test]` whenever pyproject changed.
# Usage: [XINIM_EXTRA_PACKAGES="pkg ..."] source scripts/setup.sh
set -euo pipefail
XINIM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$XINIM_ROOT"

read -r -a xinim_extra <<< "${XINIM_EXTRA_PACKAGES:-}"
xinim_need_packages=(fuse3 libfuse3-dev pkg-config gcc "${xinim_extra[@]}")
# The interpreter: XINIM_PYTHON if set, else Debian's /usr/bin/python3 (3.11+), else
# the python3 in PATH.  Debian builds CPython with PGO and LTO; a plain build (pyenv's,
# say) runs every delegated call 15-22 % slower and starts ~40 ms later
# (docs/performance.md, "Session 5").
if [ -n "${XINIM_PYTHON:-}" ]; then
    xinim_python="$XINIM_PYTHON"
elif [ ! -e /usr/bin/python3 ] && ! command -v python3 >/dev/null; then
    xinim_python=/usr/bin/python3
    xinim_need_packages+=(python3)
elif /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    xinim_python=/usr/bin/python3
else
    xinim_python=python3
fi
# python3-venv/-dev matter only when that interpreter lacks venv or headers
"$xinim_python" -c 'import venv, ensurepip, sysconfig, os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null \
    || xinim_need_packages+=(python3-venv python3-dev)
xinim_missing=()
for pkg in "${xinim_need_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || xinim_missing+=("$pkg")
done
if ((${#xinim_missing[@]})); then
    echo "setup: installing Debian packages: ${xinim_missing[*]}" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${xinim_missing[@]}" >&2
fi

# A .venv made by another interpreter is made again (its packages are built for it).
xinim_interp="$("$xinim_python" -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version)')"
if [ -x .venv/bin/python ] && [ "$(cat .venv/.interp-stamp 2>/dev/null)" != "$xinim_interp" ]; then
    echo "setup: .venv was made by another interpreter; making it again with $xinim_python" >&2
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv ($xinim_python)" >&2
    "$xinim_python" -m venv .venv
    echo "$xinim_interp" > .venv/.interp-stamp
fi
xinim_stamp="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat .venv/.deps-stamp 2>/dev/null)" != "$xinim_stamp" ]; then
    echo "setup: pip install -e '.[test]'" >&2
    .venv/bin/pip install -q --upgrade pip >&2
    # compat: a plain path entry, not an import finder (which costs every start ~12 ms)
    .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat >&2
    echo "$xinim_stamp" > .venv/.deps-stamp
fi
# Bytecode for our own modules, refreshed when sources change (only stale files are
# compiled: ~0.1 s when current).  Where PYTHONDONTWRITEBYTECODE is set, Python never
# writes it itself and every xinim-run would compile each module again (~0.3 s CPU of
# every start); stale .pyc files are never used (their source mtime differs).
.venv/bin/python -m compileall -q -j 0 xinim_host >/dev/null
# The same for generated code (dataclasses', attrs' and the wire codecs' source,
# lib/codecache.py): rebuilt when a source or the installed packages changed.
xinim_codecache=(xinim_host/lib/__pycache__/codecache.*.marshal)
if [ ! -e "${xinim_codecache[0]}" ] || [ .venv/.deps-stamp -nt "${xinim_codecache[0]}" ] \
        || [ -n "$(find xinim_host -name '*.py' -newer "${xinim_codecache[0]}" -print -quit)" ]; then
    .venv/bin/python -m xinim_host.cli.precompile >/dev/null
fi
