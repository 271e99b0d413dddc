"""The documentation: the MkDocs site builds with --strict, the README stays short and its links resolve, and the
generated command-line reference matches the typer app."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# [text](target) and ![alt](target), with an optional "title"; the target has no spaces
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(markdown: str) -> list[str]:
    """Targets of the Markdown links and images that point into the repository (no URL, no bare #anchor)."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)  # links inside code blocks are not links
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "//")):
            continue
        out.append(target)
    return out


def missing_targets(markdown: str, base: Path) -> list[str]:
    """The relative links of `markdown` (read from a file in `base`) whose file or folder does not exist."""
    return [t for t in relative_links(markdown) if not (base / t.split("#", 1)[0]).exists()]


def test_link_check_finds_a_missing_file(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("# here\n")
    md = ("See [here](docs/here.md#part), [gone](docs/gone.md), ![img](docs/img/x.png \"title\"), "
          "[site](https://example.org/a.md), [top](#top), and `[not](a link)`.\n\n"
          "```bash\n[inside](code.md)\n```\n")
    assert relative_links(md) == ["docs/here.md#part", "docs/gone.md", "docs/img/x.png"]
    assert missing_targets(md, tmp_path) == ["docs/gone.md", "docs/img/x.png"]


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150, "README.md is meant to stay short: move the detail into docs/"
    links = relative_links(text)
    assert any(t.startswith("docs/img/") for t in links), "the README shows a screenshot of the Studio"
    assert missing_targets(text, ROOT) == []
    # the two commands come first, and CI runs the test one
    assert text.splitlines()[2:6] == [
        "```bash",
        "./studio.sh app     # set up .venv (first time only) and start the app on http://127.0.0.1:8501 — no API "
        "key needed",
        "./studio.sh test    # set up .venv (first time only) and run the whole test suite",
        "```",
    ]
    assert "./studio.sh test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_cli_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "tools" / "cli_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rendered = mod.render()
    assert "### `datatune transform`" in rendered and "#### `datatune transform run`" in rendered
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == rendered, "docs/cli.md is out of date: run `python tools/cli_docs.py`"


def test_mkdocs_build_strict(tmp_path: Path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "cli/index.html", "guide/datasets/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page


def test_every_screenshot_in_docs_img_is_shown():
    shown = set()
    for md in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for t in relative_links(md.read_text(encoding="utf-8")):
            shown.add((md.parent / t.split("#", 1)[0]).resolve())
    unused = [p.name for p in (ROOT / "docs" / "img").iterdir() if p.resolve() not in shown]
    assert unused == [], "images nobody links to: remove them or show them"
