"""The architecture as a test: subpackages import only downward (function-level
and TYPE_CHECKING imports included), so there is no cycle between them.

    lib                      protocol, lattice IPC, transport, server base, numbers
    intercept                ptrace + seccomp mechanism (no XINIM semantics)
    kernel                   dispatcher, call handlers, trap policy (on lib, intercept)
    uart                     the UART model and the consoles (terminal.py) on it
    vfs_fuse pm mm net       the servers (on lib; the VFS serves consoles from uart)
    system                   boot, join, console: assembles a system
    cli                      the commands
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "xinim_host"

# what each subpackage may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "lib": set(),
    "intercept": set(),
    "kernel": {"lib", "intercept"},
    "vfs_fuse": {"lib", "uart"},
    "pm": {"lib"},
    "mm": {"lib"},
    "net": {"lib"},
    "uart": {"lib"},
    "system": {"lib", "kernel", "intercept", "vfs_fuse", "pm", "mm", "net", "uart"},
    "cli": {"lib", "kernel", "intercept", "vfs_fuse", "pm", "mm", "net", "uart", "system"},
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported xinim_host subpackage) for every import in the file,
    wherever it is (module level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg_parts = list(path.relative_to(ROOT).parent.parts)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[:len(pkg_parts) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                if not target:   # "from .. import x" at the top: x is the subpackage
                    target = [a.name for a in node.names][:1]
            elif node.module and node.module.split(".")[0] == "xinim_host":
                target = node.module.split(".")[1:] or [a.name for a in node.names][:1]
            else:
                continue
            out.append((node.lineno, target[0] if target else ""))
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "xinim_host" and len(parts) > 1:
                    out.append((node.lineno, parts[1]))
    return out


def test_every_subpackage_is_known() -> None:
    pkgs = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert pkgs == set(ALLOWED)


def test_no_module_outside_a_layer() -> None:
    # a module straight under xinim_host/ (or a folder without __init__.py) would
    # belong to no layer, and the checks below would pass it by
    loose = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                   if p.name != "__init__.py" and _package_of(p) not in ALLOWED)
    assert not loose, f"modules in no layer of ALLOWED: {loose}"


def test_imports_only_go_down() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        me = _package_of(path)
        if not me:
            continue
        for line, target in _imports(path):
            if target and target != me and target not in ALLOWED[me]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {me} -> {target}")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_no_cycle_between_subpackages() -> None:
    edges: dict[str, set[str]] = {p: set() for p in ALLOWED}
    for path in ROOT.rglob("*.py"):
        me = _package_of(path)
        if me:
            edges[me] |= {t for _, t in _imports(path) if t and t != me and t in edges}
    seen: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        seen[n] = 1
        for m in edges[n]:
            assert seen.get(m) != 1, "cycle: " + " -> ".join(stack + [n, m])
            if m not in seen:
                visit(m, stack + [n])
        seen[n] = 2

    for n in edges:
        if n not in seen:
            visit(n, [])
