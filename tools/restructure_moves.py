"""Issue 16's package layout as a script: the old -> new module map, the `git mv`s, and the import rewrite.

    python tools/restructure_moves.py apply            # on the OLD flat layout: absolutize, git mv, rewrite all
    python tools/restructure_moves.py rewrite FILE...  # on the NEW layout: rewrite old `datatune_core.X` paths
    python tools/restructure_moves.py rewrite --move review_loop=transformation.review_loop FILE...
    python tools/restructure_moves.py map              # print the map

`rewrite` is what another branch runs after merging the restructure: it turns relative imports of the given files
into absolute ones (computed from where each file is *now*), then maps every `datatune_core.<old>` dotted path (imports,
strings such as monkeypatch targets and "module:function" kinds, docstrings) and `datatune_core/<old>.py` path to its
new home. `--move old=new` (repeatable) adds a module of your own to the map and `git mv`s it there first... after
the rewrite, so its relative imports are resolved from its old place. Re-running on already-rewritten text changes
nothing: a dotted path that names an existing new module is left alone.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = "datatune_core"

# old module (relative to datatune_core) -> new module. A package entry (commands) maps its submodules too.
MOVES: dict[str, str] = {
    # store: the workspace database and what lives in it
    "migrations": "store.migrations",
    "curation": "store.curation",
    "reasons": "store.reasons",
    # benchmark: BIG-bench units read from ../shared
    "bigbench": "benchmark.bigbench",
    # catalog: dataset records from bundled catalogs, local files and the Hub
    "catalog": "catalog.records",
    "hub": "catalog.hub",
    "localfiles": "catalog.localfiles",
    # retrieval: task -> ranked datasets
    "searchindex": "retrieval.index",
    "searchscore": "retrieval.score",
    "queryparse": "retrieval.query",
    "rerank": "retrieval.rerank",
    "retrieve": "retrieval.search",
    # transformation: source rows -> task rows (DataTune steps 1-6)
    "expand": "transformation.expand",
    "schema": "transformation.schema",
    "plan": "transformation.plan",
    "template": "transformation.template",
    "execute": "transformation.execute",
    "validate": "transformation.validate",
    "mix": "transformation.mix",
    "transform": "transformation.pipeline",
    "transform_run": "transformation.run",
    # synth: Prompt2Model-style synthetic rows
    "synth": "synth.generate",
    # quality: profile of a dataset
    "quality": "quality.profiling",
    "diversity": "quality.diversity",
    "judge": "quality.judge",
    "charts": "quality.charts",
    # evaluation: test sets, prompts, scoring
    "prompting": "evaluation.prompting",
    "scoring": "evaluation.scoring",
    "testset": "evaluation.testset",
    "evaluate": "evaluation.bigbench_eval",
    "projecteval": "evaluation.project",
    # training
    "train": "training.trainer",
    # exporting: files, models, recipes, trying the model
    "export": "exporting.artifacts",
    "model_export": "exporting.model",
    "gguf_export": "exporting.gguf",
    "chat": "exporting.chat",
    "recipe": "exporting.recipe",
    "portable": "exporting.portable",  # whole-project export/import (it checks job kinds against the registry)
    "store.portable": "exporting.portable",  # where the first restructure commits had put it
    # cli (cli.py itself becomes cli/__init__.py, see INIT_MOVES)
    "commands": "cli.commands",
    # the test double leaves the product's provider package
    "llm.scripted": "testing",
}

# old modules whose content becomes the __init__ of a package of the same name (their dotted path is unchanged)
INIT_MOVES = ["store", "cli"]

TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".yml", ".yaml", ".cfg", ".txt", ".ini", ".json"}
SCAN = ["datatune_core", "datatune_ui", "app_pages", "tests", "bench", "tools", "docs", ".ci", "app.py", "studio.sh",
        "pyproject.toml", "README.md"]
DOTTED = re.compile(r"\bdatatune_core(?:\.[A-Za-z_]\w*)+")
SLASHED = re.compile(r"\bdatatune_core/(?:[A-Za-z_]\w*/)*[A-Za-z_]\w*(?:\.py|/)?")


def full(m: str) -> str:
    return f"{PKG}.{m}"


def split_homes(root: Path = ROOT) -> dict[str, dict[str, str]]:
    """module that was split -> {name: the part that holds it now} (tools/splits/*.json, see split_module.py)."""
    out: dict[str, dict[str, str]] = {}
    for f in sorted((root / "tools" / "splits").glob("*.json")):
        doc = json.loads(f.read_text())
        out[doc["split"]] = {n: part for part, v in doc["parts"].items() for n in v["names"]}
    return out


class Resolver:
    def __init__(self, moves: dict[str, str], root: Path = ROOT):
        self.old = {full(k): full(v) for k, v in moves.items()}
        self.root = root
        self.splits = split_homes(root) if moves else {}

    def home(self, module: str, name: str) -> str:
        """Where `module`'s top-level `name` lives now (a split module's part, else the module)."""
        return self.splits.get(module, {}).get(name, module)

    def exists(self, dotted: str) -> bool:
        p = self.root / Path(*dotted.split("."))
        return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()

    def resolve(self, dotted: str) -> str:
        parts = dotted.split(".")
        old_len = max((n for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in self.old), default=0)
        if not old_len:
            return self._split(dotted)
        new_len = max((n for n in range(1, len(parts) + 1) if self.exists(".".join(parts[:n]))), default=0)
        if new_len > old_len:  # already names a module of the new layout
            return self._split(dotted)
        return self._split(".".join([self.old[".".join(parts[:old_len])], *parts[old_len:]]))

    def _split(self, dotted: str) -> str:
        for mod, homes in self.splits.items():
            if dotted.startswith(mod + ".") and dotted[len(mod) + 1:].split(".")[0] in homes:
                rest = dotted[len(mod) + 1:]
                return f"{homes[rest.split('.')[0]]}.{rest}"
        return dotted

    def is_module(self, dotted: str) -> bool:
        return self.exists(self.resolve(dotted))


def module_of(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    rel = path.resolve().relative_to(root).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def absolute_from(path: Path, level: int, module: str | None, root: Path = ROOT) -> str:
    mod, is_pkg = module_of(path, root)
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def _line_offsets(text: str) -> list[int]:
    offs, n = [0], 0
    for line in text.splitlines(keepends=True):
        n += len(line)
        offs.append(n)
    return offs


def _emit_from(indent: str, module: str, names: list[tuple[str, str | None]]) -> str:
    items = [n if a is None or a == n else f"{n} as {a}" for n, a in names]
    one = f"from {module} import {', '.join(items)}"
    if len(indent) + len(one) <= 120:
        return one
    return f"from {module} import (" + (",\n" + indent + "    ").join(items) + ")"


def rewrite_python(text: str, path: Path, r: Resolver) -> str:
    """Absolutize relative imports (from the file's current place), then map old paths in imports and text."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return rewrite_text(text, r)
    offs = _line_offsets(text)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                mod = absolute_from(path, node.level, node.module, r.root)
            else:
                mod = node.module or ""
            if not (mod == PKG or mod.startswith(PKG + ".")):
                continue
            start = offs[node.lineno - 1] + node.col_offset
            end = offs[node.end_lineno - 1] + node.end_col_offset
            indent = " " * node.col_offset
            groups: dict[str, list[tuple[str, str | None]]] = {}
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if a.name != "*" and r.is_module(sub):  # `from pkg import module`
                    new = r.resolve(sub)
                    parent, last = new.rsplit(".", 1)
                    groups.setdefault(parent, []).append((last, a.asname or (a.name if last != a.name else None)))
                else:
                    target = r.resolve(mod)
                    groups.setdefault(r.home(target, a.name), []).append((a.name, a.asname))
            lines = [_emit_from(indent, m, ns) for m, ns in groups.items()]
            new_src = ("\n" + indent).join(lines)
            old_src = text[start:end]
            if len(groups) == 1 and not node.level:  # keep the statement's own formatting when only the module moves
                (m,) = groups
                if m == mod and all(n == a.name for (n, _), a in zip(groups[m], node.names)):
                    edits.append((start, end, old_src))  # unchanged, and protected from the text pass
                    continue
                if all(n == a.name for (n, _), a in zip(groups[m], node.names)):
                    new_src = re.sub(rf"^from\s+{re.escape(mod)}\b", f"from {m}", old_src)
            elif len(groups) == 1 and node.level:
                (m,) = groups
                if all(n == a.name for (n, _), a in zip(groups[m], node.names)):
                    new_src = re.sub(r"^from\s+\.+[\w.]*", f"from {m}", old_src)
            edits.append((start, end, new_src))
        elif isinstance(node, ast.Import):
            if not any(a.name == PKG or a.name.startswith(PKG + ".") for a in node.names):
                continue
            start = offs[node.lineno - 1] + node.col_offset
            end = offs[node.end_lineno - 1] + node.end_col_offset
            new_src = "import " + ", ".join(r.resolve(a.name) + (f" as {a.asname}" if a.asname else "")
                                            for a in node.names)
            if new_src != text[start:end]:
                edits.append((start, end, new_src))
            else:
                edits.append((start, end, text[start:end]))  # protect it from the text pass
    # text pass everywhere except the import statements handled above
    out, pos = [], 0
    for start, end, new_src in sorted(edits):
        out.append(rewrite_text(text[pos:start], r))
        out.append(new_src)
        pos = end
    out.append(rewrite_text(text[pos:], r))
    return "".join(out)


API = {"Project", "search", "transform", "train", "evaluate", "export"}  # datatune_core's public functions


KEEP = "restructure: keep"  # a line with this marker keeps its old paths (e.g. the mapping of old job kinds)


def rewrite_text(text: str, r: Resolver) -> str:
    if KEEP in text:
        return "".join(line if KEEP in line else rewrite_text(line, r) for line in text.splitlines(keepends=True))

    def dotted(m: re.Match) -> str:
        s = m.group(0)
        if s.count(".") == 1 and s.split(".")[1] in API and text[m.end():m.end() + 1] == "(":
            return s  # a call of the public API (datatune_core.train(...)), not the old module
        return r.resolve(s)
    text = DOTTED.sub(dotted, text)
    for mod, homes in r.splits.items():  # "module:function" strings of a split module (job kinds)
        text = re.sub(rf"\b{re.escape(mod)}:([A-Za-z_]\w*)", lambda m: f"{homes.get(m.group(1), mod)}:{m.group(1)}", text)

    def slashed(m: re.Match) -> str:
        s = m.group(0)
        tail = "/" if s.endswith("/") else (".py" if s.endswith(".py") else "")
        core = s[: len(s) - len(tail)] if tail else s
        dotted = core.replace("/", ".")
        new = r.resolve(dotted)
        if new == dotted:
            return s
        np = new.replace(".", "/")
        if tail == ".py" or (not tail and r.exists(new) and not (r.root / np).is_dir()):
            return np + (".py" if tail == ".py" else "")
        return np + tail
    return SLASHED.sub(slashed, text)


SELF = ("restructure_moves.py", "test_restructure_map.py")  # the map and its test keep their old-layout examples


def files_to_scan(root: Path = ROOT) -> list[Path]:
    out = []
    for name in SCAN:
        p = root / name
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += [f for f in p.rglob("*") if f.is_file() and f.suffix in TEXT_SUFFIXES | {""}
                    and "__pycache__" not in f.parts and f.name not in SELF]
    return [f for f in out if f.suffix in TEXT_SUFFIXES or f.name in ("run",)]


def git_mv(old: Path, new: Path) -> None:
    new.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "mv", str(old), str(new)], check=True, cwd=ROOT)


def ensure_package(d: Path) -> None:
    while d != ROOT / PKG and d.is_relative_to(ROOT / PKG):
        init = d / "__init__.py"
        if not init.exists():
            d.mkdir(parents=True, exist_ok=True)
            init.write_text(f'"""{d.name}."""\n')
            subprocess.run(["git", "add", str(init)], check=True, cwd=ROOT)
        d = d.parent


def move(moves: dict[str, str]) -> None:
    base = ROOT / PKG
    for old, new in moves.items():
        src = base / Path(*old.split("."))
        dst = base / Path(*new.split("."))
        if (src / "__init__.py").exists():  # a package: move the folder
            ensure_package(dst.parent)
            git_mv(src, dst)
            continue
        src = src.with_suffix(".py")
        if not src.exists():
            continue
        if (base / Path(*new.split("."))).is_dir():
            dst = dst / "__init__.py"
        else:
            dst = dst.with_suffix(".py")
        ensure_package(dst.parent)
        git_mv(src, dst)


def absolutize_all(files: list[Path], r: Resolver) -> dict[Path, str]:
    """Relative imports -> absolute, computed at the files' current (old) places (no mapping yet)."""
    ident = Resolver({}, r.root)
    return {f: rewrite_python(f.read_text(), f, ident) for f in files if f.suffix == ".py"}


def apply(moves: dict[str, str]) -> None:
    files = files_to_scan()
    py_in_pkg = [f for f in files if f.suffix == ".py" and f.is_relative_to(ROOT / PKG)]
    for f, text in absolutize_all(py_in_pkg, Resolver(moves)).items():
        f.write_text(text)
    for name in INIT_MOVES:
        src = ROOT / PKG / f"{name}.py"
        if src.exists():
            git_mv(src, ROOT / PKG / name / "__init__.py")
    move(moves)
    r = Resolver(moves)
    for f in files_to_scan():
        rewrite_file(f, r)


def rewrite_file(f: Path, r: Resolver) -> bool:
    text = f.read_text()
    new = rewrite_python(text, f, r) if f.suffix == ".py" else rewrite_text(text, r)
    if new != text:
        f.write_text(new)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("apply")
    sub.add_parser("map")
    rw = sub.add_parser("rewrite")
    rw.add_argument("--move", action="append", default=[], help="OLD=NEW module names relative to datatune_core")
    rw.add_argument("files", nargs="*", type=Path, help="files to rewrite (default: every scanned file)")
    a = ap.parse_args(argv)
    if a.cmd == "map":
        for k, v in MOVES.items():
            print(f"{PKG}.{k} -> {PKG}.{v}")
        return 0
    if a.cmd == "apply":
        apply(MOVES)
        return 0
    extra = dict(x.split("=", 1) for x in a.move)
    moves = {**MOVES, **extra}
    files = [f.resolve() for f in a.files] or files_to_scan()
    # relative imports first, from where the files are now
    for f, text in absolutize_all([f for f in files if f.suffix == ".py"], Resolver(moves)).items():
        f.write_text(text)
    if extra:
        move(extra)
        moved = {ROOT / PKG / Path(*o.split(".")).with_suffix(".py"): ROOT / PKG / Path(*n.split(".")).with_suffix(".py")
                 for o, n in extra.items()}
        files = [moved.get(f, f) for f in files]
        if not a.files:
            files = files_to_scan()
    r = Resolver(moves)
    changed = [f for f in files if f.exists() and rewrite_file(f, r)]
    for f in changed:
        print(f"rewrote {f.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
