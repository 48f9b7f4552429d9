"""The house rules, checked: imports point one way, the core speaks no HTTP, functions stay short.

LAYERS is the architecture in one table (README → Architecture): a module may import
modules of its own layer or of layers above it in this list, never below.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"

LAYERS = [
    # the core: maths, data, one session's training, frames; no HTTP
    [
        "app.errors",
        "app.numbers",
        "app.settings",
        "app.i18n",
        "app.presets",
        "app.netaddr",
        "app.ratelimit",
        "app.node",
    ],
    ["app.nn", "app.data"],
    ["app.schema", "app.state", "app.budget"],
    ["app.querycodec", "app.timeline", "app.layout", "app.export", "app.protocol", "app.page_constants"],
    ["app.training", "app.structure"],
    ["app.frames", "app.snapshot_format", "app.lessons"],
    ["app.worker"],
    # the server process: worker processes, the session and snapshot stores, the actions
    [
        "app.worker_process",
        "app.snapshots",
        "app.snapshot_contract",
        "app.snapshot_sqlite",
        "app.snapshot_postgres",
        "app.relay",
    ],
    ["app.lifecycle", "app.pace"],
    ["app.store"],
    ["app.control", "app.broadcast"],
    # the web layer
    ["app.routes", "app.routes.deps", "app.routes.errors", "app.routes.render"],
    [
        "app.middleware",
        "app.streamguard",
        "app.origin",
        "app.routes.api",
        "app.routes.ui",
        "app.routes.pages",
        "app.routes.classroom",
        "app.routes.snapshots",
        "app.routes.events",
        "app.routes.meta",
        "app.routes.lessons",
        "app.metrics",
    ],
    ["app.main", "app.server", "app.__main__", "app.connguard", "app.logfilter"],
]
CORE = [
    "app.nn",
    "app.data",
    "app.schema",
    "app.training",
    "app.frames",
    "app.timeline",
    "app.worker",
    "app.protocol",
    "app.structure",
    "app.snapshot_format",
    "app.state",
    "app.errors",
    "app.settings",
    "app.node",
    "app.lessons",
]
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of a module: its own entry, or its nearest package's (app.nn.mlp is in app.nn)."""
    matches = [
        (len(n), i) for i, names in enumerate(LAYERS) for n in names if module == n or module.startswith(n + ".")
    ]
    assert matches, f"{module} is in no layer of LAYERS: add it where it belongs"
    return max(matches)[1]


def imports_of(path: Path) -> set[str]:
    """Every app module the file imports, at top level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("app")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            found.add(node.module)
            # `from app import protocol` imports the module app.protocol
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if (APP.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
            }
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in APP.rglob("*.py")}


def test_every_import_points_to_the_same_or_a_lower_layer():
    upward = [(m, i) for m, deps in graph().items() for i in deps if i != "app" and layer_of(i) > layer_of(m)]
    assert upward == []


def test_the_import_graph_has_no_loops():
    full = graph()
    g = {m: {d for d in deps if d in full} for m, deps in full.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for d in sorted(g[m]):
            if d.startswith(m + "."):  # a package importing its own submodule is not a loop
                continue
            if state.get(d) == 1:
                return path + [m, d]
            if d not in state and (loop := visit(d, path + [m])):
                return loop
        state[m] = 2
        return None

    loops = [loop for m in sorted(g) if m not in state and (loop := visit(m, []))]
    assert loops == []


def test_the_core_imports_no_web_framework():
    code = (
        "import sys, importlib\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'uvicorn', 'httpx'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append((module_name(path), node.name, lines))
    assert long == []


def test_the_layer_table_names_only_modules_that_exist():
    modules = set(graph())
    missing = [n for names in LAYERS for n in names if not any(m == n or m.startswith(n + ".") for m in modules)]
    assert missing == []
