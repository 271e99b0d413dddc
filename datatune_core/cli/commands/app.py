"""`datatune app`: start the Studio (Streamlit) on 127.0.0.1:8501 — an argv list, no shell."""

from __future__ import annotations

import typer


def app_argv(host: str = "127.0.0.1", port: int = 8501, headless: bool = True) -> list[str]:
    """The command that serves app.py (run from the repository root so .streamlit/config.toml applies)."""
    import sys

    from datatune_core.config import REPO_ROOT

    return [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "true" if headless else "false", "--browser.gatherUsageStats", "false"]


def register(app: typer.Typer) -> None:
    @app.command("app")
    def run_app(host: str = typer.Option("127.0.0.1", help="Address to bind. Keep 127.0.0.1 unless you know "
                                                          "who else can reach this machine."),
                port: int = typer.Option(8501, help="Port to serve on."),
                open_browser: bool = typer.Option(False, "--open", help="Open a browser tab.")):
        """Start the DataTune Studio web app (http://127.0.0.1:8501)."""
        import subprocess

        from datatune_core.config import REPO_ROOT
        from datatune_core.errors import UserError

        if not (REPO_ROOT / "app.py").is_file():
            raise UserError(f"app.py was not found in {REPO_ROOT}: the app runs from a source checkout. "
                            "Clone the repository and run `./studio.sh app`.")
        if not 1 <= port <= 65535:
            raise UserError(f"--port {port} is not a valid port; use 1-65535, e.g. 8501.")
        argv = app_argv(host, port, headless=not open_browser)
        typer.echo(f"DataTune Studio on http://{host}:{port} (Ctrl+C to stop)")
        try:
            rc = subprocess.call(argv, cwd=str(REPO_ROOT))
        except KeyboardInterrupt:
            rc = 0
        raise typer.Exit(rc)
