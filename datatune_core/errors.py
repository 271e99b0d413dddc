"""Which exceptions are user-facing (a clear message naming the fix) rather than bugs.

Each layer marks its own user-facing exception classes with `@user_facing` (settings, store, jobs, LLM), so this
module imports nothing of the engine.
"""

from __future__ import annotations

import os

_USER_TYPES: list[type[BaseException]] = [FileNotFoundError, ValueError, KeyError, PermissionError]


def user_facing(cls: type[BaseException]) -> type[BaseException]:
    """Class decorator: errors of this type are shown as their message (no traceback)."""
    if cls not in _USER_TYPES:
        _USER_TYPES.append(cls)
    return cls


@user_facing
class UserError(RuntimeError):
    """Bad input or a missing setting; the message says what to do."""


def user_error_message(e: BaseException) -> str | None:
    """The message to show for an error users can hit, or None for a bug (shown with its traceback)."""
    if os.environ.get("DATATUNE_DEBUG") == "1":
        return None
    if isinstance(e, tuple(_USER_TYPES)):
        text = str(e)
        if isinstance(e, KeyError) and text.startswith(("'", '"')):
            text = text[1:-1]
        return text or type(e).__name__
    return None
