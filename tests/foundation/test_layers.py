"""The import graph of `datatune_core`: packages import only downwards, no circles, never streamlit or the UI.

Every `import` counts, also those inside functions (ast over all files). The layer order below is the one place it
is defined; docs/architecture.md ("Packages") describes it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "datatune_core"

# lowest first: a unit may import itself and the units before it, never one after it
LAYERS = [
    "text", "errors", "config", "spec",      # foundation: no engine imports
    "store",                                  # workspace database
    "models", "llm",                          # causal LMs, the LLM layer (never the job runner: JobPaused is in errors)
    "jobs",                                   # background jobs: the kind registry, workers, progress
    "benchmark", "catalog", "leakage",        # evaluation units, dataset catalogs, the one leakage guard
    "retrieval", "transformation", "synth", "quality", "evaluation", "training", "exporting",  # the pipeline
    "api",                                    # datatune_core/__init__ + api.py: the library's public functions
    "cli",                                    # the `datatune` command line
    "testing",                                # test doubles: imported by tests only
]
RANK = {u: i for i, u in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(mod: str) -> str:
    parts = mod.split(".")
    if len(parts) == 1:
        return "api"
    return parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    mod = module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from pkg import module` imports the module; `from mod import name`, the module
                sub = ROOT / Path(*f"{target}.{a.name}".split("."))
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                out.append((node.lineno, f"{target}.{a.name}" if is_module else target))
    return out


def engine_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def unit_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in engine_files():
        src = unit(module_name(p))
        for line, target in imports(p):
            if target == "datatune_core" or target.startswith("datatune_core."):
                dst = unit(target)
                if dst != src:
                    edges[(src, dst)].append(f"{p.relative_to(ROOT)}:{line} imports {target}")
    return edges


def test_every_unit_has_a_layer():
    units = {unit(module_name(p)) for p in engine_files()}
    assert units - set(LAYERS) == set(), "add new packages/modules to LAYERS"


def test_imports_only_point_down():
    upward = [w for (src, dst), where in unit_edges().items() if RANK[dst] > RANK[src] for w in where]
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def test_no_circles_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in unit_edges():
        graph[src].add(dst)
    seen: dict[str, int] = {}
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        seen[n] = 1
        for m in graph[n]:
            if seen.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m] if m in stack else [n, m])
            elif m not in seen:
                visit(m, stack + [m])
        seen[n] = 2

    for n in list(graph):
        if n not in seen:
            visit(n, [n])
    assert cycles == []


def test_engine_never_imports_streamlit_or_the_ui():
    bad = [f"{p.relative_to(ROOT)}:{line} {t}" for p in engine_files() for line, t in imports(p)
           if t.split(".")[0] in ("streamlit", "datatune_ui", "app_pages")]
    assert bad == []


def test_the_product_never_imports_the_test_double():
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in engine_files() if unit(module_name(p)) != "testing"
           for line, t in imports(p) if t == "datatune_core.testing"]
    for extra in ("datatune_ui", "app_pages"):
        for p in (ROOT / extra).rglob("*.py"):
            bad += [f"{p.relative_to(ROOT)}:{line}" for line, t in imports(p) if t == "datatune_core.testing"]
    assert bad == []


def test_the_checker_sees_function_level_imports(tmp_path):
    """A guard against a checker that cannot fail: an import inside a function is found."""
    f = PKG / "store" / "rows.py"
    found = [t for _, t in imports(f)]
    assert "datatune_core.store.curation" in found or any(t.startswith("datatune_core.store.curation") for t in found)
