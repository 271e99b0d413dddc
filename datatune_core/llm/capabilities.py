"""What a provider can do, declared by the provider: stages ask these questions instead of testing its name.

Every `Provider` declares a frozen `Capabilities` (class attribute `capabilities`; an instance may narrow it, as
the embedded model does with its output-limit setting). Stages read them through `capabilities_of(client)`:

    >>> from datatune_core.llm.capabilities import capabilities_of, fit_max_tokens
    >>> caps = capabilities_of(client)            # client, provider or None (None: nothing is available)
    >>> if caps.strong_reasoning: ...             # rerank / plan / judge with the LLM, else the offline heuristic
    >>> req.max_tokens = fit_max_tokens(client, 1500)   # never ask for more than the model can return

`provider_capabilities(name, settings)` answers the same for a configured provider without building it (no
model is loaded, no key is needed): what the Settings page and the Datasets page use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    """One provider's abilities, as the stages need them."""

    strong_reasoning: bool = True  # reranks datasets, plans, expands tasks and judges well enough to trust
    temperature: bool = True  # honours the request's sampling temperature
    max_temperature: float = 1.0  # highest temperature it takes (higher requests are clamped to it)
    max_output_tokens: int | None = None  # longest reply it returns (None: the request's max_tokens stands)
    context_tokens: int | None = None  # prompt + reply window, when the layer knows it
    structured_output: str = "prompt"  # "tool" (forced tool use), "json_schema", "grammar" or "prompt" (parsed)
    batch_api: bool = False  # has a message-batch API (half price, results when the batch ends)
    prompt_caching: bool = False  # bills a repeated shared prefix at the cache-read price
    priced: bool = False  # a paid API: a model missing from the price table is charged the fallback price
    model_choice: bool = False  # serves the models named in the settings (cheap_model / strong_model)

    def fit_tokens(self, wanted: int) -> int:
        """`wanted` max_tokens, lowered to what the provider can return."""
        if self.max_output_tokens is None:
            return max(1, int(wanted))
        return max(1, min(int(wanted), int(self.max_output_tokens)))

    def sent_temperature(self, wanted: float) -> float | None:
        """The temperature the provider is sent (clamped to its range); None when it takes none."""
        if not self.temperature:
            return None
        return max(0.0, min(float(wanted), float(self.max_temperature)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NOTHING = Capabilities(strong_reasoning=False, temperature=False)  # no client at all: the offline paths


def capabilities_of(obj: Any) -> Capabilities:
    """The capabilities of a client (`LLMClient`) or a provider; `NOTHING` for None or an object that declares
    none."""
    if obj is None:
        return NOTHING
    prov = getattr(obj, "provider", obj)
    caps = getattr(prov, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else NOTHING


def fit_max_tokens(client: Any, wanted: int) -> int:
    """`wanted` lowered to the client's output limit (unchanged without a client or a limit)."""
    return capabilities_of(client).fit_tokens(wanted) if client is not None else wanted


def provider_capabilities(name: str | None = None, settings: Any = None) -> Capabilities:
    """A configured provider's capabilities without building it (no model loaded, no key needed). An unknown
    name answers `NOTHING`."""
    from datatune_core.config import load_settings
    from datatune_core.errors import UserError
    from datatune_core.llm.providers import provider_class

    s = settings or load_settings()
    try:
        cls = provider_class(name or s.resolved_provider())
    except (UserError, ImportError, AttributeError):
        return NOTHING
    return cls.capabilities_for(s)
