"""Serving a team: the Studio stays on 127.0.0.1 unless the user opts in (`datatune app --team`), and then every
browser session must give the shared password, checked on the server (the app's Python, before any page runs;
the password never reaches a browser, and a URL never carries it).

The password comes from DATATUNE_TEAM_PASSWORD (or a file named by DATATUNE_TEAM_PASSWORD_FILE); `datatune app
--team` asks for one when neither is set and hands it to the server process through its environment only.

    >>> check_password("typed by the visitor", team_password())
    >>> serve_check("192.168.1.20", team=False)   # UserError: serving beyond this machine needs --team
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

from datatune_core.errors import UserError

PASSWORD_ENV, PASSWORD_FILE_ENV = "DATATUNE_TEAM_PASSWORD", "DATATUNE_TEAM_PASSWORD_FILE"
MIN_LENGTH = 8


def team_password() -> str | None:
    """The shared password the server checks, or None (single-user mode, loopback only)."""
    pw = os.environ.get(PASSWORD_ENV)
    if not pw and os.environ.get(PASSWORD_FILE_ENV):
        try:
            pw = Path(os.environ[PASSWORD_FILE_ENV]).read_text(encoding="utf-8").strip()
        except OSError:
            pw = None
    return pw or None


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for every other address, and for none at all (a server with
    no address binds every interface)."""
    if not host:
        return False
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_password(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of what a visitor typed with the team's password (False when either is empty)."""
    if not given or not expected:
        return False
    a = hashlib.sha256(given.encode("utf-8")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


def validate_password(pw: str) -> str:
    if len(pw or "") < MIN_LENGTH:
        raise UserError(f"The team password needs at least {MIN_LENGTH} characters; choose a longer one.")
    return pw


def team_host_check(host: str) -> None:
    """Team mode serves other machines, so it needs an address they can reach (UserError for a loopback one)."""
    if is_loopback(host):
        raise UserError("Team mode serves other machines, so it needs the address they reach this one at: add "
                        "--host with this machine's network address (e.g. --host 192.168.1.20).")


def serve_check(host: str, team: bool, password: str | None = None) -> None:
    """Refuse to serve beyond this machine without the team mode and its password, and a team mode that would
    serve nobody but this machine (UserError naming the fix). The team chooses the address: nothing here binds
    every interface by default."""
    if team:
        team_host_check(host)
    if is_loopback(host):
        return
    if not team:
        raise UserError(f"Serving on {host} lets other machines reach the Studio and its workspace. Add --team "
                        "(every browser then needs a shared password), or keep the default 127.0.0.1.")
    if not password:
        raise UserError(f"Team mode needs a shared password: set {PASSWORD_ENV} (at least {MIN_LENGTH} characters) "
                        "or type one when `datatune app --team` asks.")
    validate_password(password)


def gate_reason(address: str | None, password: str | None) -> str | None:
    """Why the app must refuse every page (reachable from other machines with no password), else None."""
    if password is None and not is_loopback(address):
        where = address or "every network interface"
        return (f"This Studio is reachable from other machines ({where}) but has no team password, so it shows "
                "nothing. Stop it and start it with `datatune app --team` (it asks for a shared password), or "
                "serve it on 127.0.0.1 only.")
    return None
