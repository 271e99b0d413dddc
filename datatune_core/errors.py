"""Which exceptions are user-facing (a clear message naming the fix) rather than bugs."""

from __future__ import annotations

import os


class UserError(RuntimeError):
    """Bad input or a missing setting; the message says what to do."""


def user_error_message(e: BaseException) -> str | None:
    """The message to show for an error users can hit, or None for a bug (shown with its traceback)."""
    if os.environ.get("DATATUNE_DEBUG") == "1":
        return None
    from .config import SettingsError
    from .jobs import JobError
    from .store import StoreError

    user_types: tuple[type[BaseException], ...] = (UserError, StoreError, SettingsError, JobError, FileNotFoundError,
                                                   ValueError, KeyError, PermissionError)
    try:
        from .llm.base import LLMError

        user_types += (LLMError,)
    except Exception:  # pragma: no cover
        pass
    if isinstance(e, user_types):
        text = str(e)
        if isinstance(e, KeyError) and text.startswith(("'", '"')):
            text = text[1:-1]
        return text or type(e).__name__
    return None
