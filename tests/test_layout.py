"""The house plan, checked from the source: stage packages whose imports flow one way, no cycles, no private names
used across modules, no module over 400 lines, settings read only in `core.config`."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# core's floors, bottom first: a module may import its own unit and the floors below it, never one above or a
# neighbour on its own floor. (A unit is a top-level module of core or one of its stage packages.)
FLOORS = [
    {"core.errors", "core.types"},
    {"core.languages"},
    {"core.config"},
    {"core.options"},
    {"core.transcriber"},
    {"core.models", "core.fetch", "core.audio"},
    {"core.asr"},
    {"core.align", "core.diarize"},
    {"core.output"},
    {"core.remote"},
    {"core.pipeline"},
    {"core.batch"},
    {"core.cli"},
    {"core", "core.__main__"},
]
FLOOR = {unit: i for i, units in enumerate(FLOORS) for unit in units}
FRONT_ENDS = ("webui", "runpod_worker", "bench", "tests", "app")


def python_files(*tops: str) -> list[Path]:
    files = []
    for top in tops:
        path = ROOT / top
        files += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(name: str) -> bool:
    return (ROOT / name.replace(".", "/") / "__init__.py").exists()


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if is_package(here) else here.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def core_edges() -> dict[str, set[str]]:
    """Module -> the core modules it imports (a `from package import module` counts as the module)."""
    edges = {}
    for path in python_files("core"):
        src, targets = module_name(path), set()
        for module, names, _ in imports(path):
            if module != "core" and not module.startswith("core."):
                continue
            subs = [f"{module}.{n}" for n in names if is_package(module) and
                    (ROOT / module.replace(".", "/") / f"{n}.py").exists()]
            targets.update(subs or [module])
        edges[src] = targets - {src}
    return edges


def test_every_core_module_sits_on_a_floor():
    units = {unit(module_name(p)) for p in python_files("core")}
    assert units <= set(FLOOR), f"give these a floor in FLOORS: {sorted(units - set(FLOOR))}"


def test_imports_never_run_back_up_a_floor_or_sideways():
    wrong = []
    for src, targets in core_edges().items():
        for dst in targets:
            a, b = unit(src), unit(dst)
            if a != b and FLOOR[b] >= FLOOR[a] and not (a == "core" and b != "core"):
                wrong.append(f"{src} -> {dst}")
    assert not wrong, wrong


def test_core_never_imports_a_front_end():
    wrong = [f"{module_name(p)}:{line} imports {m}" for p in python_files("core") for m, _, line in imports(p)
             if m.split(".")[0] in FRONT_ENDS]
    assert not wrong, wrong


def test_no_import_cycles():
    edges = core_edges()
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def private_uses(path: Path) -> list[str]:
    """`from x import _name`, and `module._name` where `module` was imported as a module."""
    tree = ast.parse(path.read_text(), str(path))
    found, module_aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
                if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists():
                    module_aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            module_aliases.update(a.asname for a in node.names if a.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in module_aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_name_is_used_across_modules():
    wrong = {str(p.relative_to(ROOT)): uses for p in python_files("core", "webui", "runpod_worker", "bench",
                                                                      "tests", "app.py")
             if (uses := private_uses(p))}
    assert not wrong, wrong


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in python_files("core", "webui", "runpod_worker", "bench", "tests",
                                                               "builder", "app.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_settings_are_read_only_in_config():
    wrong = []
    for path in python_files("core", "webui", "runpod_worker", "app.py"):
        if path == ROOT / "core" / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                    and isinstance(node.value, ast.Name) and node.value.id == "os"):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, wrong


def test_each_stage_is_a_package_named_for_it():
    stages = ["fetch", "audio", "asr", "align", "output", "remote", "models"]
    assert all(is_package(f"core.{s}") for s in stages)
    flat = sorted(p.stem for p in (ROOT / "core").glob("*.py"))
    assert flat == ["__init__", "__main__", "cli", "config", "errors", "languages", "options", "pipeline",
                    "transcriber", "types"]
