"""Split one module into several along top-level definitions, and rewrite every importer of the moved names.

    python tools/split_module.py tools/splits/training.json

The JSON names the module ("split") and maps each new module ("parts") to {"doc": its docstring, "names": the
top-level names it takes}; names not listed stay. tools/restructure_moves.py reads the same files, so code written
against the old layout finds each name in its part. Each part gets its docstring, the imports it uses, and imports of the names it needs from the others.
Importers (`from M import a, b`), dotted strings ("M.a", "M:a": monkeypatch targets, job kinds) are rewritten.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from restructure_moves import files_to_scan  # noqa: E402


def bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _annotations(x: ast.AST) -> list[ast.expr]:
    if isinstance(x, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = x.args
        return [y.annotation for y in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                if y is not None and y.annotation is not None] + ([x.returns] if x.returns else [])
    if isinstance(x, ast.AnnAssign):
        return [x.annotation]
    return []


def used_names(nodes: list[ast.stmt]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        for x in ast.walk(n):
            if isinstance(x, ast.Name):
                out.add(x.id)
            for ann in _annotations(x):  # quoted annotations ("Store") name things too
                for c in ast.walk(ann):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str):
                        try:
                            out |= {y.id for y in ast.walk(ast.parse(c.value, mode="eval")) if isinstance(y, ast.Name)}
                        except SyntaxError:
                            pass
    return out


def import_binds(node: ast.stmt) -> list[str]:
    return [(a.asname or a.name).split(".")[0] for a in node.names]


def split(path: Path, parts: dict[str, list[str]], docs: dict[str, str] | None = None) -> dict[str, str]:
    src = path.read_text()
    lines = src.splitlines(keepends=True)
    tree = ast.parse(src)
    mod = ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts)
    owner = {name: new for new, names in parts.items() for name in names}
    doc = ast.get_docstring(tree) or ""
    body = tree.body[1:] if doc else tree.body
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
    # statement -> part; a statement's leading comment lines travel with it
    chunks: dict[str, list[tuple[ast.stmt, str]]] = {mod: []}
    prev_end = max((n.end_lineno for n in imports), default=(tree.body[0].end_lineno if doc else 0))
    for n in body:
        if n in imports:
            continue
        start = n.lineno - 1 if not getattr(n, "decorator_list", None) else n.decorator_list[0].lineno - 1
        j = start
        while j > prev_end and (lines[j - 1].lstrip().startswith("#") or not lines[j - 1].strip()):
            j -= 1
        text = "".join(lines[j:n.end_lineno]).strip("\n") + "\n"
        names = bound_names(n)
        dest = owner.get(names[0], mod) if names else (
            mod if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) else mod)
        if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test):
            dest = owner.get("main", mod)
        chunks.setdefault(dest, []).append((n, text))
        prev_end = n.end_lineno
    defined = {p: {x for n, _ in ch for x in bound_names(n)} for p, ch in chunks.items()}
    out: dict[str, str] = {}
    for part, ch in chunks.items():
        nodes = [n for n, _ in ch]
        used = used_names(nodes)
        head = ['"""' + (doc.split("\n")[0] if part == mod else (docs or {}).get(part, _part_doc(part, doc))) + '"""\n\n',
                "from __future__ import annotations\n\n"]
        imps = []
        for n in imports:
            if isinstance(n, ast.ImportFrom) and n.module == "__future__":
                continue
            keep = [a for a in n.names if (a.asname or a.name).split(".")[0] in used]
            if not keep:
                continue
            if isinstance(n, ast.Import):
                imps.append("import " + ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep))
            else:
                imps.append(f"from {'.' * n.level}{n.module or ''} import "
                            + ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep))
        for other, names in defined.items():
            if other == part:
                continue
            need = sorted(x for x in names if x in used and x not in defined[part])
            if need:
                imps.append(f"from {other} import {', '.join(need)}")
        std = [i for i in imps if not i.startswith(("from datatune_core", "from ."))]
        own = [i for i in imps if i not in std]
        text = "".join(head) + "\n".join(std) + ("\n\n" if std and own else "") + "\n".join(own) + "\n\n\n" \
            + "\n\n".join(t.rstrip("\n") + "\n" for _, t in ch)
        if part == mod and doc:  # the original module keeps its whole docstring
            text = '"""' + doc + '\n"""\n\n' + text.split("\n\n", 1)[1]
        out[part] = text
    return out


def _part_doc(part: str, doc: str) -> str:
    return f"Part of {doc.split(chr(10))[0][:60].rstrip('.')} — see the package docstring."


def rewrite_importers(mod: str, owner: dict[str, str]) -> list[Path]:
    changed = []
    pat = re.compile(rf"\b{re.escape(mod)}([.:])([A-Za-z_]\w*)")
    for f in files_to_scan():
        text = f.read_text()
        new = text
        if f.suffix == ".py":
            try:
                tree = ast.parse(text)
            except SyntaxError:
                tree = None
            if tree is not None:
                offs = [0]
                for line in text.splitlines(keepends=True):
                    offs.append(offs[-1] + len(line))
                edits = []
                for n in ast.walk(tree):
                    if isinstance(n, ast.ImportFrom) and n.module == mod and not n.level:
                        groups: dict[str, list[str]] = {}
                        for a in n.names:
                            groups.setdefault(owner.get(a.name, mod), []).append(
                                a.name + (f" as {a.asname}" if a.asname else ""))
                        if set(groups) == {mod}:
                            continue
                        ind = " " * n.col_offset
                        stmt = ("\n" + ind).join(f"from {m} import {', '.join(ns)}" for m, ns in groups.items())
                        edits.append((offs[n.lineno - 1] + n.col_offset, offs[n.end_lineno - 1] + n.end_col_offset,
                                      stmt))
                for s, e, t in sorted(edits, reverse=True):
                    new = new[:s] + t + new[e:]
        new = pat.sub(lambda m: f"{owner.get(m.group(2), mod)}{m.group(1)}{m.group(2)}", new)
        if new != text:
            f.write_text(new)
            changed.append(f)
    return changed


ORIGINAL: list[str] = []


def main() -> int:
    doc = json.loads(Path(sys.argv[1]).read_text())
    raw = doc["parts"]
    path = ROOT / Path(*doc["split"].split(".")).with_suffix(".py")
    ORIGINAL.append(path.read_text())
    mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    spec = {k: v["names"] for k, v in raw.items()}
    parts = split(path, spec, {k: v["doc"] for k, v in raw.items()})
    for part, text in parts.items():
        p = ROOT / Path(*part.split(".")).with_suffix(".py")
        p.write_text(text)
        if (ROOT / ".git").exists():
            subprocess.run(["git", "add", str(p)], cwd=ROOT, check=True)
    owner = {name: new for new, names in spec.items() for name in names}
    # names the module only imported (from datatune_core.x import y): importers get them from their own home
    for n in ast.parse(path.read_text() if False else ORIGINAL[0]).body:
        if isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").startswith("datatune_core"):
            for a in n.names:
                owner.setdefault(a.asname or a.name, n.module)
    for f in rewrite_importers(mod, owner):
        print("rewrote", f.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
