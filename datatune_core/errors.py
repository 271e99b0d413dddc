"""Which exceptions are user-facing (a clear message naming the fix) rather than bugs.

Every exception of the engine is defined here, in one place (the modules that raise them import them from here);
`@user_facing` marks those users can hit, and an extension may mark its own. This module imports nothing of the engine.
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


@user_facing
class SettingsError(RuntimeError):
    """A setting is unusable; the message names the setting and the fix."""


@user_facing
class StoreError(RuntimeError):
    """The workspace cannot be used; the message names the path and the fix."""


class JobCancelled(Exception):
    """Raised inside a job when the user asked to cancel it."""


class JobPaused(Exception):
    """Raised inside a job to stop it in a resumable state (e.g. budget reached)."""


@user_facing
class JobError(RuntimeError):
    """A job cannot be started or resumed; the message says why."""


@user_facing
class LLMError(RuntimeError):
    """An LLM call failed in a way the user can act on; the message names the fix."""


class LLMAuthError(LLMError):
    """Missing or rejected API key (never retried)."""


class LLMModelError(LLMError):
    """Unknown or unavailable model name (never retried)."""


class LLMTransientError(LLMError):
    """Rate limit, overload, 5xx, timeout or connection error: retried with backoff."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class BudgetExceeded(JobPaused, LLMError):
    """The project's or run's budget is reached: no new request is sent; the job pauses, resumable."""


class ProviderUnavailable(JobPaused, LLMError):
    """A request of a bulk run still failed on transient faults after every retry (network gone, laptop asleep,
    provider down): no new request is sent, the unit in progress is not committed, the job pauses, resumable."""


class LeakageError(UserError):
    """Training or evaluation refused because rows leak test data; `.leaks` lists them."""

    def __init__(self, message: str, leaks: list[Leak]):
        super().__init__(message)
        self.leaks = leaks


class TemplateRefused(UserError):
    """The template tries something a reformat never needs (Python internals, imports, unknown filters)."""


class TemplateRenderError(ValueError):
    """One row could not be rendered (missing column, wrong type); only that row is affected."""


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
