"""Errors in the UI: one clear message that names the fix; details in an expander and the app log.

    >>> with guard("Could not save the task") as g:
    ...     store.update_project(pid, instruction=text)
    >>> if g.ok: st.success("Saved")
"""

from __future__ import annotations

import logging
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

import streamlit as st

from datatune_core.config import default_home
from datatune_core.errors import user_error_message

_LOGGER_NAME = "datatune.app"


def app_log_path() -> Path:
    return default_home() / "logs" / "app.log"


def logger() -> logging.Logger:
    """The app logger, writing to DATATUNE_HOME/logs/app.log (one handler per log path)."""
    log = logging.getLogger(_LOGGER_NAME)
    path = app_log_path()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in log.handlers):
        for h in list(log.handlers):  # DATATUNE_HOME changed (tests): drop the old file handler
            log.removeHandler(h)
            h.close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            h = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
            h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(h)
        except OSError:  # an unwritable home is reported by the store itself
            pass
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def describe(e: BaseException) -> tuple[str, bool]:
    """(message, is_user_error): the user-facing text, and whether it is an expected, fixable error."""
    msg = user_error_message(e)
    if msg is not None:
        return msg, True
    return (f"An unexpected error happened ({type(e).__name__}: {e}). This is a bug, not something you did: "
            f"try again, and if it repeats, report it with the app log ({app_log_path()})."), False


def show_error(e: BaseException, what: str = "That did not work") -> None:
    """Show an error: the message with its fix, the technical details folded away, and log the traceback."""
    msg, expected = describe(e)
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    logger().log(logging.WARNING if expected else logging.ERROR, "%s: %s\n%s", what, msg, tb)
    st.error(f"**{what}.** {msg}", icon=":material/error:")
    with st.expander("Technical details"):
        st.caption(f"Also written to {app_log_path()}")
        st.code(tb if (not expected or os.environ.get("DATATUNE_DEBUG") == "1") else f"{type(e).__name__}: {e}",
                language=None)


@dataclass
class Outcome:
    ok: bool = True
    error: BaseException | None = None


@contextmanager
def guard(what: str = "That did not work"):
    """Run a block; on an exception show it with `show_error` instead of a traceback, and set `.ok = False`.

    Streamlit's own control-flow exceptions (st.rerun, st.stop, st.switch_page) pass through.
    """
    out = Outcome()
    try:
        yield out
    except Exception as e:  # noqa: BLE001 - the point is to catch everything the user could see
        if is_control_flow(e):
            raise
        out.ok, out.error = False, e
        show_error(e, what)


def is_control_flow(e: BaseException) -> bool:
    name = type(e).__name__
    return name in ("RerunException", "StopException", "ScriptControlException") or \
        type(e).__module__.startswith("streamlit.runtime.scriptrunner")
