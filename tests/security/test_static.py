"""Static security checks over the repository's own Python (no .venv): HTML escaping in the UI, no shell, no
unpickling, templates only in jinja2's sandbox, and a local-only, XSRF-protected server with an upload cap."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UI = ("app.py", "app_pages", "pages", "datatune_ui")  # the Streamlit front end (pages moved to app_pages/)
SKIP_DIRS = {".venv", ".git", "build", "dist", "__pycache__", "node_modules", ".streamlit"}


def py_files(*roots: str) -> list[Path]:
    out = []
    for r in roots or (".",):
        base = ROOT / r
        if not base.exists():
            continue
        if base.is_file():
            out.append(base)
            continue
        for p in base.rglob("*.py"):
            if not (set(p.relative_to(ROOT).parts) & SKIP_DIRS) and ".egg-info" not in str(p):
                out.append(p)
    return sorted(out)


def calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def kw(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def is_const(node: ast.expr | None, value=None) -> bool:
    return isinstance(node, ast.Constant) and (value is None or node.value is value)


def static_text(node: ast.expr | None) -> bool:
    """A literal string (or an f-string/concatenation made only of literals)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return static_text(node.left) and static_text(node.right)
    return False


def where(p: Path, node: ast.AST) -> str:
    return f"{p.relative_to(ROOT)}:{node.lineno}"


def test_repo_has_python_to_check():
    assert len(py_files("datatune_core")) > 20 and len(py_files("app_pages", "pages")) >= 7 and py_files("datatune_ui")


def test_no_unsafe_allow_html_on_dynamic_text():
    """User and LLM text is only rendered escaped: unsafe_allow_html only ever on a literal string."""
    bad = []
    for p in py_files(*UI):
        for c in calls(p):
            v = kw(c, "unsafe_allow_html")
            if v is None or is_const(v, False):
                continue
            body = c.args[0] if c.args else kw(c, "body")
            if not static_text(body):
                bad.append(where(p, c))
    assert not bad, f"unsafe_allow_html with non-literal content: {bad}"


def test_subprocesses_take_argv_lists_never_a_shell():
    bad = []
    for p in py_files():
        for c in calls(p):
            name = dotted(c.func)
            shell = kw(c, "shell")
            if shell is not None and not is_const(shell, False):
                bad.append(f"{where(p, c)} shell=...")
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                        "os.execl", "os.execlp", "os.spawnl"):
                bad.append(f"{where(p, c)} {name}")
            if name.split(".")[-1] in ("run", "Popen", "call", "check_call", "check_output") and \
                    name.startswith(("subprocess", "sp")) and c.args and \
                    isinstance(c.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                bad.append(f"{where(p, c)} {name}(<string command>)")
    assert not bad, f"shell-style subprocess calls: {bad}"


def test_no_unpickling():
    """No pickle/joblib/dill loads anywhere; torch.load only with weights_only=True; np.load never allow_pickle."""
    bad = []
    for p in py_files():
        for c in calls(p):
            name = dotted(c.func)
            last = name.split(".")[-1]
            if name in ("pickle.load", "pickle.loads", "cPickle.load", "joblib.load", "dill.load", "dill.loads",
                        "pd.read_pickle", "pandas.read_pickle", "shelve.open") or \
                    (last in ("Unpickler",) and "pickle" in name):
                bad.append(f"{where(p, c)} {name}")
            if name.endswith("torch.load"):
                if not is_const(kw(c, "weights_only"), True):
                    bad.append(f"{where(p, c)} torch.load without weights_only=True")
            if last == "load" and name.startswith(("np.", "numpy.")) and is_const(kw(c, "allow_pickle"), True):
                bad.append(f"{where(p, c)} np.load(allow_pickle=True)")
    assert not bad, f"unpickling of files: {bad}"


def test_templates_only_in_the_jinja2_sandbox():
    bad = []
    for p in py_files("datatune_core", *UI):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "jinja2":
                for a in node.names:
                    if a.name in ("Environment", "Template", "NativeEnvironment"):
                        bad.append(f"{where(p, node)} from jinja2 import {a.name}")
            if isinstance(node, ast.Call) and dotted(node.func) in ("jinja2.Environment", "jinja2.Template",
                                                                   "jinja2.nativetypes.NativeEnvironment"):
                bad.append(f"{where(p, node)} {dotted(node.func)}")
    assert not bad, f"templates outside the sandbox: {bad}"


def test_template_module_uses_the_sandbox_and_refuses_internals():
    from datatune_core.transformation.template import RowTemplate, TemplateRefused, TemplateRenderError, render_row

    src = (ROOT / "datatune_core" / "transformation" / "template.py").read_text(encoding="utf-8")
    assert "SandboxedEnvironment" in src
    t = RowTemplate(input="{{ ''.__class__.__mro__[1].__subclasses__() }}", output="{{ answer }}")
    with pytest.raises((TemplateRefused, TemplateRenderError)):
        render_row(t, {"answer": "x"})


def test_streamlit_server_is_local_xsrf_protected_and_upload_capped():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    server = cfg["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True
    from datatune_ui.uploads import MAX_UPLOAD_MB

    assert 1 <= server["maxUploadSize"] <= 1024 and server["maxUploadSize"] == MAX_UPLOAD_MB
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["client"]["showErrorDetails"] == "none"  # no tracebacks in the browser


def test_no_launcher_binds_all_interfaces():
    bad = []
    for p in [*py_files("datatune_core", *UI, "scripts"), ROOT / "studio.sh"]:
        if p.is_file() and ("0.0.0.0" in p.read_text(encoding="utf-8") or "server.address=0" in
                            p.read_text(encoding="utf-8")):
            bad.append(str(p.relative_to(ROOT)))
    assert not bad, f"binds every interface: {bad}"


def test_secrets_file_is_git_ignored():
    ignore = (ROOT / ".gitignore").read_text(encoding="utf-8")
    assert ".streamlit/secrets.toml" in ignore or "secrets.toml" in ignore
